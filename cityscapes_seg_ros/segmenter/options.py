"""The model options, from the command line or the node's parameters to a ready predictor, in one place.

``ModelOptions`` holds what a prediction depends on: the model (one of the nine names or a YAML/JSON file
with an mmseg model dict), the checkpoint (``hub`` — the released file — by default everywhere; a local
``.pth``; ``hf://owner/repo/file[@rev]``; ``none`` for random weights, only when asked for), hub revision,
cache and offline mode, device, precision, mode, test-time augmentation, image scale and DCNv3 backend.
``add_model_arguments`` gives every CLI the same argument group, the node declares its parameters from the
same choices, and ``build_predictor`` is the one way from options to a ``Predictor``.

This module imports neither torch nor rclpy until a model is built.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Type, Union

import yaml

from .choices import DCNV3_BACKENDS, DEFAULT_INFERENCE_SIZE, MODES, PRECISIONS, TTA_CHOICES
from .devices import check_device

log = logging.getLogger(__name__)

DEFAULT_MODEL = "upernet_internimage_t_512x1024_160k_cityscapes"
HUB_CHECKPOINT = "hub"
NO_CHECKPOINT = "none"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
RANDOM_WEIGHTS_SEED = 0  # --checkpoint none: the same random model in every run and every torchrun rank
RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS (--checkpoint none): the predictions and scores are meaningless"


@dataclass(frozen=True)
class ModelOptions:
    """Everything a prediction depends on; the defaults are the official test settings."""

    model: str = DEFAULT_MODEL
    checkpoint: str = HUB_CHECKPOINT
    revision: Optional[str] = None
    cache_dir: Optional[str] = None
    hub_offline: bool = False
    device: str = "auto"
    precision: str = "fp32"
    mode: str = "whole"
    tta: str = "none"
    img_scale: Tuple[int, int] = DEFAULT_INFERENCE_SIZE
    dcnv3_backend: str = "auto"

    def __post_init__(self) -> None:
        problems = [why for why in (self._problem(f.name) for f in fields(self)) if why]
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "device", check_device(self.device))
        object.__setattr__(self, "img_scale", tuple(int(v) for v in self.img_scale))

    def _problem(self, name: str) -> Optional[str]:
        value = getattr(self, name)
        choices = {"precision": PRECISIONS, "mode": MODES, "tta": TTA_CHOICES, "dcnv3_backend": DCNV3_BACKENDS}
        if name in choices and value not in choices[name]:
            return f"unknown {name} {value!r}; expected one of {', '.join(choices[name])}"
        if name == "model":
            return model_problem(value)
        if name == "checkpoint" and not str(value).strip():
            return f"checkpoint is empty; expected '{HUB_CHECKPOINT}', a .pth file, hf://... or '{NO_CHECKPOINT}'"
        if name == "img_scale" and (len(value) != 2 or min(int(v) for v in value) < 1):
            return f"image scale must be two positive sizes (long edge, short edge), got {value!r}"
        if name == "device":
            from .devices import device_problem

            return device_problem(value)
        return None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        """The options of a parser that ``add_model_arguments`` filled."""
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in vars(args).items() if name in names and value is not None})

    @property
    def random_weights(self) -> bool:
        return self.checkpoint.strip().lower() == NO_CHECKPOINT

    @property
    def model_name(self) -> str:
        """The registry name, or the config file's stem."""
        return Path(self.model).stem if is_config_file(self.model) else self.model

    def with_device(self, device: str) -> ModelOptions:
        return replace(self, device=device)

    def identity(self) -> Dict[str, Any]:
        """What the predictions depend on, stable across runs (files as absolute paths): for run records."""
        where = ("device", "cache_dir", "hub_offline", "dcnv3_backend")  # where and how fast, not what
        record = {key: value for key, value in asdict(self).items() if key not in where}
        if is_config_file(self.model):
            record["model"] = str(Path(self.model).resolve())
        if Path(self.checkpoint).is_file():
            record["checkpoint"] = str(Path(self.checkpoint).resolve())
        record["img_scale"] = list(self.img_scale)
        return record

    def describe(self) -> Dict[str, Optional[str]]:
        """For reports and logs (an unset value is None: JSON null, not "None"); says loudly when the weights
        are random."""
        about = {key: None if value is None else str(value) for key, value in self.identity().items()}
        if self.random_weights:
            about["checkpoint"] = RANDOM_WEIGHTS_NOTE
        return about

    def node_parameters(self, names: Optional[Iterable[str]] = None) -> List[str]:
        """The node's ``name:=value`` parameters for these options (all, or those of the given field names)."""
        values = {
            "model": ("model", self.model),
            "checkpoint": ("checkpoint", self.checkpoint),
            "hub_offline": ("hub_offline", "true" if self.hub_offline else "false"),
            "device": ("device", self.device),
            "precision": ("precision", self.precision),
            "mode": ("mode", self.mode),
            "tta": ("tta", self.tta),
            "img_scale": ("inference_size", f"[{self.img_scale[0]}, {self.img_scale[1]}]"),
            "dcnv3_backend": ("dcnv3_backend", self.dcnv3_backend),
        }
        wanted = values if names is None else [name for name in values if name in set(names)]
        return [f"{values[name][0]}:={values[name][1]}" for name in wanted]


