"""Read the metadata header of a GGUF file (the key/value pairs before the tensor table).

Plain binary parsing (little-endian GGUF versions 2 and 3), no dependency: enough to check that a
file names the model one expects (``general.architecture``, ``general.name``) and to read its
architecture numbers (``qwen2.block_count`` ...) without loading tensors. Arrays (the tokenizer's
vocabulary) are skipped unless asked for.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from ampersim.core.errors import InvalidData

MAGIC = b"GGUF"
# GGUF value type id -> struct format of a scalar (8: string, 9: array are handled separately)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(stream: BinaryIO, fmt: str, path: Path) -> Any:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise InvalidData(f"{path}: truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _left(stream: BinaryIO) -> int:
    """Bytes from the stream's position to the end of its file."""
    return os.fstat(stream.fileno()).st_size - stream.tell()


def _string(stream: BinaryIO, path: Path) -> str:
    length = _read(stream, "<Q", path)
    if length > _left(stream):  # a garbage length: refuse it before reading (it could ask for exabytes)
        raise InvalidData(f"{path}: truncated GGUF header")
    data = stream.read(length)
    if len(data) != length:
        raise InvalidData(f"{path}: truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _value(stream: BinaryIO, kind: int, path: Path, keep_arrays: bool) -> Any:
    if kind in _SCALARS:
        return _read(stream, _SCALARS[kind], path)
    if kind == _STRING:
        return _string(stream, path)
    if kind == _ARRAY:
        item_kind, count = _read(stream, "<I", path), _read(stream, "<Q", path)
        if not keep_arrays and item_kind in _SCALARS:  # skip without decoding
            stream.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
            return None
        items = [_value(stream, item_kind, path, keep_arrays) for _ in range(count)]
        return items if keep_arrays else None
    raise InvalidData(f"{path}: unknown GGUF value type {kind}")


def read_metadata(path: str | Path, *, keep_arrays: bool = False) -> dict[str, Any]:
    """The metadata key/values of the GGUF file ``path`` (arrays as None unless ``keep_arrays``)."""
    path = Path(path)
    with path.open("rb") as stream:
        if stream.read(4) != MAGIC:
            raise InvalidData(f"{path}: not a GGUF file (magic bytes are not 'GGUF')")
        version = _read(stream, "<I", path)
        if version not in (2, 3):
            raise InvalidData(f"{path}: GGUF version {version} is not supported (2, 3)")
        _read(stream, "<Q", path)  # tensor count
        count = _read(stream, "<Q", path)
        out: dict[str, Any] = {}
        for _ in range(count):
            key = _string(stream, path)
            out[key] = _value(stream, _read(stream, "<I", path), path, keep_arrays)
        return out

