#!/usr/bin/env bash
# Everything a GPU must prove, in one call (issues 13, 19), in order of value, each stage bounded so that the
# whole call stays inside --budget seconds (default 480; the --cpu dry run 900): build the CUDA ops (sm_90);
# InternImage-T at 1024x2048 in bf16/fp16/tf32/fp32, eager and CUDA graphs; the official implementation beside ours; the node's frame cost
# (1 and 4 cameras); the DCNv3 op's five CUDA kernels beside the official op at the T and L stage shapes; the class
# decision; channels-last on vs off; the whole model in bf16 with each DCNv3 kernel; T compiled in bf16; the CUDA
# tests last. Each stage writes stages/NAME.md and stages/NAME.json into --out (default $OUT, else
# ./gpu_check_out) when it ends, and the merged gpu_check.md / gpu_check.json are rewritten after every stage:
# a call cut at its limit still returns the figures of the stages that finished. gpu_check.log has everything.
#
#   bash scripts/gpu_check.sh                 # on the GPU machine (device tool), python3 with a CUDA torch
#   bash scripts/gpu_check.sh --cpu           # dry run here: every stage at small sizes on the CPU (CI runs it)
#   GPU_CHECK_MODELS=t,l bash scripts/gpu_check.sh --only build,precision   # a part of it
#
# What travels with the device call (git-ignored folders named in `carry`; scripts/prepare_gpu_carry.sh makes both):
#   .whl/       wheels the GPU machine lacks (deflate; mmcv 1.7.2 lite, mmsegmentation 0.30.0, addict, yapf,
#               platformdirs, prettytable, wcwidth for the official model), installed into /tmp/site
#   .official/  InternImage's segmentation/ folder (configs, mmseg_custom, ops_dcnv3), never committed
# A stage that fails, times out or is skipped is recorded and the next one runs; the exit status is non-zero when
# any stage did not end ok (a stage skipped because a carry is missing, or on the CPU for want of CUDA, counts ok).
set -uo pipefail
cd "$(dirname "$0")/.."

cpu=0
out=${OUT:-}
budget=""
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
# The dry run's machine is slow and shared (CI): its limits are loose, as the stages only have to run end to end.
budget=${budget:-$( ((cpu)) && echo 900 || echo 480)}
mkdir -p "$out/stages"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$out/gpu_check.log"
: >"$log"
start_time=$(date +%s)
export PYTHONUNBUFFERED=1
KERNELS=baseline,smem,regs,tile,tile_regs

say() { echo "$*" | tee -a "$log"; }

if ((cpu)); then
  PY=${PYTHON:-.venv/bin/python}
  DEVICE=cpu
  # Small sizes: the point is that every stage runs end to end in a few minutes, not the figures.
  SIZE=64x128
  MODELS=tiny
  # The official model needs mmcv 1.x, mmseg 0.x and timm: OFFICIAL_PYTHON names an interpreter that has them.
  OFFICIAL_PY=${OFFICIAL_PYTHON:-}
else
  PY=python3
  DEVICE=cuda
  SIZE=${GPU_CHECK_SIZE:-1024x2048}
  MODELS=${GPU_CHECK_MODELS:-t}
  OFFICIAL_PY=python3
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >>"$log" 2>&1 || say "warning: carried wheels did not install"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  export MAX_JOBS=${MAX_JOBS:-16}
  # This call's own build cache (nothing persists on the device anyway): after a build cut at its limit, its
  # stale locks can be removed without touching anyone else's builds (see the build stage).
  export TORCH_EXTENSIONS_DIR=$work/torch_extensions
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OFFICIAL_DIR=.official/segmentation/ops_dcnv3
failed=0

wanted() { [[ -z "$only" || ",$only," == *",$1,"* ]]; }
# lim GPU_SECONDS CPU_SECONDS: a stage's limit (the dry run's stages are small, but its machine is slow and shared)
lim() { if ((cpu)); then echo "$2"; else echo "$1"; fi; }

