"""Spreading one model over several devices (tensor parallelism over a "model" mesh axis).

Parameters are placed with `jax.device_put` and a `NamedSharding` each; the jitted prefill and
decode steps are unchanged: XLA's SPMD partitioner follows the input shardings and inserts the
collectives. What is split (over M devices):

- `attn/qkv/w` [(N+2K)*H, D]: rows, in M equal blocks. With the fused q|k|v layout a block can
  hold parts of q and of k/v; the partitioner still computes the same values (it moves data
  where a reshape needs it), so sharding never changes results, only how much is communicated;
- `attn/output/w` [D, N*H]: columns (by query heads);
- `mlp/gate_up/w` [2F, D]: rows; `mlp/down/w` [D, F]: columns (by the FFN dimension);
- `embedder/input_embedding` [V, D]: rows (by vocabulary) when M divides V, else replicated;
- norms: replicated;
- the KV cache [B, S, K, H]: by KV heads when M divides K, else replicated (MQA, K = 1).

An axis that M does not divide is replicated, so every model loads on every device count.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import GemmaConfig

AXIS = "model"


def device_count_to_use(requested: int | None) -> int:
    """`None`: every local device (one device means no mesh); otherwise `requested`, checked."""
    available = len(jax.devices())
    if requested is None:
        return available
    if not 1 <= requested <= available:
        from ..errors import SettingsError

        raise SettingsError(f"devices={requested}, but {available} device(s) are present")
    return requested


def make_mesh(num_devices: int) -> Mesh:
    return Mesh(np.asarray(jax.devices()[:num_devices]), (AXIS,))


def _spec(path: tuple[str, ...], shape: tuple[int, ...], m: int) -> P:
    name = "/".join(path)

    def split(axis: int) -> P:
        if shape[axis] % m:
            return P()
        spec = [None] * len(shape)
        spec[axis] = AXIS
        return P(*spec)

    if name.endswith(("attn/qkv/w", "mlp/gate_up/w", "embedder/input_embedding")):
        return split(0)
    if name.endswith(("attn/output/w", "mlp/down/w")):
        return split(1)
    return P()  # norms and anything unknown


def param_shardings(params: Any, mesh: Mesh) -> Any:
    m = mesh.shape[AXIS]

    def one(path, leaf):
        keys = tuple(getattr(k, "key", str(k)) for k in path)
        return NamedSharding(mesh, _spec(keys, tuple(leaf.shape), m))

    return jax.tree_util.tree_map_with_path(one, params)


def shard_params(params: Any, mesh: Mesh) -> Any:
    return jax.device_put(params, param_shardings(params, mesh))


def cache_sharding(config: GemmaConfig, mesh: Mesh) -> NamedSharding:
    m = mesh.shape[AXIS]
    spec = P(None, None, AXIS, None) if config.num_kv_heads % m == 0 else P()
    return NamedSharding(mesh, spec)


def cache_placer(config: GemmaConfig, mesh: Mesh):
    """A function that puts a fresh KV cache (list of {"k", "v"}) onto the mesh."""
    sharding = cache_sharding(config, mesh)

    def place(cache):
        return jax.device_put(cache, jax.tree.map(lambda _: sharding, cache))

    return place


def describe(params: Any) -> dict[str, str]:
    """{"layer_0/attn/qkv/w": "PartitionSpec('model', None)", ...}: for tests and `info`."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = "/".join(getattr(k, "key", str(k)) for k in path)
        out[keys] = str(getattr(leaf.sharding, "spec", leaf.sharding))
    return out
