"""The output head in two planes of 4-bit halves (nibble_head.cc).

`to_nibble_planes` splits an int8 matrix into a plane of each weight's upper four bits and one of its lower
four; `nibble_matmul` multiplies by the matrix they hold, with the bits the AVX2 int8 kernel gives on the
int8 matrix; `nibble_argmax` picks a greedy step's token reading the high plane for every row and both
planes only for its likeliest candidates. Where no kernel runs, both rebuild the int8 matrix
(`from_nibble_planes`) and take the XLA path.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import _NIBBLE_ARGMAX_TARGET, _NIBBLE_MATMUL_TARGET, BLOCK, argmax, int8_matmul, native_enabled


def to_nibble_planes(w: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """An int8 matrix [N, K] (K a multiple of BLOCK) -> its two planes of 4-bit halves, int8 [2, N, K/2]
    (numpy; see nibble_head.cc): plane 0 holds (w >> 4) + 8, plane 1 w & 15; in each block of 64
    columns, byte j holds column j's nibble (bits 0-3) and column j + 32's (bits 4-7)."""
    n, k = w.shape
    if k % BLOCK:
        raise ValueError(f"to_nibble_planes: K = {k} is not a multiple of {BLOCK}")
    planes = np.empty((2, n, k // 2), np.uint8)
    for begin in range(0, n, chunk):
        rows = np.asarray(w[begin:begin + chunk], np.int8).view(np.uint8).reshape(-1, k // BLOCK, 2, BLOCK // 2)
        for plane, nibble in ((0, (rows >> 4) ^ 8), (1, rows & 15)):
            planes[plane, begin:begin + chunk] = (nibble[:, :, 0] | (nibble[:, :, 1] << 4)).reshape(-1, k // 2)
    return planes.view(np.int8)


def from_nibble_planes(planes: jax.Array) -> jax.Array:
    """to_nibble_planes' inverse, int8 [2, ..., K/2] -> int8 [..., K] (traceable: the fallback, and rows looked up)."""
    u = jax.lax.bitcast_convert_type(planes, jnp.uint8)
    *lead, half = u.shape[1:]

    def unpack(p):  # [..., K/2] -> [..., K]: each block's 32 bytes hold columns j (low) and j + 32 (high)
        p = p.reshape(*lead, half // (BLOCK // 2), BLOCK // 2)
        return jnp.stack([p & 15, p >> 4], axis=-2).reshape(*lead, 2 * half)

    high = unpack(u[0]).astype(jnp.int8) - 8
    return (high * 16 + unpack(u[1]).astype(jnp.int8)).astype(jnp.int8)


def nibble_head_runs(planes: jax.Array) -> bool:
    """Whether nibble_matmul and nibble_argmax run natively on these planes (else the fallback)."""
    return native_enabled() and planes.ndim == 3 and (2 * planes.shape[-1]) % BLOCK == 0


def nibble_matmul(x: jax.Array, planes: jax.Array, scale: jax.Array) -> jax.Array:
    """x [..., K] times the int8 matrix held in `planes` [2, N, K/2] (to_nibble_planes), scaled by scale [N]:
    [..., N] in x's dtype, the bits the AVX2 int8 kernel gives on the int8 matrix."""
    if not nibble_head_runs(planes):
        return int8_matmul(x, from_nibble_planes(planes), scale, isa="xla")
    *lead, k = x.shape
    y = jax.ffi.ffi_call(_NIBBLE_MATMUL_TARGET, jax.ShapeDtypeStruct((math.prod(lead), planes.shape[1]), jnp.float32))(
        x.reshape(-1, k).astype(jnp.float32), planes, scale.astype(jnp.float32))
    return y.reshape(*lead, planes.shape[1]).astype(x.dtype)


def nibble_argmax(x: jax.Array, planes: jax.Array, scale: jax.Array) -> jax.Array:
    """argmax(nibble_matmul(x, planes, scale)) as int32 [...], reading the high plane for all rows and
    both planes only for each row's likeliest candidates (see nibble_head.cc)."""
    if not nibble_head_runs(planes):
        return argmax(nibble_matmul(x, planes, scale).astype(jnp.float32))
    *lead, k = x.shape
    out = jax.ffi.ffi_call(_NIBBLE_ARGMAX_TARGET, jax.ShapeDtypeStruct((math.prod(lead),), jnp.int32))(
        x.reshape(-1, k).astype(jnp.float32), planes, scale.astype(jnp.float32))
    return out.reshape(lead)
