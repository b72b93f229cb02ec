"""MCAP files read record by record: what is left of one that lost its end, and the chunks' checksums.

``rosbags`` opens an MCAP file through its footer and summary; without them it refuses the whole file. This
reads the records from the start instead (MCAP is a sequence of ``opcode u8, length u64, body`` records;
messages may sit inside chunks), checks each chunk's CRC-32 when it has one, and stops at the first record
that is incomplete or fails its check, saying why. A file that ends with its footer is complete.

With ``skip_corrupt_chunks`` a chunk that fails its check is skipped (its length is in its intact record head)
and reading goes on: one flipped byte then costs the messages of one chunk, not the rest of the file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Tuple

MAGIC = b"\x89MCAP0\r\n"
FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, CHUNK_INDEX = 0x02, 0x03, 0x04, 0x05, 0x06, 0x08
RECORD_HEAD = 9  # opcode u8, body length u64
FOOTER_SIZE = RECORD_HEAD + 20 + len(MAGIC)  # summary start u64, summary offset start u64, summary crc u32
# A Chunk record's body starts: message start time u64, end time u64, uncompressed size u64, uncompressed CRC u32
# (0: none), compression string, records length u64, records.
CHUNK_CRC_OFFSET = 24

Message = Tuple[str, str, int, bytes]  # topic, type name, log time ns, CDR bytes


class McapScan:
    """Sequential reader; ``messages()`` yields (topic, msgtype, log time ns, data) in file order.

    Afterwards ``complete`` tells whether the file ended with its footer, ``reason`` why reading stopped
    early (empty when it did not), ``skipped`` the corrupt chunks passed over (``skip_corrupt_chunks``) and
    ``unchecked_chunks`` how many chunks carried no checksum.
    """

    def __init__(self, path: Path, skip_corrupt_chunks: bool = False) -> None:
        self.path = Path(path)
        self.skip_corrupt_chunks = skip_corrupt_chunks
        self.skipped: List[str] = []  # the chunks skipped: where, the log times of their messages, why
        self.schemas: dict = {}  # schema id -> type name
        self.channels: dict = {}  # channel id -> (topic, type name)
        self.complete = False
        self.reason = ""
        self.chunks = 0
        self.unchecked_chunks = 0

    def messages(self) -> Iterator[Message]:
        with open(self.path, "rb") as file:
            size = file.seek(0, 2)
            file.seek(0)
            if file.read(len(MAGIC)) != MAGIC:
                self.reason = "not an MCAP file (bad magic)"
                return
            yield from self._top_level(file, size)

    def _top_level(self, file: BinaryIO, size: int) -> Iterator[Message]:
        while True:
            offset = file.tell()
            head = file.read(RECORD_HEAD)
            if len(head) < RECORD_HEAD:
                self.reason = f"the file ends at byte {size} without its footer (cut short)"
                return
            opcode, length = struct.unpack("<BQ", head)
            if offset + RECORD_HEAD + length > size:
                self.reason = f"incomplete record at byte {offset} of {size}"
                return
            if opcode == FOOTER:
                file.seek(length, 1)
                self.complete = file.read() == MAGIC
                if not self.complete:
                    self.reason = f"bytes after the footer at byte {offset} are not the closing magic"
                return
            if opcode not in (SCHEMA, CHANNEL, MESSAGE, CHUNK):
                file.seek(length, 1)  # indexes, statistics, metadata, attachments: not needed here
                continue
            body = memoryview(file.read(length))
            try:
                records = self._chunk_records(body) if opcode == CHUNK else [(opcode, body)]
                messages = [message for inner in records for message in self._handle(*inner)]
            except (ValueError, struct.error, UnicodeDecodeError) as exc:
                if opcode == CHUNK and self.skip_corrupt_chunks and len(body) >= CHUNK_CRC_OFFSET:
                    start, end = struct.unpack_from("<QQ", body, 0)
                    self.skipped.append(f"chunk at byte {offset} (messages logged {start}..{end} ns): {exc}")
                    continue
                self.reason = f"{'chunk' if opcode == CHUNK else 'record'} at byte {offset}: {exc}"
                return
            yield from messages

    def _chunk_records(self, body: memoryview) -> List[Tuple[int, memoryview]]:
        """The chunk's records, checked against its CRC when it has one (ValueError when they fail)."""
        self.chunks += 1
        uncompressed_size, crc = struct.unpack_from("<QI", body, 16)
        try:
            records = decompress_chunk(body)
        except Exception as exc:  # noqa: BLE001 - any decoder error means the chunk is unusable
            raise ValueError(f"cannot decompress ({exc})") from None
        if len(records) != uncompressed_size:
            raise ValueError(f"holds {len(records)} bytes of records, its header says {uncompressed_size}")
        if crc == 0:
            self.unchecked_chunks += 1
        elif zlib.crc32(records) != crc:
            raise ValueError("checksum mismatch (the data is corrupt)")
        return list(iter_records(records))

    def _handle(self, opcode: int, body: memoryview) -> List[Message]:
        if opcode == SCHEMA:
            (schema_id,) = struct.unpack_from("<H", body, 0)
            self.schemas[schema_id] = read_string(body, 2)[0]
        elif opcode == CHANNEL:
            channel_id, schema_id = struct.unpack_from("<HH", body, 0)
            self.channels[channel_id] = (read_string(body, 4)[0], self.schemas.get(schema_id, ""))
        elif opcode == MESSAGE:
            channel_id, _, log_time = struct.unpack_from("<HIQ", body, 0)
            if channel_id in self.channels:
                topic, msgtype = self.channels[channel_id]
                return [(topic, msgtype, log_time, bytes(body[22:]))]
        return []


