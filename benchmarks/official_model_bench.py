"""The official InternImage UperNet beside ours, in one process: frames/s of the network at one input size.

    python benchmarks/official_model_bench.py --internimage DIR --ops-dcnv3 DIR/segmentation/ops_dcnv3 \
        --models t,l --size 1024x2048 --device cuda --json out.json

The official model is what InternImage's test tool runs: mmseg 0.x's ``EncoderDecoder`` with InternImage's
backbone (``segmentation/mmseg_custom``) and UperHead, from the official Cityscapes config, with its compiled
``ops_dcnv3`` op when ``--ops-dcnv3`` names the folder it was built in (``python setup.py build_ext
--inplace``), else the official pure-PyTorch core (CPU dry runs). It needs mmcv 1.x (lite), mmsegmentation 0.x
and timm, as ``tests/data/make_official_fixtures.py`` does (whose loading code is reused).

What is timed, for both models: backbone + decode head (logits at 1/4 of the input), batch 1, random weights,
a fresh random normalized input, inference mode. Official in fp32 as its users run it: PyTorch's defaults, so cuDNN
convolutions may use TF32 (``torch.backends.cudnn.allow_tf32``, on by default) and matmuls do not; the run states
both switches. Ours in fp32 (the same switches), in bf16 as the ``Predictor`` runs ``precision=bf16`` (autocast
with fp32 islands, ``precision.precision_scope``) and in bf16-cast (the whole model ``.to(torch.bfloat16)``; its
classifier still computes in fp32, ``models.layers.float_island``). On CUDA each figure is the median of
``--repeats`` forwards timed with CUDA events after ``--warmup`` forwards; models alternate (official, ours
fp32, ours bf16, ours bf16-cast) within each repeat so that clocks and temperature are shared. The official fp32 logits and
ours agree when the weights are the same; here they are not (two random draws), so only speed is compared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import call_ms, model_names  # noqa: E402

from cityscapes_seg_ros import build_segmentor  # noqa: E402
from cityscapes_seg_ros.segmenter.precision import precision_scope  # noqa: E402

CONFIGS = model_names(("t", "s", "b", "l", "xl"))


def fixture_tools():
    """tests/data/make_official_fixtures.py, imported by path (it holds the mm-library loading code)."""
    path = ROOT / "tests" / "data" / "make_official_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_official_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def official_builder(internimage: Path, ops_dcnv3: Path | None) -> Callable[[str], torch.nn.Module]:
    tools = fixture_tools()
    segmentation = tools.segmentation_dir(internimage)
    sys.path.insert(0, str(segmentation))
    if ops_dcnv3 is not None:
        sys.path.insert(0, str(ops_dcnv3.resolve()))
        import DCNv3  # noqa: F401  (the compiled official op; fails loudly when it was not built)
    else:
        tools.install_dcnv3_core()
    mmcv, _ = tools.import_mm_libraries()
    path = segmentation / "mmseg_custom/models/backbones/intern_image.py"
    spec = importlib.util.spec_from_file_location("official_intern_image", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # registers InternImage with mmseg

    def build(name: str) -> torch.nn.Module:
        from mmseg.models import build_segmentor as mmseg_build

        config = mmcv.Config.fromfile(str(segmentation / "configs" / "cityscapes" / f"{name}.py"))
        config.model.backbone.init_cfg = None  # no download of ImageNet weights: random weights are timed
        config.model.pretrained = None
        return mmseg_build(config.model).eval()

    return build


def forwards(
    name: str, build_official: Callable[[str], torch.nn.Module], device: torch.device, x: torch.Tensor
) -> Dict[str, Callable[[], torch.Tensor]]:
    """The timed forwards (backbone + decode head) of model ``name``."""
    official = build_official(name).to(device)
    ours = build_segmentor(name, device=device).eval()
    ours_cast = build_segmentor(name, device=device).eval().to(torch.bfloat16)
    x_bf16 = x.to(torch.bfloat16)

    def ours_bf16() -> torch.Tensor:
        with precision_scope("bf16", device, autocast_cache=False):
            return ours.decode_head(ours.backbone(x))

    return {
        "official_fp32": lambda: official.decode_head(official.extract_feat(x)),
        "ours_fp32": lambda: ours.decode_head(ours.backbone(x)),
        "ours_bf16": ours_bf16,
        "ours_bf16_cast": lambda: ours_cast.decode_head(ours_cast.backbone(x_bf16)),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--internimage", type=Path, required=True, help="InternImage checkout (its segmentation/)")
    p.add_argument("--ops-dcnv3", type=Path, default=None, help="folder of the built official DCNv3 op")
    p.add_argument("--models", default="t")
    p.add_argument("--size", default="1024x2048", help="input HxW")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    height, width = (int(v) for v in args.size.split("x"))
    build_official = official_builder(args.internimage, args.ops_dcnv3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    switches = dict(cudnn_tf32=torch.backends.cudnn.allow_tf32, matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
    official_dcnv3 = "compiled op" if args.ops_dcnv3 else "pure-PyTorch core"
    print(
        f"device {name}, torch {torch.__version__}, input {height}x{width}, batch 1; official DCNv3: "
        f"{official_dcnv3}; fp32 runs with cuDNN TF32 {'on' if switches['cudnn_tf32'] else 'off'}, "
        f"matmul TF32 {'on' if switches['matmul_tf32'] else 'off'} (PyTorch's defaults)\n"
    )
    print(
        "| model | official fp32 frames/s | ours fp32 frames/s | ours bf16 frames/s | ours bf16-cast frames/s | "
        "ours fp32 / official | ours bf16 / official | ours bf16-cast / official |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results: List[Dict[str, object]] = []
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    for key in args.models.split(","):
        runs = forwards(CONFIGS[key], build_official, device, x)
        times: Dict[str, List[float]] = {k: [] for k in runs}
        with torch.inference_mode():
            for _ in range(args.warmup):
                for fn in runs.values():
                    fn()
            for _ in range(args.repeats):
                for label, fn in runs.items():
                    times[label].append(call_ms(fn, device))
        fps = {label: 1e3 / statistics.median(values) for label, values in times.items()}
        results.append(
            {
                "model": key,
                "size": [height, width],
                "device": name,
                **{f"{k}_fps": v for k, v in fps.items()},
                "ms": {k: statistics.median(v) for k, v in times.items()},
                "official_dcnv3": official_dcnv3,
                **switches,
            }
        )
        ratios = " | ".join(
            f"{fps[k] / fps['official_fp32']:.2f}x" for k in ("ours_fp32", "ours_bf16", "ours_bf16_cast")
        )
        print(
            f"| {key} | {fps['official_fp32']:.2f} | {fps['ours_fp32']:.2f} | {fps['ours_bf16']:.2f} | "
            f"{fps['ours_bf16_cast']:.2f} | {ratios} |",
            flush=True,
        )
        del runs
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
