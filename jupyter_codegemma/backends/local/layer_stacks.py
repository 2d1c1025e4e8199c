"""Which layers a layer loop groups, and their parameters stacked for it (see model.py's docstring).

A model with `layer_period` p runs its layers as a loop over groups of p, and within a group each run
of one attention kind as an inner loop; its parameters and KV cache hold each run's layers of every
group stacked, group-major. This module holds the plain-data side of that: the period, the runs, and
the stacked parameter tree (numpy, stacked lazily).
"""

from __future__ import annotations

import jax

from .config import GemmaConfig


def repeats_every(config: GemmaConfig, period: int) -> bool:
    """Whether `period` divides the layers and their attention kinds repeat after it."""
    kinds = config.attention_kinds
    return period > 0 and len(kinds) % period == 0 and all(kinds[i] == kinds[i % period] for i in range(len(kinds)))


def layer_period(config: GemmaConfig) -> int:
    """The shortest period of the layers' pattern (the groups a layer loop runs)."""
    return next(p for p in range(1, config.num_layers + 1) if repeats_every(config, p))


def layer_runs(config: GemmaConfig, period: int) -> list[tuple[int, int]]:
    """(first position, length) of each run of layers of one attention kind within a period: Gemma 3's
    period of six is a run of five sliding-window layers, then a run of one global layer."""
    runs: list[tuple[int, int]] = []
    for j in range(period):
        if runs and config.attention_kinds[j] == config.attention_kinds[runs[-1][0]]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((j, 1))
    return runs


def stack_layers(params: dict, config: GemmaConfig, period: int) -> dict:
    """An unrolled model's parameter tree (numpy) -> the tree of one with `layer_period` period. Each
    run (first, length) of the period stacks its layers of every group, group-major: layer
    g·p + first + i is row g·length + i of "layers/run_r/block/..." (the index the loops compute).
    The stacked arrays are LayerStacks, stacked only when read."""
    if not repeats_every(config, period) or any(f"layer_{i}" not in params for i in range(config.num_layers)):
        raise ValueError(f"stack_layers: {config.name}'s layers do not form groups of {period}")
    groups = config.num_layers // period
    stacked = {}
    for r, (first, length) in enumerate(layer_runs(config, period)):
        names = [f"layer_{g * period + first + i}" for g in range(groups) for i in range(length)]
        stacked[f"run_{r}"] = {"block": jax.tree.map(lambda *a: LayerStack(a), *(params[name] for name in names))}
    return {**{k: v for k, v in params.items() if not k.startswith("layer_")}, "layers": stacked}


class LayerStack:
    """One parameter of several layers, stacked along a new first axis when read (`np.asarray`).
    weights_on_device.HostArena writes the layers one by one into their place instead, so loading
    never holds a stacked copy beside the checkpoint's arrays and the device's."""

    def __init__(self, layers):
        self.layers = tuple(layers)
        first = self.layers[0]
        self.shape = (len(self.layers), *first.shape)
        self.dtype = first.dtype
        self.nbytes = sum(a.nbytes for a in self.layers)

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.stack([np.asarray(a, dtype=dtype) for a in self.layers])
