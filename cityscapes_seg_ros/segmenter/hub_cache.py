"""Is a released checkpoint in the local Hugging Face cache? Answered without network, without torch.

``cached_checkpoint`` looks a hub file up in the cache; ``fetch_hint`` is the one line that tells a user
without the file how to get it (or how to run without it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]


def cached_checkpoint(
    repo_id: str, filename: str, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None
) -> Optional[Path]:
    """The cached file's path, or None when it is not in the cache (or huggingface_hub is not installed)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(
        repo_id, filename, cache_dir=None if cache_dir is None else str(cache_dir), revision=revision
    )
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_offline_env() -> bool:
    """HF_HUB_OFFLINE set to a true value (as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def download_command(repo_id: str, filename: str) -> str:
    """The shell command that puts a hub file into the cache: ``hf download`` (huggingface_hub 0.34 and newer,
    where ``huggingface-cli`` is gone since 1.0), else ``huggingface-cli download``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        major, minor = (int(part) for part in version("huggingface_hub").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        major, minor = 1, 0
    tool = "hf" if (major, minor) >= (0, 34) else "huggingface-cli"
    return f"{tool} download {repo_id} {filename}"


def fetch_hint(repo_id: str, filename: str, url: str) -> str:
    """How to get a missing checkpoint, or run without it: one sentence."""
    return (
        f"fetch the file with network access (it downloads once into the Hugging Face cache; or "
        f"`{download_command(repo_id, filename)}`, or {url}), pass --checkpoint FILE, "
        "or run the pipeline alone with --checkpoint none (random weights)"
    )
