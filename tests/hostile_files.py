"""Hostile and broken checkpoint files for tests/test_hostile_checkpoints.py: the valid tiny files
they start from, and the ways each format is broken (bytes patched at offsets read from the valid
file, headers written by hand, metadata rewritten, arrays deleted from an OCDBT database)."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FAST_SECONDS = 2.0  # GGUF, safetensors, tokenizer: milliseconds in fact

# ------------------------------------------------------------------------------------- helpers


def patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def gguf_with_array(item_type: int, count: int, payload: bytes) -> bytes:
    """A hand-written GGUF v3 file: no tensors, one metadata key holding an array."""
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string(b"tokenizer.ggml.scores")
            + struct.pack("<IIQ", 9, item_type, count) + payload)


@dataclass
class GGUFLayout:
    """Byte offsets in the valid tiny GGUF file, read with gguf.GGUFReader."""

    data: bytes
    kv: dict[str, int]  # key -> offset of its value (after the key and the type)
    tensor_info: dict[str, int]  # name -> offset of its dimension count

    @classmethod
    def read(cls, path: Path) -> GGUFLayout:
        import gguf

        reader = gguf.GGUFReader(path)
        kv = {name: f.offset + 8 + len(name.encode()) + 4 for name, f in reader.fields.items()
              if not name.startswith("GGUF.")}
        infos = {t.name: t.field.offset + 8 + len(t.name.encode()) for t in reader.tensors}
        return cls(path.read_bytes(), kv, infos)

    def key_offset(self, key: str) -> int:
        return self.kv[key] - 4 - len(key.encode()) - 8

    def dims_offset(self, tensor: str) -> int:
        return self.tensor_info[tensor] + 4

    def type_offset(self, tensor: str, n_dims: int = 2) -> int:
        return self.dims_offset(tensor) + 8 * n_dims


def safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack_from("<Q", data)
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_bytes(header: dict, payload: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def first_tensor(header: dict) -> str:
    return min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def delete_from_ocdbt(checkpoint_dir: Path, prefix: str, end: str) -> None:
    import tensorstore as ts

    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{checkpoint_dir.resolve()}/"}).result()
    kv.delete_range(ts.KvStore.KeyRange(prefix.encode(), end.encode())).result()


# ------------------------------------------------------------------------------------- the valid files


@dataclass
class Valid:
    root: Path
    gguf: Path
    hf: Path
    kaggle: Path
    layout: GGUFLayout
    config: object
    params: dict
    tokenizer: bytes

    def fresh_copy(self, src: Path, name: str) -> Path:
        dst = self.root / "cases" / name / src.name
        dst.parent.mkdir(parents=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
        return dst


def write_valid(root: Path) -> Valid:
    import jax
    import numpy as np
    from checkpoint_writers import hf_config, hf_state_dict, tokenizer_bytes, write_kaggle
    from gguf_writer import write_gguf
    from safetensors.numpy import save_file

    from jupyter_codegemma.backends.local import config as configs
    from jupyter_codegemma.backends.local.model import init_params

    c = configs.tiny_gemma1_mqa()
    params = jax.tree.map(np.asarray, init_params(c, seed=5))
    (root / "valid").mkdir()
    gguf_path = write_gguf(root / "valid" / "model.gguf", c, params)
    hf = root / "valid" / "hf"
    hf_config(c).save_pretrained(hf)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in hf_state_dict(c, params).items()},
              str(hf / "model.safetensors"))
    tokenizer = tokenizer_bytes()
    (hf / "tokenizer.model").write_bytes(tokenizer)
    kaggle = write_kaggle(root / "valid" / "kaggle", c, params)
    return Valid(root=root, gguf=gguf_path, hf=hf, kaggle=kaggle, layout=GGUFLayout.read(gguf_path), config=c,
                 params=params, tokenizer=tokenizer)


# ------------------------------------------------------------------------------------- the cases


@dataclass
class Case:
    id: str
    build: Callable[[Valid, str], tuple[Path, Path]]  # -> (path to load, path the error must name)
    phrases: tuple[str, ...]
    seconds: float = FAST_SECONDS
    patch: dict = field(default_factory=dict)  # module constants the child sets for this case


def gguf_case(transform: Callable[[GGUFLayout], bytes]):
    def build(v: Valid, name: str) -> tuple[Path, Path]:
        path = v.root / "cases" / name / "model.gguf"
        path.parent.mkdir(parents=True)
        path.write_bytes(transform(v.layout))
        return path, path
    return build


def gguf_written(**kwargs):
    def build(v: Valid, name: str) -> tuple[Path, Path]:
        from gguf_writer import write_gguf

        path = v.root / "cases" / name / "model.gguf"
        path.parent.mkdir(parents=True)
        write_gguf(path, v.config, v.params, **kwargs)
        return path, path
    return build


def hf_case(file: str, transform: Callable[[bytes, Valid], bytes] | None = None, *, sparse_size: int = 0):
    def build(v: Valid, name: str) -> tuple[Path, Path]:
        d = v.fresh_copy(v.hf, name)
        target = d / file
        if sparse_size:
            target.unlink()
            with open(target, "wb") as f:
                f.truncate(sparse_size)  # a hole: no disk space, no memory
        else:
            target.write_bytes(transform(target.read_bytes(), v))
        return d, target
    return build


def kaggle_case(change: Callable[[Path], Path | None]):
    """`change(checkpoint_dir)` breaks the copy; it returns the path the error must name (default:
    the orbax directory)."""
    def build(v: Valid, name: str) -> tuple[Path, Path]:
        d = v.fresh_copy(v.kaggle, name)
        inner = d / d.name
        named = change(inner)
        return d, named or inner
    return build


def st_rewrite(edit: Callable[[dict], None]):
    def transform(data: bytes, v: Valid) -> bytes:
        header, payload = safetensors_parts(data)
        edit(header)
        return safetensors_bytes(header, payload)
    return transform


def tokenizer_boundary(data: bytes, pieces: int) -> int:
    """The length of `data` up to the end of its first `pieces` pieces (the proto's first field)."""
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(data)
    head = sp_pb2.ModelProto()
    head.pieces.extend(proto.pieces[:pieces])
    raw = head.SerializeToString()
    assert data.startswith(raw)
    return len(raw)


def metadata_with_unwritten_array(inner: Path) -> None:
    meta_path = inner / "_METADATA"
    meta = json.loads(meta_path.read_text())
    keys = ["transformer/layer_0/attn/bogus", "w"]
    meta["tree_metadata"][str(tuple(keys))] = {
        "key_metadata": [{"key": k, "key_type": 2} for k in keys],
        "value_metadata": {"value_type": "np.ndarray", "skip_deserialize": False}}
    meta_path.write_text(json.dumps(meta))


def write_bytes(path_in: str, data: bytes | Callable[[bytes], bytes], named: bool = True):
    def change(inner: Path) -> Path | None:
        target = inner / path_in
        target.write_bytes(data(target.read_bytes()) if callable(data) else data)
        return target if named else None
    return change


def random_bytes(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


BIG = 2**50
MDATA = "_METADATA"