# write_stage NAME STATUS SECONDS LIMIT REASON: stages/NAME.md (its tables) and stages/NAME.json (its figures, the
# bench's --json file $work/NAME.json when there is one), then the merged summary.
write_stage() {
  local name=$1 status=$2 took=$3 limit=$4 reason=$5
  {
    echo "## $name: $status (${took} s of ${limit} s)${reason:+ – $reason}"
    echo
    [[ -f $work/$name.txt ]] && grep -E '^(\||#|device|compiled|torch|machine|CUDA|official|\(|[A-Za-z].* torch )' "$work/$name.txt"
    echo
  } >"$out/stages/$name.md"
  "$PY" - "$name" "$status" "$took" "$limit" "$reason" "$work/$name.json" "$out/stages/$name.json" <<'PY' || true
import json, pathlib, sys
name, status, took, limit, reason, figures_path, target = sys.argv[1:]
figures = None
path = pathlib.Path(figures_path)
if path.is_file():
    try:
        figures = json.loads(path.read_text())
    except ValueError as exc:
        figures = {"error": f"unreadable figures: {exc}"}
record = dict(stage=name, status=status, seconds=int(took), limit_s=int(limit), reason=reason or None, figures=figures)
pathlib.Path(target).write_text(json.dumps(record, indent=1))
PY
  write_summary
}

