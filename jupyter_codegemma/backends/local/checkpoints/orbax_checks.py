"""Integrity checks of a Kaggle/orbax checkpoint made before orbax reads it: every array the tree
metadata lists is present, the arrays do not claim more bytes than the directory holds, and orbax's
errors come out as one short line. A broken or hostile checkpoint is refused here in milliseconds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import CheckpointError

TREE_METADATA_FILE = "_METADATA"
MAX_METADATA_BYTES = 256 << 20  # Gemma's _METADATA is about 100 KB
# Bytes the arrays may claim beyond what the directory holds: orbax compresses chunks (zstd), and
# zeros compress far, but real weights hardly do.
DECLARED_SIZE_FACTOR = 16
DECLARED_SIZE_SLACK = 64 << 20
_ARRAY_VALUE_TYPES = ("np.ndarray", "jax.Array")


def one_line(e: BaseException, limit: int = 300) -> str:
    """An orbax/tensorstore error as one short line: tensorstore appends the whole JSON spec."""
    text = re.sub(r"\s*\[(tensorstore_spec|source locations)=.*?\]'?(?=\s|$|;)", "", str(e), flags=re.DOTALL)
    text = " ".join(f"{type(e).__name__}: {text}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class absl_filtered:
    """Drop absl log records starting with `prefix` while the block runs."""

    def __init__(self, prefix: str):
        import logging

        self.logger, self.prefix = logging.getLogger("absl"), prefix

    def filter(self, record) -> bool:
        return not str(record.msg).startswith(self.prefix)

    def __enter__(self):
        self.logger.addFilter(self.filter)

    def __exit__(self, *exc):
        self.logger.removeFilter(self.filter)


def listed_arrays(checkpoint_dir: Path) -> dict[str, str] | None:
    """The arrays `_METADATA` lists, {orbax's storage name ("a/b.c"): our name ("a/b/c")}; None without one."""
    import json

    path = checkpoint_dir / TREE_METADATA_FILE
    if not path.is_file():
        return None

    def corrupt(problem: str) -> CheckpointError:
        return CheckpointError(path, f"the checkpoint's tree metadata {problem}: the checkpoint is corrupt "
                                     "(download it again)")

    try:
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise corrupt(f"has {path.stat().st_size} bytes, far more than a model's")
        data = json.loads(path.read_bytes())
    except OSError as e:
        raise CheckpointError(path, f"cannot read the file: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise corrupt(f"is not JSON ({' '.join(str(e).split())[:200]})") from None
    tree = data.get("tree_metadata") if isinstance(data, dict) else None
    if not isinstance(tree, dict):
        raise corrupt("has no tree_metadata object")
    names = {}
    for entry in tree.values():
        try:
            value = entry["value_metadata"]
            if value.get("value_type") not in _ARRAY_VALUE_TYPES or value.get("skip_deserialize"):
                continue
            keys = [str(k["key"]) for k in entry["key_metadata"]]
            names[".".join(keys)] = "/".join(keys)
        except (KeyError, TypeError, AttributeError):
            raise corrupt(f"has a malformed entry ({str(entry)[:100]})") from None
    return names


def check_arrays_present(checkpoint_dir: Path, names: dict[str, str]) -> None:
    """Every listed array has its zarr metadata and some data in the OCDBT database (or, in the
    older layout, in its own subdirectory); else a CheckpointError naming the first one missing."""
    import json

    markers = (".zarray", "zarr.json")
    if (checkpoint_dir / "manifest.ocdbt").is_file():
        import tensorstore as ts

        try:
            kvstore = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{checkpoint_dir.resolve()}/"}).result()
            keys = [k.decode("utf-8", "replace") for k in kvstore.list().result()]
        except Exception as e:  # tensorstore reports a corrupt manifest or B-tree as ValueError
            raise CheckpointError(checkpoint_dir, f"the OCDBT database (manifest.ocdbt and its data files) cannot be "
                                                  f"read ({one_line(e)}): the checkpoint is corrupt") from None
        described, with_data = set(), set()
        for key in keys:
            head, _, tail = key.rpartition("/")
            if tail in markers:
                described.add(head)
            else:  # a chunk: "name/0.0" (zarr 2) or "name/c/0/0" (zarr 3)
                while head:
                    with_data.add(head)
                    head = head.rpartition("/")[0]

        def read_marker(name: str) -> bytes:
            for m in markers:
                value = kvstore.read(f"{name}/{m}").result()
                if value.state == "value":
                    return bytes(value.value)
            return b"{}"
    else:
        described = {n for n in names if any((checkpoint_dir / n / m).is_file() for m in markers)}
        with_data = {n for n in described
                     if any(p.is_file() and p.name not in markers for p in (checkpoint_dir / n).rglob("*"))}

        def read_marker(name: str) -> bytes:
            return next(((checkpoint_dir / name / m).read_bytes() for m in markers
                         if (checkpoint_dir / name / m).is_file()), b"{}")

    def empty(name: str) -> bool:  # an array of no elements has no chunk to store
        try:
            shape = json.loads(read_marker(name)).get("shape")
            return isinstance(shape, list) and 0 in shape
        except Exception:
            return False

    missing = [n for n in names if n not in described or (n not in with_data and not empty(n))]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(checkpoint_dir, f"parameter {names[missing[0]]}{more} is listed in "
                                              f"{TREE_METADATA_FILE} but its array data is missing from the "
                                              "checkpoint: the checkpoint is incomplete (download it again)")


def check_declared_size(tree, checkpoint_dir: Path) -> None:
    import jax

    declared = 0
    for leaf in jax.tree.leaves(tree):
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is None or dtype is None:
            continue
        count = 1
        for d in shape:
            count *= int(d)
        declared += count * np.dtype(dtype).itemsize
    on_disk = sum(p.stat().st_size for p in checkpoint_dir.rglob("*") if p.is_file())
    if declared > DECLARED_SIZE_FACTOR * on_disk + DECLARED_SIZE_SLACK:
        raise CheckpointError(checkpoint_dir, f"the arrays' metadata declare {declared} bytes, but the checkpoint holds "
                              f"only {on_disk} bytes on disk: the metadata is corrupt")


# --- config ------------------------------------------------------------------------------------------
