"""Putting a checkpoint's numpy weight tree on the device in the dtypes the engine computes in."""

from __future__ import annotations

import numpy as np


def weights_to_device(params, float_dtype):
    """numpy tree -> device arrays: int8 matrices stay int8, scales (of norms and of int8 rows)
    stay float32 (norms compute in float32 anyway), the other weights become float_dtype."""
    import jax
    import jax.numpy as jnp

    def put(path, a):
        a = np.asarray(a)
        if a.dtype == np.int8:
            return jnp.asarray(a)
        name = str(getattr(path[-1], "key", path[-1]))
        return jnp.asarray(a, dtype=jnp.float32 if name.endswith("scale") else float_dtype)

    return jax.tree_util.tree_map_with_path(put, params)
