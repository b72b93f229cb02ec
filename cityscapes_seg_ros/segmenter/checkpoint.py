"""Finding and loading mmseg-format checkpoints, strictly and safely.

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``, which allows
tensors and plain containers only. mmseg 0.x training checkpoints also carry a numpy scalar in
``meta['hook_msgs']['best_score']``; exactly the numpy types needed for that are allowed.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..models.segmentor import HubLocation

log = logging.getLogger(__name__)

HUB_SCHEME = "hf://"
PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, read, or does not fit the model."""


def _numpy_safe_globals() -> List:
    """What a numpy scalar metric (float64, float32 or int64) in ``meta`` needs, and nothing else."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtype_classes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64)]
    # Checkpoints pickled under NumPy 1.x name the scalar reconstructor numpy.core.multiarray.scalar.
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtype_classes]


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read the ``state_dict`` of an mmseg checkpoint (or a bare state dict) without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"checkpoint {path} could not be read as a PyTorch file (neither zip nor pickle)")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than weights, which are not loaded "
            f"from untrusted files (weights_only=True). {_refusal_reason(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... for corrupt or non-torch files
        raise CheckpointError(f"checkpoint {path} could not be read as a PyTorch file: {_first_line(exc)}") from None
    return _extract_state_dict(obj, path)


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive; very old files are a bare pickle (protocol >= 2 starts with 0x80)."""
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def _extract_state_dict(obj: object, path: Path) -> Dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"checkpoint {path} has no state_dict (expected {{'meta': ..., 'state_dict': ...}}; "
            f"top-level keys: {_preview([str(k) for k in obj])})"
        )
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"checkpoint {path} has no state_dict (expected {{'meta': ..., 'state_dict': ...}})")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"checkpoint {path}: state_dict entries that are not tensors: {_preview(not_tensors)}")
    return dict(obj)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one error naming every missing, unexpected and mis-shaped key (works on a meta-device model)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        (k, tuple(state_dict[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        raise CheckpointError(_mismatch_report(source, missing, unexpected, misshaped))


def _mismatch_report(
    source: str, missing: List[str], unexpected: List[str], misshaped: List[Tuple[str, tuple, tuple]]
) -> str:
    lines = [f"{source} does not fit the model:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {_preview(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
    if misshaped:
        shown = ", ".join(f"{k} (checkpoint {list(got)}, model {list(want)})" for k, got, want in misshaped[:20])
        more = f" ... and {len(misshaped) - 20} more" if len(misshaped) > 20 else ""
        lines.append(f"  mis-shaped keys ({len(misshaped)}): {shown}{more}")
    lines.append("  Is it the checkpoint of this model (check --model / the config name)?")
    return "\n".join(lines)


def parse_hub_source(source: str, default: Optional[HubLocation] = None) -> Tuple[HubLocation, Optional[str]]:
    """``"hub"`` (the model's released file), or ``"hf://<owner>/<repo>/<file>[@revision]"``."""
    revision = None
    if source == "hub":
        if default is None:
            raise CheckpointError("checkpoint 'hub' needs a model with a released checkpoint location")
        return default, None
    rest = source[len(HUB_SCHEME) :]
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
    parts = rest.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise CheckpointError(f"bad hub checkpoint {source!r}: expected hf://<owner>/<repo>/<file>[@revision]")
    return HubLocation(f"{parts[0]}/{parts[1]}", parts[2]), revision


def download_from_hub(
    location: HubLocation,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    offline: Optional[bool] = None,
) -> Path:
    """Fetch (or find in the Hugging Face cache) a checkpoint file. ``offline=None`` follows HF_HUB_OFFLINE."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = f"{location.repo_id}/{location.filename}" + (f"@{revision}" if revision else "")
    try:
        path = hf_hub_download(
            repo_id=location.repo_id,
            filename=location.filename,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=bool(offline),
        )
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"checkpoint {where} is not in the Hugging Face cache and cannot be downloaded now "
            "(offline mode, or the hub is unreachable). Download it on a connected machine "
            f"({location.url}) and pass --checkpoint PATH, or fill the cache (HF_HOME / cache_dir)."
        ) from None
    except (EntryNotFoundError, RepositoryNotFoundError) as exc:
        raise CheckpointError(f"checkpoint {where} does not exist on the hub: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - revision not found, HTTP errors, ...
        raise CheckpointError(f"checkpoint {where} could not be fetched from the hub: {_first_line(exc)}") from None
    return Path(path)


def resolve_checkpoint(
    source: PathLike,
    default: Optional[HubLocation] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    offline: Optional[bool] = None,
) -> Path:
    """A local file path, ``"hub"`` or ``"hf://owner/repo/file[@rev]"`` -> a local file path."""
    text = os.fspath(source)
    if text == "hub" or text.startswith(HUB_SCHEME):
        location, parsed_revision = parse_hub_source(text, default)
        return download_from_hub(location, revision or parsed_revision, cache_dir, offline)
    path = Path(text).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    return path


def _preview(keys: List[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _refusal_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, in a few words; never torch's advice to load the file with
    ``weights_only=False`` or to allowlist the object (either would run whatever the file holds)."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"It names {found.group(1)}, which is no part of a weights file."
    found = re.search(r"Unsupported operand (\d+)", text)
    if found:
        return f"Its pickle uses instruction {found.group(1)}, which weights do not need."
    return "Only tensors, numbers, strings and containers of them are read."