def iter_records(data: bytes) -> Iterator[Tuple[int, memoryview]]:
    """(opcode, body) of the records in a byte string (a chunk's records, a summary section)."""
    view, offset = memoryview(data), 0
    while offset + RECORD_HEAD <= len(view):
        opcode, length = struct.unpack_from("<BQ", view, offset)
        start = offset + RECORD_HEAD
        if start + length > len(view):
            raise ValueError(f"record at byte {offset} runs past the end of its section")
        yield opcode, view[start : start + length]
        offset = start + length


def read_string(body, offset: int) -> Tuple[str, int]:
    (size,) = struct.unpack_from("<I", body, offset)
    start = offset + 4
    return bytes(body[start : start + size]).decode("utf-8"), start + size


def decompress_chunk(body) -> bytes:
    compression, offset = read_string(body, CHUNK_CRC_OFFSET + 4)
    (size,) = struct.unpack_from("<Q", body, offset)
    records = bytes(body[offset + 8 : offset + 8 + size])
    if compression == "":
        return records
    if compression == "zstd":
        try:
            from compression import zstd
        except ImportError:
            import zstandard as zstd
        return zstd.decompress(records)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(records)
    raise ValueError(f"unsupported MCAP chunk compression {compression!r}")


def chunk_checksums(path: Path) -> Optional[Tuple[int, int]]:
    """(chunks, chunks without a CRC) of a complete MCAP file, read from its summary's chunk index.

    Costs a few small reads, not a pass over the data; None when the file has no usable summary.
    """
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size < len(MAGIC) + FOOTER_SIZE:
            return None
        file.seek(size - FOOTER_SIZE)
        footer = file.read(FOOTER_SIZE)
        if footer[0] != FOOTER or footer[-len(MAGIC) :] != MAGIC:
            return None
        (summary_start,) = struct.unpack_from("<Q", footer, RECORD_HEAD)
        if not len(MAGIC) <= summary_start <= size - FOOTER_SIZE:
            return None
        file.seek(summary_start)
        summary = file.read(size - FOOTER_SIZE - summary_start)
        chunks = unchecked = 0
        try:
            for opcode, body in iter_records(summary):
                if opcode == CHUNK_INDEX:
                    (chunk_offset,) = struct.unpack_from("<Q", body, 16)
                    file.seek(chunk_offset + RECORD_HEAD + CHUNK_CRC_OFFSET)
                    (crc,) = struct.unpack("<I", file.read(4))
                    chunks += 1
                    unchecked += crc == 0
        except (ValueError, struct.error):
            return None
        return chunks, unchecked


def mcap_files(bag: Path) -> List[Path]:
    bag = Path(bag)
    return [bag] if bag.is_file() else sorted(bag.glob("*.mcap"))
