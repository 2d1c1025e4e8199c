"""A bounds-checked scan of a GGUF file's header, run before `gguf.GGUFReader` sees the file.

The reader trusts the header: it loops over the claimed number of metadata entries, array
elements and tensors, and past the end of its memory map every read comes back empty instead of
failing, so an array claiming 2**50 elements loops (and grows a list) for ever; it builds a
Python object per array element (about 0.7 KB and 20 us each), and a string claiming 2**50 bytes
is copied up to the end of the file. This scan walks the same structure with `struct` over a
memory map, checking every count and length against the bytes the file has left, so a hostile or
broken file is refused in milliseconds with one CheckpointError saying what is wrong, and a file
that passes cannot make the reader loop or read out of bounds.

Limits beyond the file's size bound what the reader may build from a small file: at most
`MAX_ARRAY_ITEMS` elements in one array and `MAX_READER_PARTS` per-element objects in all (the
largest Gemma vocabulary, 262 144 tokens, needs 1.05 million: a string costs two, a number one),
`MAX_TENSORS` tensors and `MAX_KV` metadata entries, `MAX_NAME_BYTES` per key or tensor name,
`MAX_DIMS` dimensions per tensor (llama.cpp's GGML_MAX_DIMS).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from pathlib import Path

from ...errors import CheckpointError

HEADER_BYTES = 24  # magic, version, tensor count, metadata entry count
SUPPORTED_VERSIONS = (2, 3)  # what gguf.GGUFReader reads; version 1 had 32-bit counts
DEFAULT_ALIGNMENT = 32

MAX_TENSORS = 1 << 16  # Gemma 3 27B has 808
MAX_KV = 1 << 16  # real files have about 40
MAX_NAME_BYTES = 1 << 12
MAX_DIMS = 4
MAX_ARRAY_ITEMS = 1 << 20
MAX_READER_PARTS = 1 << 21
MAX_ELEMENTS = 1 << 62  # elements in one tensor: far beyond any file, far below int64 overflow

# GGUF metadata value types -> size in bytes (fixed-size ones); 8 is a string, 9 an array.
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
               7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}

# The smallest metadata entry (empty key, type, a one-byte value) and tensor description
# (empty name, no dimensions, type, offset): what bounds a claimed count by the bytes left.
_MIN_KV_BYTES = 8 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: int
    dims: tuple[int, ...]  # as stored: fastest dimension first
    offset: int  # from the start of the data section
    n_bytes: int


@dataclasses.dataclass(frozen=True)
class GGUFHeader:
    version: int
    byte_order: str  # "<" or ">" (struct notation)
    file_size: int
    alignment: int
    data_offset: int  # where the tensor data section starts
    keys: tuple[str, ...]
    tensors: tuple[TensorInfo, ...]


class _Problem(Exception):
    pass


class _Scanner:
    def __init__(self, buf, size: int, order: str):
        self.buf, self.size, self.order, self.pos = buf, size, order, 0

    def left(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str) -> None:
        if n > self.left():
            raise _Problem(f"{what} at byte {self.pos} needs {n} bytes, but only {self.left()} are left: "
                           "the file is truncated or corrupt")

    def unpack(self, fmt: str, what: str):
        fmt = self.order + fmt
        n = struct.calcsize(fmt)
        self.need(n, what)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return values

    def u32(self, what: str) -> int:
        return self.unpack("I", what)[0]

    def u64(self, what: str) -> int:
        return self.unpack("Q", what)[0]

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def string(self, what: str, limit: int | None = None) -> bytes:
        start = self.pos
        length = self.u64(f"the length of {what}")
        if length > self.left():
            raise _Problem(f"{what} at byte {start} claims {length} bytes, but only {self.left()} are left in the "
                           "file: the file is truncated or corrupt")
        if limit is not None and length > limit:
            raise _Problem(f"{what} at byte {start} claims {length} bytes, more than the {limit} allowed: "
                           "the file is corrupt")
        data = bytes(self.buf[self.pos:self.pos + length])
        self.pos += length
        return data

    def name(self, what: str) -> str:
        start = self.pos
        raw = self.string(what, MAX_NAME_BYTES)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Problem(f"{what} at byte {start} is not UTF-8: the file is corrupt") from None


def _check_count(count: int, what: str, limit: int, min_bytes: int, scanner: _Scanner) -> None:
    room = scanner.left() // min_bytes
    if count > room:
        raise _Problem(f"the header claims {count} {what}, more than the {scanner.left()} bytes left in the file "
                       f"can hold (at most {room}): the file is truncated or corrupt")
    if count > limit:
        raise _Problem(f"the header claims {count} {what}, more than the {limit} this loader accepts: "
                       "the file is corrupt")


def _read_value(s: _Scanner, vtype: int, key: str, parts: list[int]) -> int | None:
    """Skip one metadata value, counting the reader's per-element objects in parts[0].
    Returns the value for a uint32 scalar (general.alignment needs it), else None."""
    if vtype == _UINT32:
        return s.u32(f"the value of {key}")
    if vtype in _FIXED_SIZES:
        s.skip(_FIXED_SIZES[vtype], f"the value of {key}")
        return None
    if vtype == _STRING:
        s.string(f"the string value of {key}")
        return None
    if vtype != _ARRAY:
        raise _Problem(f"metadata key {key!r} has unknown value type {vtype}: the file is corrupt")
    start = s.pos
    item_type, count = s.unpack("IQ", f"the array header of {key}")
    if item_type == _ARRAY:
        raise _Problem(f"metadata key {key!r} is an array of arrays, which GGUF readers do not support")
    if item_type not in _FIXED_SIZES and item_type != _STRING:
        raise _Problem(f"metadata key {key!r} is an array of unknown value type {item_type}: the file is corrupt")
    item_bytes = _FIXED_SIZES.get(item_type, 8)  # a string is at least its 8-byte length
    if count > s.left() // item_bytes:
        raise _Problem(f"metadata key {key!r} at byte {start} claims an array of {count} "
                       f"{_TYPE_NAMES[item_type]} elements, more than the {s.left()} bytes left in the file can hold: "
                       "the file is truncated or corrupt")
    if count > MAX_ARRAY_ITEMS:
        raise _Problem(f"metadata key {key!r} claims an array of {count} elements, more than the "
                       f"{MAX_ARRAY_ITEMS} this loader accepts")
    parts[0] += count * (2 if item_type == _STRING else 1)
    if parts[0] > MAX_READER_PARTS:
        raise _Problem(f"the metadata arrays hold more than {MAX_READER_PARTS} elements in all "
                       f"(at {key!r}), more than this loader accepts")
    if item_type == _STRING:
        _skip_strings(s, count, key)
    else:
        s.skip(count * item_bytes, f"the array {key}")
    return None


def _skip_strings(s: _Scanner, count: int, key: str) -> None:
    """s.string() for each element, in a tighter loop (a vocabulary has 262 144 of them)."""
    unpack, buf, pos, end = struct.Struct(s.order + "Q").unpack_from, s.buf, s.pos, s.size
    for i in range(count):
        if end - pos < 8:
            s.pos = pos
            s.need(8, f"the length of element {i} of {key}")
        length = unpack(buf, pos)[0]
        pos += 8
        if length > end - pos:
            raise _Problem(f"element {i} of {key} at byte {pos - 8} claims {length} bytes, but only {end - pos} "
                           "are left in the file: the file is truncated or corrupt")
        pos += length
    s.pos = pos


def _scan(buf, size: int) -> GGUFHeader:
    if size < HEADER_BYTES:
        raise _Problem(f"the file is truncated: {size} bytes, shorter than a GGUF header ({HEADER_BYTES} bytes)")
    if bytes(buf[:4]) != b"GGUF":
        raise _Problem("not a GGUF file (it does not start with the bytes 'GGUF')")
    (version,) = struct.unpack_from("<I", buf, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order (as gguf.GGUFReader tells)
        order = ">"
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in SUPPORTED_VERSIONS:
        raise _Problem(f"GGUF version {version} is not supported (this loader reads versions "
                       f"{' and '.join(map(str, SUPPORTED_VERSIONS))})")
    s = _Scanner(buf, size, order)
    s.pos = 8
    tensor_count, kv_count = s.unpack("QQ", "the header")
    _check_count(kv_count, "metadata entries", MAX_KV, _MIN_KV_BYTES, s)

    keys: list[str] = []
    seen: set[str] = set()
    alignment = DEFAULT_ALIGNMENT
    parts = [0]
    for i in range(kv_count):
        start = s.pos
        key = s.name(f"the key of metadata entry {i}")
        if key in seen:
            raise _Problem(f"metadata key {key!r} appears twice (at byte {start}): the file is corrupt")
        seen.add(key)
        keys.append(key)
        vtype = s.u32(f"the type of {key}")
        value = _read_value(s, vtype, key, parts)
        if key == "general.alignment":
            if vtype != _UINT32:
                raise _Problem(f"general.alignment has type {_TYPE_NAMES.get(vtype, vtype)}, expected uint32")
            if value == 0 or value & (value - 1):
                raise _Problem(f"general.alignment is {value}, not a power of two")
            alignment = value

    _check_count(tensor_count, "tensors", MAX_TENSORS, _MIN_TENSOR_INFO_BYTES, s)
    raw_tensors = []
    names: set[str] = set()
    for i in range(tensor_count):
        start = s.pos
        name = s.name(f"the name of tensor {i}")
        if name in names:
            raise _Problem(f"tensor {name} is described twice (at byte {start}): the file is corrupt")
        names.add(name)
        n_dims = s.u32(f"the dimension count of tensor {name}")
        if n_dims > MAX_DIMS:
            raise _Problem(f"tensor {name} claims {n_dims} dimensions, more than GGUF's {MAX_DIMS}: the file is corrupt")
        dims = s.unpack("Q" * n_dims, f"the dimensions of tensor {name}") if n_dims else ()
        ggml_type, offset = s.unpack("IQ", f"the type and offset of tensor {name}")
        raw_tensors.append((name, dims, ggml_type, offset))

    data_offset = -(-s.pos // alignment) * alignment
    tensors = tuple(_check_tensor(*t, data_offset=data_offset, size=size, alignment=alignment)
                    for t in raw_tensors)
    return GGUFHeader(version=version, byte_order=order, file_size=size, alignment=alignment,
                      data_offset=data_offset, keys=tuple(keys), tensors=tensors)


def _check_tensor(name: str, dims: tuple[int, ...], ggml_type: int, offset: int, *, data_offset: int, size: int,
                  alignment: int) -> TensorInfo:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType(ggml_type)
        block_size, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise _Problem(f"tensor {name} has unknown ggml type {ggml_type}: the file is corrupt, or newer than "
                       "the installed gguf package") from None
    shape = "x".join(map(str, dims)) or "a scalar"
    elements = 1
    for d in dims:
        elements *= d
        if elements > MAX_ELEMENTS:
            raise _Problem(f"tensor {name} has shape {shape}, whose element count overflows: the file is corrupt")
    if dims and dims[0] % block_size:
        raise _Problem(f"tensor {name} has shape {shape} and type {qtype.name}, whose rows are not a whole number "
                       f"of {block_size}-element blocks: the file is corrupt")
    n_bytes = elements // block_size * type_size
    if offset % alignment:
        raise _Problem(f"tensor {name} has data offset {offset}, not a multiple of the alignment ({alignment}): "
                       "the file is corrupt")
    start = data_offset + offset
    if start > size or (start == size and n_bytes):
        raise _Problem(f"tensor {name} has data offset {offset} (byte {start}), beyond the end of the file "
                       f"({size} bytes): the file is truncated or corrupt")
    if start + n_bytes > size:
        raise _Problem(f"tensor {name} ({shape}, {qtype.name}) needs {n_bytes} bytes from byte {start}, but the file "
                       f"ends at byte {size}: the file is truncated (download it again)")
    return TensorInfo(name=name, ggml_type=ggml_type, dims=tuple(dims), offset=offset, n_bytes=n_bytes)


def scan_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Check a GGUF file's header against its size; a CheckpointError naming the file says what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_BYTES:
                buf = f.read()
                return _scan(buf, len(buf))
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _scan(mm, size)  # keeps no view of the map: it can close
    except _Problem as e:
        raise CheckpointError(path, str(e)) from None
    except OSError as e:
        raise CheckpointError(path, f"cannot read the file: {e.strerror or e}") from None
