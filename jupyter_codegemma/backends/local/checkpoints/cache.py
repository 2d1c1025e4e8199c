"""Converted weights on disk, keyed by the checkpoint file's sha256.

Dequantizing a GGUF file takes seconds; reading float32 arrays back takes a fraction of one.
Each entry is a directory: `config.json`, `tokenizer.model` and one `.npy` per parameter,
written into a temporary directory and renamed, so a crash never leaves half an entry.
Hashing a file is itself slow, so hashes are remembered by (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..config import GemmaConfig
from .base import Checkpoint, Params

FORMAT_VERSION = 2  # bump when the stored layout or the conversion changes
_SHAPES = "shapes.json"  # a variant's arrays: name -> (dtype, shape)
# The int8 model's variant (quantize.py): renamed whenever its layout changes, so an entry written by
# an older version is converted again, not misread. "-planes": the output head in 4-bit planes.
INT8_VARIANT = "int8-planes"


def default_cache_dir() -> Path:
    root = os.environ.get("CODEGEMMA_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jupyter-codegemma"


def _mapped(path: Path) -> np.memmap:
    """The .npy file's array, memory-mapped read-only. Named by a str: np.memmap resolves a Path
    through every symlink of its directories (a system call per component), 0.08 s over the ~440
    files of Gemma 3 270M's float and int8 entries."""
    return np.load(str(path), mmap_mode="r")


def _stamp(path: Path) -> str:
    """What a remembered hash is filed under: the file's path, size and modification time."""
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def _flatten(tree: Params, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> Params:
    tree: Params = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


class WeightsCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    # --- file hashes ---------------------------------------------------------------------------

    def file_sha256(self, path: str | os.PathLike) -> str:
        path = Path(path).resolve()
        index_path = self.root / "hashes.json"
        stamp = _stamp(path)
        index = self._hashes()
        if stamp in index:
            return index[stamp]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        index[stamp] = digest.hexdigest()
        self._write_atomic(index_path, json.dumps(index, indent=0).encode())
        return index[stamp]

    def remembered_sha256(self, path: str | os.PathLike) -> str | None:
        """The file's sha256 if it was hashed before and has not changed since; never reads the file."""
        try:
            return self._hashes().get(_stamp(Path(path).resolve()))
        except OSError:
            return None

    def _hashes(self) -> dict[str, str]:
        try:
            return json.loads((self.root / "hashes.json").read_text())
        except (OSError, ValueError):
            return {}

    # --- entries -------------------------------------------------------------------------------

    def entry_dir(self, sha256: str) -> Path:
        return self.root / "weights" / f"{sha256}-v{FORMAT_VERSION}"

    def has(self, sha256: str) -> bool:
        return (self.entry_dir(sha256) / "done").exists()

    def load(self, sha256: str, source: str, tokenizer=None) -> Checkpoint:
        """Arrays are memory-mapped: they are read when they are first copied to the device.
        `tokenizer`: the entry's, already loaded (prefetch.py); else it is loaded here."""
        from ..tokenizer import Tokenizer

        entry = self.entry_dir(sha256)
        meta = json.loads((entry / "config.json").read_text())
        config = GemmaConfig.from_dict(meta["config"])
        flat = {p.stem: _mapped(p) for p in sorted(entry.glob("*.npy"))}
        if tokenizer is None:
            tokenizer = Tokenizer.from_serialized((entry / "tokenizer.model").read_bytes(), source=source)
        return Checkpoint(config=config, params=_unflatten(flat), tokenizer=tokenizer, source=source,
                          format=meta["format"], sha256=sha256)

    def store(self, checkpoint: Checkpoint, sha256: str) -> None:
        def write(tmp: Path) -> None:
            for name, array in _flatten(checkpoint.params).items():
                np.save(tmp / f"{name}.npy", np.asarray(array, dtype=np.float32))
            (tmp / "tokenizer.model").write_bytes(checkpoint.tokenizer.serialized())
            meta = {"config": checkpoint.config.to_dict(), "format": checkpoint.format, "source": checkpoint.source}
            (tmp / "config.json").write_text(json.dumps(meta, indent=1))

        self._write_dir_atomic(self.entry_dir(sha256), write)

    # --- variants: the same weights in another form (e.g. int8, see backends/local/quantize.py) ---------

    def variant_dir(self, sha256: str, variant: str) -> Path:
        return self.entry_dir(sha256) / "variants" / variant

    def has_variant(self, sha256: str, variant: str) -> bool:
        return (self.variant_dir(sha256, variant) / "done").exists()

    def load_variant(self, sha256: str, variant: str) -> Params:
        """The stored tree, memory-mapped, in the dtypes it was stored with."""
        return _unflatten({p.stem: _mapped(p) for p in sorted(self.variant_dir(sha256, variant).glob("*.npy"))})

    def variant_array_sizes(self, sha256: str, variant: str, dtype) -> list[int]:
        """The byte sizes of the stored variant's arrays of `dtype`, without reading the arrays: from
        its list of shapes, or, in an entry stored before the list was, the files' headers (~250 files
        opened, 0.1-0.13 s at a kernel's start), writing the list for the next time."""
        wanted = np.dtype(dtype)
        return [int(np.prod(shape, dtype=np.int64)) * stored.itemsize
                for stored, shape in self._variant_shapes(sha256, variant).values() if stored == wanted]

    def _variant_shapes(self, sha256: str, variant: str) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        directory = self.variant_dir(sha256, variant)
        try:
            listed = json.loads((directory / _SHAPES).read_text())
            return {name: (np.dtype(stored), tuple(int(n) for n in shape)) for name, (stored, shape) in listed.items()}
        except (OSError, ValueError, TypeError, AttributeError):  # none yet, or damaged: read the headers
            pass
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shapes = {}
        for path in sorted(directory.glob("*.npy")):
            with open(path, "rb") as f:
                shape, _, stored = read_header[np.lib.format.read_magic(f)](f)
            shapes[path.stem] = (stored, tuple(shape))
        try:
            listed = {name: (stored.str, list(shape)) for name, (stored, shape) in shapes.items()}
            self._write_atomic(directory / _SHAPES, json.dumps(listed).encode())
        except OSError:
            pass  # a read-only cache: the headers are read again next time
        return shapes

    def store_variant(self, sha256: str, variant: str, params: Params) -> None:
        def write(tmp: Path) -> None:
            shapes = {}
            for name, array in _flatten(params).items():
                array = np.asarray(array)
                np.save(tmp / f"{name}.npy", array)
                shapes[name] = (array.dtype.str, list(array.shape))
            (tmp / _SHAPES).write_text(json.dumps(shapes))

        self._write_dir_atomic(self.variant_dir(sha256, variant), write)

    def _write_dir_atomic(self, target: Path, write) -> None:
        """Fill a temporary directory with `write(tmp)`, mark it done and rename it to `target`."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            write(tmp)
            (tmp / "done").write_text("")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
