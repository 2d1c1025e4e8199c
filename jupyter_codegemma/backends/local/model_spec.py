"""Which transformer a step runs, without building it: the model as the sampler and the saved
programs know it.

The Flax modules (model.py) are needed only to trace a step. A warm kernel traces none: it loads
every step it runs from the saved programs (programs.py), and importing Flax (~0.16 s of one core,
an eighth of a warm kernel's start) is then only waiting. So the engine hands the sampler this spec,
and the module is built, and Flax imported, the first time a step is traced.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Union

import jax.numpy as jnp

from .config import GemmaConfig

if TYPE_CHECKING:
    from .model import Transformer

    Model = Union[Transformer, "TransformerSpec"]  # what the steps take: either serves


@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """model.Transformer's fields; hashable, so a step takes it as a static argument as it would the
    module. `apply` and `init` are the module's."""

    config: GemmaConfig
    dtype: Any = jnp.float32
    layer_period: int = 0

    @functools.cached_property
    def module(self):
        from .model import Transformer

        return Transformer(self.config, dtype=self.dtype, layer_period=self.layer_period)

    def apply(self, *args, **kwargs):
        return self.module.apply(*args, **kwargs)

    def init(self, *args, **kwargs):
        return self.module.init(*args, **kwargs)