# gpu_check.md and gpu_check.json: every stage written so far, in the order they ran.
write_summary() {
  {
    echo "# GPU check ($( ((cpu)) && echo "CPU dry run" || echo "$DEVICE"), $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null))"
    echo
    echo "| stage | result | time |"
    echo "|---|---|---|"
    for f in $(ls -tr "$out"/stages/*.md 2>/dev/null); do
      head -1 "$f" | sed -E 's/^## ([^:]+): (.*) \(([0-9]+) s of ([0-9]+) s\)(.*)$/| \1 | \2\5 | \3 s of \4 s |/'
    done
    echo
    for f in $(ls -tr "$out"/stages/*.md 2>/dev/null); do cat "$f"; done
  } >"$out/gpu_check.md"
  "$PY" - "$out" <<'PY' || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
stages = {}
for path in sorted((out / "stages").glob("*.json"), key=lambda p: p.stat().st_mtime):
    try:
        stages[path.stem] = json.loads(path.read_text())
    except ValueError as exc:
        stages[path.stem] = {"stage": path.stem, "status": "unreadable", "reason": str(exc)}
(out / "gpu_check.json").write_text(json.dumps(stages, indent=1))
PY
}

# skip_stage NAME REASON [ok]: record a stage that does not run (ok: not a failure, e.g. no CUDA on the CPU).
skip_stage() {
  wanted "$1" || return 0
  say "== $1: skipped ($2)"
  [[ ${3:-} == ok ]] || failed=1
  write_stage "$1" skipped 0 0 "$2"
}

# run_stage NAME SECONDS COMMAND...: run with a time limit (cut to what is left of the budget), log, record.
run_stage() {
  local name=$1 limit=$2
  shift 2
  wanted "$name" || { STAGE_NOTE=""; return 0; }
  local left=$((budget - ($(date +%s) - start_time)))
  if ((left < 10)); then
    say "== $name: skipped (budget spent)"
    failed=1
    write_stage "$name" skipped 0 "$limit" "budget spent"
    return 0
  fi
  ((limit > left)) && limit=$left
  say "== $name (limit ${limit}s): $*"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log" "$work/$name.txt" >/dev/null
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0))
  if ((rc == 0)); then
    status=ok
  elif [[ $rc == 124 || $rc == 137 ]]; then
    status="timed out"
    failed=1
  else
    status="FAILED (exit $rc)"
    failed=1
  fi
  say "== $name: $status after ${took}s"
  local note=${STAGE_NOTE:-}
  [[ -n $OPS_NOTE && $name != build ]] && note="${note:+$note; }$OPS_NOTE"
  write_stage "$name" "$status" "$took" "$limit" "$note"
  STAGE_NOTE=""
  LAST_STATUS=$status
}
STAGE_NOTE=""
OPS_NOTE=""
LAST_STATUS=""

# --- environment ---------------------------------------------------------------------------------------------------
run_stage environment "$(lim 15 60)" "$PY" - "$work/environment.json" <<'PY'
import json, platform, subprocess, sys, torch
info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            capability=".".join(map(str, torch.cuda.get_device_capability(0))) if torch.cuda.is_available() else None,
            cudnn_tf32=torch.backends.cudnn.allow_tf32, matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
try:
    info["nvcc"] = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
except (OSError, IndexError):
    info["nvcc"] = None
print(json.dumps(info))
open(sys.argv[1], "w").write(json.dumps(info))
PY

# --- build: our ops (each by its own process, all at once: ops/compiled.py's flags and digest), sm_90 only ----------
# The official op builds beside them in the background, from a copy: its sources pass `tensor.type()` where torch
# 2.x's AT_DISPATCH macros want a ScalarType; `.scalar_type()` in those calls is the only change.
official_pid=""
if ((!cpu)) && [[ -d $OFFICIAL_DIR ]] && { wanted official_model || wanted dcnv3_fp32; }; then
  cp -r "$OFFICIAL_DIR" "$work/ops_dcnv3"
  sed -i 's/input\.type(), "ms_deform_attn_/input.scalar_type(), "ms_deform_attn_/' "$work/ops_dcnv3/src/cuda/dcnv3_cuda.cu"
  (cd "$work/ops_dcnv3" && timeout 180 python3 setup.py build_ext --inplace >"$work/official_build.log" 2>&1
   echo "exit $?" >>"$work/official_build.log") &
  official_pid=$!
fi
run_stage build "$(lim 100 120)" "$PY" - "$DEVICE" "$work/build.json" <<'PY'
import json, subprocess, sys, time
from cityscapes_seg_ros.ops import op_records
start = time.time()
# the dry run builds (or loads) the CPU ops only: nvcc for a GPU that is not there would be minutes for nothing
names = [name for name, record in op_records.OPS.items() if sys.argv[1] == "cuda" or record.device_type == "cpu"]
code = "import sys; from cityscapes_seg_ros.ops import compiled; sys.exit(compiled.load(sys.argv[1]) is None)"
jobs = {name: subprocess.Popen([sys.executable, "-c", code, name]) for name in names}
failed = [name for name, job in jobs.items() if job.wait() != 0]
print(f"built {len(jobs) - len(failed)} of {len(jobs)} ops ({', '.join(names)}) in {time.time() - start:.0f} s"
      + (f"; FAILED: {failed}" if failed else ""))
reasons = {}
if failed:
    from cityscapes_seg_ros.ops import compiled
    for name in failed:
        compiled.load(name)
        reasons[name] = compiled.unavailable_reason(name)
        print(name, reasons[name])
record = dict(ops=names, built=[name for name in names if name not in failed], failed=reasons,
              seconds=round(time.time() - start, 1))
open(sys.argv[2], "w").write(json.dumps(record))
sys.exit(1 if failed else 0)
PY

# A build cut at its limit leaves torch's build locks behind, and every later stage would wait on them until its own
# limit: the stale locks go, and the later stages run on the pure-PyTorch fallbacks and say so.
if ((!cpu)) && wanted build && [[ $LAST_STATUS != ok ]]; then
  find "$TORCH_EXTENSIONS_DIR" -name lock -delete 2>/dev/null
  export CITYSCAPES_SEG_COMPILED_OPS=off
  OPS_NOTE="compiled ops OFF (the build stage did not end ok): figures of the pure-PyTorch fallbacks"
  say "$OPS_NOTE"
fi

# official_op_ready: waits (bounded) for the official op's build; true when it built.
official_state=""
official_op_ready() {
  if [[ -z $official_state ]]; then
    if [[ -z $official_pid ]]; then
      official_state=absent
    else
      wait "$official_pid"
      cat "$work/official_build.log" >>"$log"
      if tail -1 "$work/official_build.log" | grep -q "exit 0"; then official_state=built; else official_state=failed; fi
      say "== official op build: $official_state"
    fi
  fi
  [[ $official_state == built ]]
}

# --- InternImage-T: every precision, eager and CUDA graphs -----------------------------------------------------------
if ((cpu)); then
  run_stage precision 150 "$PY" benchmarks/precision_bench.py --device cpu --models "$MODELS" --size "$SIZE" \
    --precisions fp32,tf32,fp16,bf16,bf16-cast --modes eager,graphs --warmup 0 --repeats 1 --frames 1 \
    --json "$work/precision.json"
else
  run_stage precision 70 "$PY" benchmarks/precision_bench.py --models "$MODELS" --size "$SIZE" --device cuda \
    --precisions fp32,tf32,fp16,bf16 --modes eager,graphs --json "$work/precision.json"
fi

# --- the official implementation beside ours (fp32 with PyTorch's default TF32 switches, as its users run it) --------
if ! wanted official_model; then
  :
elif [[ ! -d .official/segmentation ]]; then
  skip_stage official_model "carry .official missing (scripts/prepare_gpu_carry.sh makes it): no official figures" \
    "$( ((cpu)) && echo ok)"
elif [[ -z $OFFICIAL_PY ]]; then
  skip_stage official_model "no interpreter with mmcv 1.x and mmseg 0.x (OFFICIAL_PYTHON)" ok
else
  ops_arg=()
  if ((!cpu)); then
    if official_op_ready; then
      ops_arg=(--ops-dcnv3 "$work/ops_dcnv3")
    else
      STAGE_NOTE="official op $official_state: the official model runs its pure-PyTorch DCNv3 core"
      say "$STAGE_NOTE"
    fi
    compgen -G ".whl/*.whl" >/dev/null || STAGE_NOTE="${STAGE_NOTE:+$STAGE_NOTE; }carry .whl missing"
  fi
  run_stage official_model "$(lim 60 150)" "$OFFICIAL_PY" benchmarks/official_model_bench.py --internimage .official \
    "${ops_arg[@]}" --models "${MODELS/tiny/t}" --size "$SIZE" --device "$DEVICE" --warmup $((cpu ? 0 : 3)) \
    --repeats $((cpu ? 1 : 10)) --json "$work/official_model.json"
fi

# --- the node's frame cost: 1 camera (batch 1 rows) and 4 cameras (batch 4), CUDA graphs off / on -------------------
if ((cpu)); then
  run_stage node 150 "$PY" benchmarks/node_gpu_bench.py --device cpu --size "$SIZE" --cameras 2 --runs 1 --warmup 0 \
    --json "$work/node.json"
else
  run_stage node 45 "$PY" benchmarks/node_gpu_bench.py --device cuda --cameras 4 --precision bf16 --json "$work/node.json"
fi

# --- DCNv3: the five CUDA kernels side by side against the official op, T and L stage shapes ------------------------
for dtype in fp32 fp16 bf16; do
  if ((cpu)); then
    run_stage "dcnv3_$dtype" 60 "$PY" benchmarks/dcnv3_bench.py --device cpu --dtype "$dtype" --models T --stages 1 \
      --no-torch --reps 1 --json "$work/dcnv3_$dtype.json"
  else
    official_arg=()
    if [[ $dtype != bf16 ]] && official_op_ready; then
      official_arg=(--official "$work/ops_dcnv3")
    elif [[ $dtype != bf16 ]]; then
      STAGE_NOTE="official op $official_state: no official column"
    fi
    run_stage "dcnv3_$dtype" $([[ $dtype == fp32 ]] && echo 35 || echo 15) "$PY" benchmarks/dcnv3_bench.py --device cuda \
      --dtype "$dtype" --no-torch --cuda-kernels "$KERNELS" "${official_arg[@]}" --json "$work/dcnv3_$dtype.json"
  fi
done

# --- the class decision on the device -------------------------------------------------------------------------------
run_stage decode "$(lim 15 60)" "$PY" benchmarks/decode_bench.py --device "$DEVICE" --repeats $((cpu ? 1 : 20)) \
  --scale $((cpu ? 8 : 1)) --json "$work/decode.json"

# --- channels-last on vs off (the UperNet head's layout) -------------------------------------------------------------
if ((cpu)); then
  run_stage channels_last 90 "$PY" benchmarks/precision_bench.py --device cpu --models "$MODELS" --size "$SIZE" \
    --precisions bf16 --modes eager --channels-last on,off --warmup 0 --repeats 1 --frames 1 \
    --json "$work/channels_last.json"
else
  run_stage channels_last 35 "$PY" benchmarks/precision_bench.py --models "$MODELS" --size "$SIZE" --device cuda \
    --precisions bf16,fp32 --modes graphs --channels-last on,off --json "$work/channels_last.json"
fi

# --- the whole model in bf16 with each DCNv3 CUDA kernel (on the CPU the rows say the kernels need CUDA) --------------
run_stage dcnv3_kernels_model "$(lim 35 90)" "$PY" benchmarks/precision_bench.py --models "$MODELS" --size "$SIZE" \
  --device "$DEVICE" --precisions bf16 --modes "$( ((cpu)) && echo eager || echo graphs)" --dcnv3-kernels "$KERNELS" \
  --repeats $((cpu ? 1 : 10)) --frames $((cpu ? 1 : 2)) --json "$work/dcnv3_kernels_model.json"

# --- T compiled (inductor on CUDA; dynamo's eager backend in the dry run) in bf16 ------------------------------------
run_stage precision_compiled "$(lim 45 150)" "$PY" benchmarks/precision_bench.py --models "$MODELS" --size "$SIZE" \
  --device "$DEVICE" --precisions bf16 --modes compiled --repeats $((cpu ? 1 : 10)) --frames $((cpu ? 1 : 2)) \
  --json "$work/precision_compiled.json"

# --- the CUDA tests, last: only tests marked cuda (tests/conftest.py), every file collected even if one fails -------
tests=()
for f in tests/ops/test_dcnv3_kernel.py tests/ops/test_dcnv3_operator.py tests/ops/test_compiled_ops.py tests/ops/test_score_decode.py \
  tests/ops/test_score_decode_cuda.py tests/models/test_inference.py tests/models/test_precision.py tests/models/test_graph_forward.py \
  tests/node/test_node_batching.py tests/models/test_official_fixtures.py tests/ops/test_decode_logits.py; do
  [[ -f $f ]] && tests+=("$f")
done
run_stage tests "$(lim 55 120)" "$PY" - "$work/tests.json" "${tests[@]}" <<'PY'
import json, subprocess, sys, tempfile, xml.etree.ElementTree as ET
target, files = sys.argv[1], sys.argv[2:]
junit = tempfile.mktemp(suffix=".xml")
command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "cuda",
           "--continue-on-collection-errors", f"--junitxml={junit}", *files]
rc = subprocess.call(command)
counts, failures = dict(tests=0, failures=0, errors=0, skipped=0), []
try:
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failures.append(f"{case.get('classname')}::{case.get('name')}")
except (OSError, ET.ParseError) as exc:
    counts["report"] = f"no JUnit report: {exc}"
counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
print(f"| CUDA tests | passed {counts['passed']} | failed {counts['failures']} | errors {counts['errors']} "
      f"| skipped {counts['skipped']} |")
open(target, "w").write(json.dumps(dict(exit=rc, files=files, **counts, failed=failures[:50]), indent=1))
sys.exit(rc)
PY

say "gpu_check: $(($(date +%s) - start_time)) s; tables in $out/gpu_check.md, figures in $out/gpu_check.json"
cat "$out/gpu_check.md"
exit $failed
