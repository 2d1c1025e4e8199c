"""Weight-only int8 quantization: one scale per output row.

Decoding reads every weight once per token, so its speed is the size of the weights over the
memory bandwidth: int8 reads a quarter of float32. Each matrix [out, in] becomes int8 values
and a float32 scale per output row (symmetric, absmax / 127) — per row, because rows are what
a matrix-vector product streams, and one scale per row costs nothing there. The tied
embedding [V, D] is quantized the same way; it is the largest matrix (the output head reads
all of it for every token). Norm scales stay in float32.

The embedding's int8 rows are stored as two planes of 4-bit halves, int8 [2, V, D/2]
(native.to_nibble_planes): greedy decoding then reads the high plane alone for every row and both
only for its likeliest tokens (native/nibble_head.cc), half the bytes of the head.

The model (model.py) recognises int8 weights by their dtype and multiplies them with
native.int8_matmul.
"""

from __future__ import annotations

import numpy as np

from .checkpoints.base import Params
from .checkpoints.cache import INT8_VARIANT
from .native import BLOCK, quantize_rows, to_nibble_planes

EMBEDDING = "input_embedding"
VARIANT = INT8_VARIANT  # the converted-weights cache's name for the tree quantize_int8 gives


def quantize_int8(params: Params) -> Params:
    """A float parameter tree -> the same tree with int8 matrices and their scales (numpy)."""

    def walk(tree: Params) -> Params:
        out: Params = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out[key] = walk(value)
            elif key == "w" and np.ndim(value) == 2:  # a Linear layer
                out["w"], out["scale"] = quantize_rows(value)
            elif key == EMBEDDING:
                out[key], out[EMBEDDING + "_scale"] = quantize_rows(value)
                if out[key].shape[1] % BLOCK == 0:  # the output head, in the planes its kernels read
                    out[key] = to_nibble_planes(out[key])
            else:
                out[key] = np.asarray(value, dtype=np.float32)
        return out

    return walk(params)


def is_quantized(params: Params) -> bool:
    return np.asarray(params["embedder"][EMBEDDING]).dtype == np.int8


def dense_layers(params: Params) -> Params:
    """The tree without the embedder: what the prefill needs in float (see Engine)."""
    return {key: value for key, value in params.items() if key != "embedder"}