def given_options(args: argparse.Namespace) -> List[str]:
    """The ``ModelOptions`` fields the user set on the command line (``add_model_arguments`` leaves others None)."""
    return [f.name for f in fields(ModelOptions) if getattr(args, f.name, None) is not None]


def is_config_file(model: str) -> bool:
    return str(model).lower().endswith(CONFIG_SUFFIXES)


def model_names() -> List[str]:
    from ..models import list_models

    return list_models()


def model_problem(model: str) -> Optional[str]:
    """None for one of the nine names or an existing config file, else why not."""
    if is_config_file(model):
        return None if Path(model).is_file() else f"model config file {model} does not exist"
    if model in model_names():
        return None
    return f"unknown model {model!r}: expected one of {', '.join(model_names())} or an mmseg config file (.yaml/.json)"


def read_model_config(path: Union[str, Path]) -> dict:
    """A YAML or JSON file holding an mmseg model dict, either bare or under a ``model`` key."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read model config {path}: {exc}") from None
    if isinstance(data, dict) and "model" in data:
        data = data["model"]
    if not isinstance(data, dict) or "backbone" not in data:
        raise ValueError(f"model config {path} holds no mmseg model dict (with backbone and decode_head)")
    return data


def model_spec(model: str) -> Union[str, Mapping]:
    """What ``build_segmentor`` takes: the registry name, or the config file's model dict."""
    return read_model_config(model) if is_config_file(model) else model


def load_segmentor(options: ModelOptions):
    """The model with its weights on the options' device (``CheckpointError`` / ``ValueError`` / ``RuntimeError``)."""
    from .builder import build_segmentor

    if options.random_weights:
        log.warning("%s: %s", options.model_name, RANDOM_WEIGHTS_NOTE)
    if options.random_weights:
        import torch

        with torch.random.fork_rng(devices=[]):  # seeded here, the caller's random state left as it was
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            return build_segmentor(model_spec(options.model), None, options.device, dcnv3_backend=options.dcnv3_backend)
    return build_segmentor(
        model_spec(options.model),
        options.checkpoint,
        options.device,
        revision=options.revision,
        cache_dir=options.cache_dir,
        offline=options.hub_offline or None,
        dcnv3_backend=options.dcnv3_backend,
    )


def build_predictor(options: ModelOptions, predictor_class: Optional[Type] = None):
    """The one way from options to a ready ``Predictor`` (or a subclass such as the node's)."""
    from .inference import Predictor

    segmentor = load_segmentor(options)
    predictor = (predictor_class or Predictor)(
        segmentor, precision=options.precision, mode=options.mode, tta=options.tta, img_scale=options.img_scale
    )
    log.info(
        "%s on %s (%s, %s, tta=%s, scale %dx%d)",
        segmentor.cfg.name,
        predictor.device,
        options.precision,
        options.mode,
        options.tta,
        *options.img_scale,
    )
    return predictor


def parse_scale(text: str) -> Tuple[int, int]:
    """``LONGxSHORT`` (``2048x1024``) -> (long edge, short edge)."""
    try:
        long_edge, short_edge = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LONGxSHORT such as 2048x1024, got {text!r}") from None
    if min(long_edge, short_edge) < 1:
        raise argparse.ArgumentTypeError(f"image scale must be positive, got {text!r}")
    return long_edge, short_edge


def _model_argument(text: str) -> str:
    why = model_problem(text)
    if why:
        raise argparse.ArgumentTypeError(why)
    return text


def _device_argument(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options as one argument group; ``ModelOptions.from_args`` reads them back.

    Options not given stay None and ``from_args`` fills in ``ModelOptions``' defaults, so a tool can tell what
    the user set (the bag evaluator's live mode hands only those to the node).
    """
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        type=_model_argument,
        metavar="NAME|FILE",
        help=f"one of the nine models (`cityscapes-seg models`) or a YAML/JSON file with an mmseg "
        f"model dict (default {DEFAULT_MODEL})",
    )
    group.add_argument("--config", dest="model", type=_model_argument, help=argparse.SUPPRESS)  # the old spelling
    group.add_argument(
        "--checkpoint",
        metavar="SOURCE",
        help="'hub' (the released checkpoint on the Hugging Face hub, default), a local .pth, "
        "hf://owner/repo/file[@rev], or 'none' (random weights: for smoke tests only)",
    )
    group.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    group.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    group.add_argument(
        "--hub-offline",
        action="store_true",
        default=None,
        help="use only the local Hugging Face cache, no download (HF_HUB_OFFLINE=1 works too)",
    )
    group.add_argument(
        "--device", type=_device_argument, help="auto (CUDA when available), cpu, cuda or cuda:<index> (default auto)"
    )
    group.add_argument("--precision", choices=PRECISIONS, help="default fp32")
    group.add_argument("--mode", choices=MODES, help="whole image (default) or sliding 512x1024 windows")
    group.add_argument(
        "--tta",
        choices=TTA_CHOICES,
        help="test-time augmentation: ms = the official scales 0.5..1.75, flip = horizontal",
    )
    group.add_argument(
        "--img-scale",
        type=parse_scale,
        metavar="LONGxSHORT",
        help="keep-ratio resize bound of the test pipeline (default 2048x1024, the official)",
    )
    group.add_argument(
        "--dcnv3-backend",
        choices=DCNV3_BACKENDS,
        help="DCNv3 core: auto (the compiled op when available) or torch (default auto)",
    )
