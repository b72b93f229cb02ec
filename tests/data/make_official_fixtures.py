"""Make (or audit) the ``official_tiny_*.pt`` fixtures beside this file with the OFFICIAL InternImage code.

    python tests/data/make_official_fixtures.py --internimage DIR [--out DIR]
    python tests/data/make_official_fixtures.py --internimage DIR --check

``DIR`` is a checkout of github.com/OpenGVLab/InternImage; only its ``segmentation/`` folder is read (the
official configs, the backbone ``mmseg_custom/models/backbones/intern_image.py`` and ``ops_dcnv3``), nothing of
it is built. The decode heads are mmsegmentation's own. What each file holds: ``README.md`` here.

How a fixture is made: the official config (``_base_`` merged by mmcv) is shrunk by the overrides of ``SPECS``,
mmseg builds the model, every parameter and BatchNorm statistic is drawn at random from the spec's seed (the
DCNv3 offset and mask layers included, so sampling points move far from the grid), and the whole-mode output of
a random normalized input -- the decode head's logits resized bilinearly to the input -- is stored with the
checkpoint (mmseg 0.x layout, meta with a numpy scalar as mmseg's evaluation hook writes it).

DCNv3 runs the official pure-PyTorch core ``dcnv3_core_pytorch`` in place of the compiled ``DCNv3`` extension,
which is not needed (nor used if installed). Runs on CPU in fp32.

``--check`` audits the committed files: each committed checkpoint is loaded strictly into the official model
built from its own ``config`` and run on its ``input``; the relative error ``|out - ref| / |ref|`` against its
``logits`` must stay within 1e-5. The fixtures are also regenerated into a temporary folder and compared with
the committed ones (config, input size, state-dict keys and shapes, meta fields, and -- where the weights are the
same draws -- logits).

Needs, besides torch and numpy: mmsegmentation 0.x (InternImage pins 0.27; 0.30 works), mmcv 1.x and timm. The
lite ``mmcv`` 1.x is enough: mmseg imports mmcv's compiled ops, which these models never call; without them a
stand-in that raises if anything calls it is put in their place. timm and mmcv import torchvision: it must be
the build made for the installed torch (PyPI's torchvision wheels are CUDA builds, which need PyPI's CUDA torch).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
import math
import sys
import tempfile
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

log = logging.getLogger("make_official_fixtures")

HERE = Path(__file__).resolve().parent
MAX_RELATIVE_ERROR = 1e-5
TINY_BACKBONE = {"channels": 32, "depths": [1, 1, 2, 1], "groups": [2, 4, 8, 16]}
TINY_IN_CHANNELS = [32, 64, 128, 256]


class SetupError(Exception):
    """Something this script needs is missing; the message says what."""


def shrink_upernet(model: Dict[str, Any]) -> None:
    model["backbone"].update(copy.deepcopy(TINY_BACKBONE))
    model["decode_head"].update(in_channels=list(TINY_IN_CHANNELS), channels=32)
    model["auxiliary_head"].update(in_channels=128, channels=16)


def shrink_segformer(model: Dict[str, Any]) -> None:
    model["backbone"].update(copy.deepcopy(TINY_BACKBONE))
    model["decode_head"].update(in_channels=list(TINY_IN_CHANNELS), channels=32)


@dataclass(frozen=True)
class FixtureSpec:
    stem: str  # file name without .pt
    config: str  # official config, relative to segmentation/configs
    seed: int
    input_hw: Tuple[int, int]
    shrink: Callable[[Dict[str, Any]], None]

    @property
    def name(self) -> str:
        return Path(self.config).stem


SPECS: Tuple[FixtureSpec, ...] = (
    FixtureSpec(
        "official_tiny_upernet_t_like",
        "cityscapes/upernet_internimage_t_512x1024_160k_cityscapes.py",
        1,
        (64, 96),
        shrink_upernet,
    ),
    FixtureSpec(
        "official_tiny_upernet_l_like",
        "cityscapes/upernet_internimage_l_512x1024_160k_cityscapes.py",
        2,
        (40, 72),
        shrink_upernet,
    ),
    FixtureSpec(
        "official_tiny_segformer_l_like",
        "cityscapes/segformer_internimage_l_512x1024_160k_mapillary2cityscapes.py",
        3,
        (64, 96),
        shrink_segformer,
    ),
)


# ---------------------------------------------------------------------------------------------------------------
# The official code


def segmentation_dir(internimage: Path) -> Path:
    """The checkout's ``segmentation/`` folder, checked for the files this script reads."""
    folder = internimage / "segmentation"
    needed = [
        "mmseg_custom/models/backbones/intern_image.py",
        "ops_dcnv3/functions/dcnv3_func.py",
        "ops_dcnv3/modules/dcnv3.py",
        *(f"configs/{spec.config}" for spec in SPECS),
    ]
    missing = [path for path in needed if not (folder / path).is_file()]
    if missing:
        raise SetupError(
            f"{internimage} is not an InternImage checkout: missing segmentation/{missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    return folder


def raising_module(name: str, why: str) -> types.ModuleType:
    """A module whose every attribute is a function that raises: for compiled code that must never run."""
    module = types.ModuleType(name)

    def attribute(attr: str) -> Callable:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def call(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"{name}.{attr} was called, but {why}")

        return call

    module.__getattr__ = attribute  # type: ignore[attr-defined]
    return module


def install_dcnv3_core() -> None:
    """Answer the compiled ``DCNv3`` extension's forward with the official ``dcnv3_core_pytorch``."""
    module = types.ModuleType("DCNv3")

    def dcnv3_forward(
        input,
        offset,
        mask,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        dilation_h,
        dilation_w,
        group,
        group_channels,
        offset_scale,
        im2col_step,
    ):
        from ops_dcnv3.functions.dcnv3_func import dcnv3_core_pytorch

        return dcnv3_core_pytorch(
            input,
            offset,
            mask,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            dilation_h,
            dilation_w,
            group,
            group_channels,
            offset_scale,
        )

    def dcnv3_backward(*args: Any) -> None:
        raise RuntimeError("DCNv3 backward is not available here: the fixtures need only the forward pass")

    module.dcnv3_forward = dcnv3_forward  # type: ignore[attr-defined]
    module.dcnv3_backward = dcnv3_backward  # type: ignore[attr-defined]
    sys.modules["DCNv3"] = module


def import_mm_libraries(verbose: bool = False) -> Tuple[Any, Any]:
    """mmcv 1.x and mmseg 0.x, with stand-ins for the parts these models never run (see the module doc)."""
    try:
        import mmcv
    except ImportError as exc:
        raise SetupError(f"mmcv 1.x is needed (pip install 'mmcv<2' or 'mmcv-full<2'): {exc}") from None
    if not mmcv.__version__.startswith("1."):
        raise SetupError(f"mmcv 1.x is needed (mmseg 0.x runs on it), found mmcv {mmcv.__version__}")
    if importlib.util.find_spec("mmcv._ext") is None:
        log.info(
            "mmcv %s has no compiled ops; a stand-in that raises if called is used (these models call none)",
            mmcv.__version__,
        )
        sys.modules["mmcv._ext"] = raising_module("mmcv._ext", "this mmcv has no compiled ops")
    try:
        import mmseg
        import mmseg.models
    except ImportError as exc:
        raise SetupError(f"mmsegmentation 0.x is needed (pip install 'mmsegmentation<1'): {exc}") from None
    if not mmseg.__version__.startswith("0."):
        raise SetupError(
            f"mmsegmentation 0.x is needed (InternImage's segmentation code is written for it), "
            f"found {mmseg.__version__}"
        )
    from mmseg.utils import get_root_logger

    get_root_logger(log_level=logging.INFO if verbose else logging.WARNING)  # the backbone logs its settings
    try:
        import timm  # noqa: F401  (the official backbone's DropPath)
    except ImportError as exc:
        raise SetupError(f"timm is needed by the official backbone: {exc}") from None
    return mmcv, mmseg


class Official:
    """The official model builder: mmseg with the official InternImage backbone registered."""

    _backbone_module: Optional[types.ModuleType] = None

    def __init__(self, internimage: Path, verbose: bool = False) -> None:
        self.segmentation = segmentation_dir(internimage)
        if str(self.segmentation) not in sys.path:
            sys.path.insert(0, str(self.segmentation))  # for `import ops_dcnv3`, as the official tools run
        install_dcnv3_core()
        self.mmcv, self.mmseg = import_mm_libraries(verbose)
        if Official._backbone_module is None:  # importing it registers InternImage with mmseg, once
            path = self.segmentation / "mmseg_custom/models/backbones/intern_image.py"
            spec = importlib.util.spec_from_file_location("official_intern_image", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            Official._backbone_module = module

    def model_config(self, spec: FixtureSpec) -> Dict[str, Any]:
        """The official config's model dict, ``_base_`` merged, with the spec's overrides; plain dicts."""
        config = self.mmcv.Config.fromfile(str(self.segmentation / "configs" / spec.config))
        model = config._cfg_dict.to_dict()["model"]
        spec.shrink(model)
        return model

    def build(self, model_config: Dict[str, Any]) -> nn.Module:
        from mmseg.models import build_segmentor

        model = build_segmentor(self.mmcv.ConfigDict(copy.deepcopy(model_config)))
        return model.eval()


def whole_logits(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """mmseg's whole-mode logits: the decode head's output resized bilinearly to the input's size."""
    with torch.no_grad():
        return model.encode_decode(image, [{}]).float()


# ---------------------------------------------------------------------------------------------------------------
# Random weights, checkpoint, files


def randomize(model: nn.Module, seed: int) -> None:
    """Draw every parameter and BatchNorm statistic from ``seed``, in module order.

    Weights with fan-in ``n``: N(0, 1/n), so activations keep their scale through the random network (the DCNv3
    offset and mask layers too, whose official init is zero); norm and layer-scale gains 1 + N(0, 0.1**2);
    biases N(0, 0.1**2); BatchNorm running means N(0, 0.1**2) and variances U(0.75, 1.25).
    """
    generator = torch.Generator().manual_seed(seed)
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=generator, dtype=torch.float64)
                if param.dim() >= 2:
                    value = noise / math.sqrt(param[0].numel())
                elif name == "bias":
                    value = 0.1 * noise
                else:  # norm weights, layer-scale gammas, other per-channel gains
                    value = 1.0 + 0.1 * noise
                param.copy_(value.to(param.dtype))
            if isinstance(module, norms) and getattr(module, "running_mean", None) is not None:
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.75 + 0.5 * torch.rand(module.running_var.shape, generator=generator))


def checkpoint_meta(
    spec: FixtureSpec, mmseg_version: str, classes: Sequence[str], palette: Sequence[Sequence[int]]
) -> Dict[str, Any]:
    """Shaped like the meta of an mmseg 0.x training checkpoint, numpy scalar of the evaluation hook included."""
    return {
        "mmseg_version": f"{mmseg_version}+random",
        "config": f"# {spec.name} (random weights)",
        "CLASSES": tuple(classes),
        "PALETTE": [list(color) for color in palette],
        "epoch": 1,
        "iter": 160000,
        "seed": spec.seed,
        "hook_msgs": {
            "last_ckpt": "/work_dirs/latest.pth",
            "best_score": np.float64(0.8258),
            "best_ckpt": "best_mIoU_iter_160000.pth",
        },
        "source": "official InternImage code, random weights",
    }


def make_fixture(official: Official, spec: FixtureSpec) -> Dict[str, Any]:
    from mmseg.datasets import CityscapesDataset

    config = official.model_config(spec)
    model = official.build(config)
    randomize(model, spec.seed)
    generator = torch.Generator().manual_seed(spec.seed)
    image = torch.randn((1, 3, *spec.input_hw), generator=generator)
    state_dict = OrderedDict((key, value.detach().clone()) for key, value in model.state_dict().items())
    meta = checkpoint_meta(spec, official.mmseg.__version__, CityscapesDataset.CLASSES, CityscapesDataset.PALETTE)
    return {
        "checkpoint": {"meta": meta, "state_dict": state_dict},
        "input": image,
        "logits": whole_logits(model, image),
        "config": config,
        "name": spec.name,
        "seed": spec.seed,
    }


def write_fixtures(official: Official, out: Path) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in SPECS:
        path = out / f"{spec.stem}.pt"
        torch.save(make_fixture(official, spec), path)
        log.info("wrote %s", path)
        written.append(path)
    return written


def load_fixture(path: Path) -> Dict[str, Any]:
    return torch.load(path, weights_only=False)  # our own files (the meta holds a numpy scalar)


# ---------------------------------------------------------------------------------------------------------------
# --check


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def replay_error(official: Official, fixture: Dict[str, Any]) -> float:
    """The committed checkpoint, loaded strictly into the official model of its config, on its input."""
    model = official.build(fixture["config"])
    model.load_state_dict(fixture["checkpoint"]["state_dict"], strict=True)
    return relative_error(whole_logits(model, fixture["input"]), fixture["logits"])


def structure_differences(made: Dict[str, Any], committed: Dict[str, Any]) -> List[str]:
    """What differs between a regenerated fixture and the committed one, apart from the random draws."""
    problems = []
    for field in ("name", "seed", "config"):
        if made[field] != committed[field]:
            problems.append(f"{field} differs")
    if made["input"].shape != committed["input"].shape:
        problems.append(f"input {tuple(made['input'].shape)} != {tuple(committed['input'].shape)}")
    if made["logits"].shape != committed["logits"].shape:
        problems.append(f"logits {tuple(made['logits'].shape)} != {tuple(committed['logits'].shape)}")
    mine, theirs = made["checkpoint"]["state_dict"], committed["checkpoint"]["state_dict"]
    if set(mine) != set(theirs):
        problems.append(f"state-dict keys differ: {sorted(set(mine) ^ set(theirs))[:5]}")
    else:
        shapes = [key for key in mine if mine[key].shape != theirs[key].shape]
        if shapes:
            problems.append(f"state-dict shapes differ: {shapes[:5]}")
    meta_mine, meta_theirs = made["checkpoint"]["meta"], committed["checkpoint"]["meta"]
    if set(meta_mine) != set(meta_theirs):
        problems.append(f"meta keys differ: {sorted(set(meta_mine) ^ set(meta_theirs))}")
    return problems


def same_weights(made: Dict[str, Any], committed: Dict[str, Any]) -> bool:
    mine, theirs = made["checkpoint"]["state_dict"], committed["checkpoint"]["state_dict"]
    return set(mine) == set(theirs) and all(
        mine[key].shape == theirs[key].shape and torch.equal(mine[key], theirs[key]) for key in mine
    )


def check(official: Official, data: Path) -> bool:
    """Audit the committed fixtures in ``data``; prints one line per finding, returns whether all pass."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="official_fixtures_") as tmp:
        write_fixtures(official, Path(tmp))
        for spec in SPECS:
            committed_path = data / f"{spec.stem}.pt"
            if not committed_path.is_file():
                print(f"{spec.stem}: FAIL no committed file {committed_path}")
                ok = False
                continue
            committed = load_fixture(committed_path)
            made = load_fixture(Path(tmp) / f"{spec.stem}.pt")
            try:
                error = replay_error(official, committed)
            except (RuntimeError, KeyError, TypeError) as exc:  # a checkpoint the official model refuses
                print(
                    f"{spec.stem}: FAIL the official model refuses the committed checkpoint or config: "
                    f"{' '.join(str(exc).split())[:300]}"
                )
                ok = False
            else:
                passed = error <= MAX_RELATIVE_ERROR
                print(
                    f"{spec.stem}: {'ok' if passed else 'FAIL'} official output of the committed checkpoint vs "
                    f"the committed logits: relative error {error:.3e} (limit {MAX_RELATIVE_ERROR:.0e})"
                )
                ok &= passed
            problems = structure_differences(made, committed)
            print(
                f"{spec.stem}: {'FAIL' if problems else 'ok'} regenerated vs committed layout"
                + (f": {'; '.join(problems)}" if problems else " (config, input, state-dict keys/shapes, meta)")
            )
            ok &= not problems
            if same_weights(made, committed):
                regen = relative_error(made["logits"], committed["logits"])
                passed = regen <= MAX_RELATIVE_ERROR
                print(f"{spec.stem}: {'ok' if passed else 'FAIL'} regenerated logits: relative error {regen:.3e}")
                ok &= passed
            else:
                print(
                    f"{spec.stem}: note: the committed weights are other random draws than this script's, so "
                    "regenerated logits are not compared (the replay above audits them)"
                )
    return ok


# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_official_fixtures.py",
        description="Make the official_tiny_*.pt fixtures with the official InternImage code and mmsegmentation "
        "(random weights, CPU), or audit the committed ones with --check.",
    )
    parser.add_argument(
        "--internimage",
        required=True,
        type=Path,
        metavar="DIR",
        help="a checkout of github.com/OpenGVLab/InternImage (its segmentation/ folder is read)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        metavar="DIR",
        help="where to write the fixtures (default: beside this script)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and audit the fixtures in --out against the "
        "official code instead of writing; exit 1 if any check fails",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(min(4, torch.get_num_threads()))
    try:
        official = Official(args.internimage, args.verbose)
    except SetupError as exc:
        print(f"make_official_fixtures.py: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return 0 if check(official, args.out) else 1
    write_fixtures(official, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
