"""Read what is left of an MCAP file that lost its end (a recording killed, a copy cut short).

``rosbags`` opens an MCAP file through its footer and summary; without them it refuses the whole file.
This scans the records from the start instead (MCAP is a sequence of ``opcode u8, length u64, body``
records; messages may sit inside chunks) and stops at the first incomplete record.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

MAGIC = b"\x89MCAP0\r\n"
SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x03, 0x04, 0x05, 0x06


class McapScan:
    """Sequential reader; ``messages()`` yields (topic, msgtype, log time ns, data) in file order."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.schemas: Dict[int, str] = {}  # schema id -> type name
        self.channels: Dict[int, Tuple[str, str]] = {}  # channel id -> (topic, type name)
        self.stopped_at: int = 0  # byte offset where reading stopped
        self.reason: str = ""

    def messages(self) -> Iterator[Tuple[str, str, int, bytes]]:
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            self.reason = "not an MCAP file (bad magic)"
            return
        yield from self._records(data, len(MAGIC), top_level=True)

    def _records(self, data: bytes, offset: int, top_level: bool) -> Iterator[Tuple[str, str, int, bytes]]:
        while offset < len(data):
            if offset + 9 > len(data):
                break
            opcode, length = struct.unpack_from("<BQ", data, offset)
            body_start, body_end = offset + 9, offset + 9 + length
            if body_end > len(data):
                break
            body = memoryview(data)[body_start:body_end]
            if opcode == SCHEMA:
                schema_id, = struct.unpack_from("<H", body, 0)
                self.schemas[schema_id] = read_string(body, 2)[0]
            elif opcode == CHANNEL:
                channel_id, schema_id = struct.unpack_from("<HH", body, 0)
                topic, _ = read_string(body, 4)
                self.channels[channel_id] = (topic, self.schemas.get(schema_id, ""))
            elif opcode == MESSAGE:
                channel_id, _, log_time = struct.unpack_from("<HIQ", body, 0)
                if channel_id in self.channels:
                    topic, msgtype = self.channels[channel_id]
                    yield topic, msgtype, log_time, bytes(body[22:])
            elif opcode == CHUNK:
                yield from self._records(decompress_chunk(body), 0, top_level=False)
            offset = body_end
        if top_level:
            self.stopped_at = offset
            if offset < len(data):
                self.reason = f"incomplete record at byte {offset} of {len(data)}"


def read_string(body, offset: int) -> Tuple[str, int]:
    size, = struct.unpack_from("<I", body, offset)
    start = offset + 4
    return bytes(body[start : start + size]).decode("utf-8"), start + size


def decompress_chunk(body) -> bytes:
    _, _, uncompressed_size, _ = struct.unpack_from("<QQQI", body, 0)
    compression, offset = read_string(body, 28)
    size, = struct.unpack_from("<Q", body, offset)
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


def mcap_files(bag: Path) -> List[Path]:
    bag = Path(bag)
    return [bag] if bag.is_file() else sorted(bag.glob("*.mcap"))
