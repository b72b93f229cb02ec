"""Bags written whole or not at all, their MCAP chunks checksummed.

rosbags' MCAP writer leaves every chunk's CRC at 0 ("none"), so a flipped byte in a stored image would go
unnoticed; ``BagWriter`` fills the CRCs in, and rosbags' reader (and ``mcap_scan``) check them. ``staged_bag``
writes a new bag beside its destination and moves it there only once it is complete.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter

from ..harness.interrupts import interrupts_deferred
from .bagio import BagError, parse_storage
from .mcap_scan import CHUNK_CRC_OFFSET, RECORD_HEAD

CHUNK_INDEX_OFFSET_FIELD = 16  # a Chunk Index record's body: start time u64, end time u64, chunk start offset u64


class ChecksummedMcapWriter(McapWriter):
    """rosbags' MCAP storage with each chunk's CRC-32 of its uncompressed records filled in."""

    def close_chunk(self) -> None:
        with self.chunk.bio.getbuffer() as records:
            crc = zlib.crc32(records)
        chunk_start = self.bio.tell()
        super().close_chunk()
        (indexed_start,) = struct.unpack_from("<Q", self.chunks[-1].getbuffer(), CHUNK_INDEX_OFFSET_FIELD)
        if indexed_start != chunk_start:  # rosbags changed how it lays chunks out: do not patch blindly
            raise BagError("unexpected MCAP chunk layout from this rosbags version; cannot write checksums")
        end = self.bio.tell()
        self.bio.seek(chunk_start + RECORD_HEAD + CHUNK_CRC_OFFSET)
        self.bio.write(struct.pack("<I", crc))
        self.bio.seek(end)


class BagWriter(Writer):
    """``rosbags.rosbag2.Writer`` whose MCAP files carry chunk checksums."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: ChecksummedMcapWriter}


def new_writer(path: Path, storage: str = "mcap") -> BagWriter:
    """A writer (not yet opened) of a rosbag2 version 9 bag at ``path``, which must not exist."""
    return BagWriter(Path(path), version=9, storage_plugin=parse_storage(storage))


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite``, and never replace a folder that is not a bag."""
    out = Path(out)
    if not out.exists():
        return
    if not overwrite:
        raise BagError(f"{out} already exists (pass --overwrite to replace it)")
    if out.is_dir() and not (out / "metadata.yaml").is_file() and any(out.iterdir()):
        raise BagError(f"{out} is a non-empty folder that is not a bag; refusing to replace it")


@contextmanager
def staged_bag(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a path to write a new bag at; when the block ends without error the bag becomes ``out``.

    The bag is written in a hidden folder beside ``out`` (same file system: the move is a rename), so an error
    or an interruption leaves neither a half-written bag nor a changed ``out``.
    """
    out = Path(out)
    check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred():  # the folder is bound to ``staging`` (so removed below) before a Ctrl-C lands
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        staged = staging / out.name  # rosbags names the storage file after the folder
        yield staged
        if not (staged / "metadata.yaml").is_file():
            raise BagError(f"{out}: the bag was not closed; nothing written")
        check_output(out, overwrite)  # again: something may have appeared there meanwhile
        if out.exists():
            os.rename(out, staging / "replaced")
        os.rename(staged, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
