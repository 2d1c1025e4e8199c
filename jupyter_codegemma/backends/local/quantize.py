"""Weight-only int8 quantization: one scale per output row.

Decoding reads every weight once per token, so its speed is the size of the weights over the
memory bandwidth: int8 reads a quarter of float32. Each matrix [out, in] becomes int8 values
and a float32 scale per output row (symmetric, absmax / 127) — per row, because rows are what
a matrix-vector product streams, and one scale per row costs nothing there. The tied
embedding [V, D] is quantized the same way; it is the largest matrix (the output head reads
all of it for every token). Norm scales stay in float32.

The model (model.py) recognises int8 weights by their dtype and multiplies them with
native.int8_matmul.
"""

from __future__ import annotations

import numpy as np

from .checkpoints.base import Params
from .native import quantize_rows

EMBEDDING = "input_embedding"


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
            else:
                out[key] = np.asarray(value, dtype=np.float32)
        return out

    return walk(params)


def is_quantized(params: Params) -> bool:
    return np.asarray(params["embedder"][EMBEDDING]).dtype == np.int8


def dense_layers(params: Params) -> Params:
    """The tree without the embedder: what the prefill needs in float (see Engine)."""
    return {key: value for key, value in params.items() if key != "embedder"}
