#!/usr/bin/env bash
# Everything a GPU must prove, in one call (issue 13): build the CUDA ops, run the GPU tests, DCNv3 CUDA vs the
# official op, the class decision on the device, whole models in every precision and mode, the official
# implementation's throughput, the node's frame cost. Writes gpu_check.md (tables), gpu_check.json (figures)
# and gpu_check.log (everything) into --out (default $OUT, else ./gpu_check_out).
#
#   bash scripts/gpu_check.sh                 # on the GPU machine (device tool), python3 with a CUDA torch
#   bash scripts/gpu_check.sh --cpu           # dry run here: the same stages, small sizes, CPU, .venv's python
#   GPU_CHECK_MODELS=t GPU_CHECK_SIZE=512x1024 bash scripts/gpu_check.sh --only build,tests   # a part of it
#
# What travels with the device call (git-ignored folders named in `carry`):
#   .whl/       wheels the GPU machine lacks (deflate; mmcv 1.x lite, mmsegmentation 0.x, addict, yapf,
#               platformdirs, prettytable, wcwidth for the official model), installed into /tmp/site
#   .official/  InternImage's segmentation/ folder (configs, mmseg_custom, ops_dcnv3), fetched, never committed
# A stage that fails is recorded and the next one runs; the exit status is non-zero when any stage failed.
# Each stage has its own time limit so that the whole call stays within --budget seconds (default 480).
set -uo pipefail
cd "$(dirname "$0")/.."

cpu=0
out=${OUT:-}
budget=480
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) cpu=1 ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    --budget) budget=${2:?--budget needs seconds}; shift ;;
    --only) only=${2:?--only needs a comma list of stages}; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (--cpu, --out DIR, --budget S, --only a,b)" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-gpu_check_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/gpu_check.XXXXXX)
log="$out/gpu_check.log"
: >"$log"
start_time=$(date +%s)
export PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$log"; }

if ((cpu)); then
  PY=${PYTHON:-.venv/bin/python}
  DEVICE=cpu
  # Small sizes: the point is that every stage runs end to end, not the figures.
  SIZE=128x256
  MODELS=t
  # The official model needs mmcv 1.x, mmseg 0.x and timm: OFFICIAL_PYTHON names an interpreter that has them.
  OFFICIAL_PY=${OFFICIAL_PYTHON:-}
else
  PY=python3
  DEVICE=cuda
  SIZE=${GPU_CHECK_SIZE:-1024x2048}
  MODELS=${GPU_CHECK_MODELS:-t,l}
  OFFICIAL_PY=python3
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >>"$log" 2>&1 || say "warning: carried wheels did not install"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  export MAX_JOBS=${MAX_JOBS:-16}
fi
OFFICIAL_DIR=.official/segmentation/ops_dcnv3

declare -a summary=()
failed=0

# run_stage NAME SECONDS COMMAND...: run with a time limit (cut to what is left of the budget), log, record.
run_stage() {
  local name=$1 limit=$2
  shift 2
  if [[ -n "$only" && ",$only," != *",$name,"* ]]; then
    return 0
  fi
  local left=$((budget - ($(date +%s) - start_time)))
  if ((left < 10)); then
    summary+=("| $name | skipped | budget spent |")
    say "== $name: skipped (budget spent)"
    failed=1
    return 0
  fi
  ((limit > left)) && limit=$left
  say "== $name (limit ${limit}s): $*"
  local t0=$(date +%s) rc
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log" "$work/$name.txt" >/dev/null
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0))
  if ((rc == 0)); then
    summary+=("| $name | ok | ${took} s |")
  else
    [[ $rc == 124 || $rc == 137 ]] && rc="timed out"
    summary+=("| $name | FAILED ($rc) | ${took} s |")
    failed=1
  fi
  say "== $name: exit $rc after ${took}s"
}

# A stage whose script is not in this checkout is reported as absent rather than failed.
need() {
  [[ -n "$only" && ",$only," != *",$2,"* ]] && return 1
  [[ -f "$1" ]] || { summary+=("| $2 | absent ($1) | – |"); return 1; }
}

run_stage environment 60 "$PY" - <<'PY'
import json, platform, subprocess, torch
info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            capability=".".join(map(str, torch.cuda.get_device_capability(0))) if torch.cuda.is_available() else None)
try:
    info["nvcc"] = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
except OSError:
    info["nvcc"] = None
print(json.dumps(info))
PY

if ((cpu)); then
  [[ -z "$only" || ",$only," == *",build,"* ]] && summary+=("| build | skipped (--cpu: .venv's ops) | – |")
else
  # Not `pip install`: setuptools builds the extensions one after the other. Each op is built just in time by its
  # own process instead (ops/compiled.py, the same flags and digest), all at once, with the package on PYTHONPATH.
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  # The official op builds beside ours, from a copy: its sources pass `tensor.type()` where torch 2.x's
  # AT_DISPATCH macros want a ScalarType; `.scalar_type()` in those two calls is the only change.
  if [[ -d $OFFICIAL_DIR ]]; then
    cp -r "$OFFICIAL_DIR" "$work/ops_dcnv3"
    sed -i 's/input\.type(), "ms_deform_attn_/input.scalar_type(), "ms_deform_attn_/' "$work/ops_dcnv3/src/cuda/dcnv3_cuda.cu"
    (cd "$work/ops_dcnv3" && timeout 300 python3 setup.py build_ext --inplace >"$work/official_build.log" 2>&1;
     echo "exit $?" >>"$work/official_build.log") &
    official_pid=$!
    OFFICIAL_DIR=$work/ops_dcnv3
  fi
  run_stage build 240 python3 - <<'PY'
import subprocess, sys, time
from cityscapes_seg_ros.ops import op_records
start = time.time()
code = "import sys; from cityscapes_seg_ros.ops import compiled; sys.exit(compiled.load(sys.argv[1]) is None)"
jobs = {name: subprocess.Popen([sys.executable, "-c", code, name]) for name in op_records.OPS}
failed = [name for name, job in jobs.items() if job.wait() != 0]
print(f"built {len(jobs) - len(failed)} of {len(jobs)} ops in {time.time() - start:.0f} s" + (f"; FAILED: {failed}" if failed else ""))
if failed:
    from cityscapes_seg_ros.ops import compiled
    for name in failed:
        compiled.load(name)
        print(name, compiled.unavailable_reason(name))
sys.exit(1 if failed else 0)
PY
  if [[ -n ${official_pid:-} ]]; then
    wait "$official_pid"
    cat "$work/official_build.log" >>"$log"
    if tail -1 "$work/official_build.log" | grep -q "exit 0"; then
      summary+=("| official_op_build | ok | – |")
    else
      summary+=("| official_op_build | FAILED (see log) | – |")
      failed=1
    fi
  fi
fi

# GPU tests: the test files that hold CUDA tests; none of them needs rclpy (not on the GPU machine).
tests=()
for f in tests/ops/test_dcnv3_kernel.py tests/ops/test_dcnv3_operator.py tests/ops/test_compiled_ops.py tests/ops/test_score_decode.py \
  tests/ops/test_score_decode_cuda.py tests/models/test_inference.py tests/models/test_precision.py tests/models/test_graph_forward.py \
  tests/node/test_node_batching.py tests/models/test_official_fixtures.py tests/ops/test_decode_logits.py; do
  [[ -f $f ]] && tests+=("$f")
done
run_stage tests 240 "$PY" -m pytest -q -rs -p no:cacheprovider "${tests[@]}"

official_arg=()
[[ $DEVICE == cuda && -d $OFFICIAL_DIR ]] && official_arg=(--official "$OFFICIAL_DIR")
for dtype in fp32 fp16 bf16; do
  if ((cpu)); then
    run_stage "dcnv3_$dtype" 120 "$PY" benchmarks/dcnv3_bench.py --device cpu --dtype "$dtype" --models T --stages 1 \
      --no-torch --reps 1 --json "$work/dcnv3_$dtype.json"
  else
    run_stage "dcnv3_$dtype" 90 "$PY" benchmarks/dcnv3_bench.py --device cuda --dtype "$dtype" --no-torch \
      --cuda-kernels baseline,smem,regs,tile,tile_regs "${official_arg[@]}" --json "$work/dcnv3_$dtype.json"
  fi
done

if need benchmarks/decode_bench.py decode; then
  run_stage decode 90 "$PY" benchmarks/decode_bench.py --device "$DEVICE" --repeats $((cpu ? 1 : 20)) \
    --json "$work/decode.json"
fi

if need benchmarks/precision_bench.py precision; then
  if ((cpu)); then
    run_stage precision 150 "$PY" benchmarks/precision_bench.py --device cpu --size 64x128 \
      --precisions fp32,tf32,bf16,bf16-cast --modes eager,compiled,graphs --json "$work/precision.json"
  else
    # Every precision eager and as a CUDA graph for T and L; inductor (minutes per compile) for T in bf16 only.
    run_stage precision 200 "$PY" benchmarks/precision_bench.py --models "$MODELS" --size "$SIZE" --device cuda \
      --precisions fp32,tf32,fp16,bf16,fp16-cast,bf16-cast --modes eager,graphs --json "$work/precision.json"
    run_stage precision_compiled 150 "$PY" benchmarks/precision_bench.py --models t --size "$SIZE" --device cuda \
      --precisions bf16,bf16-cast --modes compiled,eager --json "$work/precision_compiled.json"
  fi
fi

if [[ -n $OFFICIAL_PY && -d .official ]]; then
  ops_arg=()
  [[ $DEVICE == cuda ]] && ops_arg=(--ops-dcnv3 "$OFFICIAL_DIR")
  run_stage official_model 150 "$OFFICIAL_PY" benchmarks/official_model_bench.py --internimage .official \
    "${ops_arg[@]}" --models "$MODELS" --size "$SIZE" --device "$DEVICE" --warmup $((cpu ? 1 : 3)) \
    --repeats $((cpu ? 1 : 10)) --json "$work/official_model.json"
elif [[ -z "$only" || ",$only," == *",official_model,"* ]]; then
  summary+=("| official_model | skipped (no official code or interpreter with mmseg) | – |")
fi

if need benchmarks/node_gpu_bench.py node; then
  if ((cpu)); then
    run_stage node 120 "$PY" benchmarks/node_gpu_bench.py --device cpu --size 64x128 --cameras 2 --runs 1 --warmup 1 \
      --json "$work/node.json"
  else
    run_stage node 90 "$PY" benchmarks/node_gpu_bench.py --device cuda --json "$work/node.json"
    run_stage node_bf16 90 "$PY" benchmarks/node_gpu_bench.py --device cuda --precision bf16 --json "$work/node_bf16.json"
  fi
fi

{
  echo "# GPU check ($( ((cpu)) && echo "CPU dry run" || echo "$DEVICE"), $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null))"
  echo
  echo "| stage | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${summary[@]}"
  echo
  for f in "$work"/*.txt; do
    [[ -f $f ]] || continue
    if grep -q '^|' "$f"; then
      echo "## $(basename "$f" .txt)"
      echo
      grep -E '^(\||#|device|compiled|torch|machine)' "$f"
      echo
    fi
  done
} >"$out/gpu_check.md"
"$PY" - "$work" "$out/gpu_check.json" <<'PY'
import json, pathlib, sys
work, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
figures = {}
for path in sorted(work.glob("*.json")):
    try:
        figures[path.stem] = json.loads(path.read_text())
    except ValueError as exc:
        figures[path.stem] = {"error": str(exc)}
target.write_text(json.dumps(figures, indent=1))
PY
say "gpu_check: $(($(date +%s) - start_time)) s; tables in $out/gpu_check.md"
cat "$out/gpu_check.md"
exit $failed
