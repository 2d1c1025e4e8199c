"""Kaggle's Flax checkpoints of Gemma / CodeGemma (an orbax directory) -> (config, params, tokenizer).

Kaggle ships a variant directory, e.g. `codegemma-2b/`, holding the orbax checkpoint directory
(`codegemma-2b/codegemma-2b/` with `_METADATA`, `manifest.ocdbt`, `d/`, ... or, from older orbax,
a `checkpoint` file) and the SentencePiece `tokenizer.model`. Either directory may be given.

The tree is the one Google's `gemma` library saves: semi-flat keys such as
`transformer/layer_0/attn/q_einsum` -> {"w": ...} (a nested tree is accepted too):

  transformer/embedder/input_embedding   [V, D]   (V padded to 256 128 for Gemma 1 and 2; kept as is)
  layer_i/attn/q_einsum/w                [N, D, H] and kv_einsum/w [2, K, D, H]   (MQA / GQA)
  layer_i/attn/qkv_einsum/w              [3, N, D, H]                             (MHA)
  layer_i/attn/attn_vec_einsum/w         [N, H, D]
  layer_i/mlp/gating_einsum/w            [2, D, F], or [2, F, D] where the model was saved
                                         "transposed" (Gemma 2 9B/27B, Gemma 3); told apart by shape
  layer_i/mlp/linear/w                   [F, D]
  layer_i/{pre_attention,pre_ffw,post_attention,post_ffw}_norm/scale, attn/_query_norm, attn/_key_norm
  final_norm/scale

Norm scales are offsets from one, as ours are. The checkpoint carries no config: it is inferred
from the shapes and from which norms exist (post norms: Gemma 2 or 3; QK norms: Gemma 3), as
the gemma library's `TransformerConfig.from_params` does. What shapes cannot tell (sliding window,
soft-caps, RoPE bases, the query scale of the 27B models) comes from the published model
configurations; `overrides` replaces any field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..config import GemmaConfig, alternating_local_global, all_global, local_global_pattern
from ...errors import CheckpointError
from .base import Checkpoint, Params, load_tokenizer_file
from .orbax_checks import absl_filtered, check_arrays_present, check_declared_size, listed_arrays, one_line

# Files orbax writes at the top of a checkpoint directory (OCDBT: _METADATA, manifest.ocdbt,
# _CHECKPOINT_METADATA; the older per-array format: a msgpack file named `checkpoint`).
ORBAX_MARKERS = ("_METADATA", "manifest.ocdbt", "_CHECKPOINT_METADATA", "checkpoint")
TOKENIZER_FILE = "tokenizer.model"


def is_orbax_checkpoint(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in ORBAX_MARKERS)


def find_checkpoint_dir(path: Path) -> Path | None:
    """The orbax directory itself, or the one orbax directory inside a Kaggle variant directory."""
    if is_orbax_checkpoint(path):
        return path
    if path.is_dir():
        inner = [p for p in sorted(path.iterdir()) if is_orbax_checkpoint(p)]
        if len(inner) == 1:
            return inner[0]
    return None


def find_tokenizer(checkpoint_dir: Path) -> Path | None:
    for candidate in (checkpoint_dir / TOKENIZER_FILE, checkpoint_dir.parent / TOKENIZER_FILE):
        if candidate.is_file():
            return candidate
    return None


# --- reading -----------------------------------------------------------------------------------------


def _restore(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    """The whole tree as {"transformer/layer_0/attn/q_einsum/w": float32 array}.

    Before orbax restores anything: the tree metadata (`_METADATA`) must parse, every array it
    lists must have its data, and the arrays' declared sizes must be within reach of the bytes on
    disk, so a broken checkpoint fails with one CheckpointError naming what is wrong instead of
    tensorstore's multi-line errors (or an allocation of whatever size a corrupt shape claims).
    """
    import jax
    import orbax.checkpoint as ocp

    names = listed_arrays(checkpoint_dir)
    if names:
        # Before orbax reads anything: a read that fails inside orbax leaves tensorstore callbacks
        # printing "Event loop is closed" tracebacks after the error.
        check_arrays_present(checkpoint_dir, names)
    checkpointer = ocp.PyTreeCheckpointer()
    try:
        with absl_filtered("Failed to get item metadata"):  # we say what failed, below
            metadata = checkpointer.metadata(checkpoint_dir)
        tree = getattr(metadata, "item_metadata", metadata)
        tree = getattr(tree, "tree", tree)
    except Exception as e:  # orbax and tensorstore raise many kinds
        raise CheckpointError(checkpoint_dir, f"the checkpoint metadata cannot be read ({one_line(e)})") from None
    if tree is not None:
        check_declared_size(tree, checkpoint_dir)
    try:
        # Restore as host numpy arrays: the saved shardings name devices this machine may not have.
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        restored = checkpointer.restore(checkpoint_dir, restore_args=restore_args)
    except Exception as e:  # orbax and tensorstore raise many kinds
        raise CheckpointError(checkpoint_dir, f"the array data cannot be read ({one_line(e)}); the checkpoint is "
                                              "incomplete or corrupt") from None
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) or hasattr(node, "items"):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(restored, "")
    if any(k.startswith("params/") for k in flat):
        flat = {k.removeprefix("params/"): v for k, v in flat.items()}
    return flat


def infer_config(tree: dict[str, np.ndarray], path: Path, name: str) -> GemmaConfig:
    """A GemmaConfig from the shapes of a gemma-library parameter tree."""

    def shape(key: str) -> tuple[int, ...] | None:
        value = tree.get("transformer/" + key)
        return tuple(value.shape) if value is not None else None

    embedding = shape("embedder/input_embedding")
    if embedding is None or len(embedding) != 2:
        raise CheckpointError(path, "transformer/embedder/input_embedding is missing: not a Gemma Flax checkpoint")
    vocab, d = embedding
    layers = {int(m.group(1)) for k in tree if (m := re.match(r"transformer/layer_(\d+)/", k))}
    if not layers or layers != set(range(max(layers) + 1)):
        raise CheckpointError(path, f"expected layers layer_0 .. layer_N, found {sorted(layers)[:8]}")
    num_layers = len(layers)
    qkv = shape("layer_0/attn/qkv_einsum/w")
    if qkv is not None:
        if len(qkv) != 4 or qkv[0] != 3:
            raise CheckpointError(path, f"layer_0/attn/qkv_einsum/w has shape {list(qkv)}, expected [3, N, D, H]")
        num_heads, head_dim = qkv[1], qkv[3]
        num_kv_heads = num_heads
    else:
        q, kv = shape("layer_0/attn/q_einsum/w"), shape("layer_0/attn/kv_einsum/w")
        if q is None or kv is None:
            raise CheckpointError(path, "layer_0/attn has neither qkv_einsum nor q_einsum + kv_einsum")
        if len(q) != 3 or len(kv) != 4:
            raise CheckpointError(path, f"q_einsum {list(q)} / kv_einsum {list(kv)}: expected [N, D, H] / [2, K, D, H]")
        num_heads, head_dim = q[0], q[2]
        num_kv_heads = kv[1]
    linear = shape("layer_0/mlp/linear/w")
    if linear is None or len(linear) != 2:
        raise CheckpointError(path, "layer_0/mlp/linear/w is missing")
    hidden = linear[0]
    post_norms = shape("layer_0/post_attention_norm/scale") is not None
    qk_norm = shape("layer_0/attn/_query_norm/scale") is not None
    arch = "gemma3" if qk_norm else "gemma2" if post_norms else "gemma"
    common = dict(name=name, architecture=arch, num_layers=num_layers, vocab_size=vocab, embed_dim=d,
                  hidden_dim=hidden, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim)
    # The 27B models scale queries by (embed_dim / num_heads)^-0.5 instead of head_dim^-0.5.
    wide_scale = (d // num_heads) ** -0.5
    try:
        if arch == "gemma":
            return GemmaConfig(attention_kinds=all_global(num_layers), query_scale=head_dim**-0.5,
                               max_context=8192, **common)
        if arch == "gemma2":
            return GemmaConfig(
                attention_kinds=alternating_local_global(num_layers), sliding_window=4096,
                query_scale=wide_scale if num_layers == 46 else head_dim**-0.5,
                attn_logit_softcap=50.0, final_logit_softcap=30.0,
                use_post_attn_norm=True, use_post_ffw_norm=True, max_context=8192, **common)
        small = d <= 1152  # Gemma 3 270M and 1B: 512-token windows, 32K context, no RoPE scaling
        return GemmaConfig(
            attention_kinds=local_global_pattern(num_layers), sliding_window=512 if small else 1024,
            query_scale=wide_scale if num_layers == 62 else head_dim**-0.5,
            rope_base_local=10_000.0, rope_base_global=1_000_000.0, rope_scale_global=1.0 if small else 8.0,
            use_qk_norm=True, use_post_attn_norm=True, use_post_ffw_norm=True,
            max_context=32_768 if small else 131_072, **common)
    except ValueError as e:
        raise CheckpointError(path, f"the shapes do not describe a valid model ({e})") from None


# --- tensors -----------------------------------------------------------------------------------------


def convert_tree(tree: dict[str, np.ndarray], config: GemmaConfig, path: Path) -> Params:
    c = config
    d, n, k, h, f = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_dim

    def get(key: str, *shapes: tuple[int, ...]) -> np.ndarray:
        full = "transformer/" + key
        if full not in tree:
            raise CheckpointError(path, f"parameter {full} is missing (is this a {c.architecture} checkpoint?)")
        array = tree[full]
        if tuple(array.shape) not in shapes:
            raise CheckpointError(path, f"parameter {full} has shape {list(array.shape)}, expected "
                                        f"{' or '.join(str(list(s)) for s in shapes)} from the other parameters")
        return np.asarray(array, dtype=np.float32)

    def rows(w: np.ndarray) -> np.ndarray:
        """[heads, D, H] -> [heads*H, D] (our [out, in])."""
        return w.transpose(0, 2, 1).reshape(-1, d)

    params: Params = {"embedder": {"input_embedding": get("embedder/input_embedding", (c.vocab_size, d))},
                      "final_norm": {"scale": get("final_norm/scale", (d,))}}
    for i in range(c.num_layers):
        pre = f"layer_{i}/"
        if n == k and f"transformer/{pre}attn/qkv_einsum/w" in tree:
            w = get(pre + "attn/qkv_einsum/w", (3, n, d, h))
            q, kk, v = rows(w[0]), rows(w[1]), rows(w[2])
        else:
            q = rows(get(pre + "attn/q_einsum/w", (n, d, h)))
            kv = get(pre + "attn/kv_einsum/w", (2, k, d, h))
            kk, v = rows(kv[0]), rows(kv[1])
        gating = get(pre + "mlp/gating_einsum/w", (2, d, f), (2, f, d))
        if gating.shape[1] == d and (d != f or c.architecture == "gemma"):
            gating = gating.transpose(0, 2, 1)  # [2, D, F] -> [2, F, D]
        layer: dict = {
            "attn": {"qkv": {"w": np.concatenate([q, kk, v], axis=0)},
                     "output": {"w": get(pre + "attn/attn_vec_einsum/w", (n, h, d)).reshape(n * h, d).T.copy()}},
            "mlp": {"gate_up": {"w": np.concatenate([gating[0], gating[1]], axis=0)},
                    "down": {"w": get(pre + "mlp/linear/w", (f, d)).T.copy()}},
            "pre_attention_norm": {"scale": get(pre + "pre_attention_norm/scale", (d,))},
            "pre_ffw_norm": {"scale": get(pre + "pre_ffw_norm/scale", (d,))},
        }
        if c.use_post_attn_norm:
            layer["post_attention_norm"] = {"scale": get(pre + "post_attention_norm/scale", (d,))}
        if c.use_post_ffw_norm:
            layer["post_ffw_norm"] = {"scale": get(pre + "post_ffw_norm/scale", (d,))}
        if c.use_qk_norm:
            layer["attn"]["query_norm"] = {"scale": get(pre + "attn/_query_norm/scale", (h,))}
            layer["attn"]["key_norm"] = {"scale": get(pre + "attn/_key_norm/scale", (h,))}
        params[f"layer_{i}"] = layer
    return params


def relevant_files(path: Path) -> list[Path]:
    """Every file of the checkpoint directory, and the tokenizer (for the converted-weights cache key)."""
    checkpoint_dir = find_checkpoint_dir(path)
    if checkpoint_dir is None:
        raise CheckpointError(path, "no orbax checkpoint here")
    files = sorted(p for p in checkpoint_dir.rglob("*") if p.is_file())
    tokenizer = find_tokenizer(checkpoint_dir)
    return files + [tokenizer] if tokenizer is not None and tokenizer not in files else files


def load_orbax(path: str | os.PathLike, *, overrides: dict | None = None) -> Checkpoint:
    """Load a Kaggle Flax checkpoint: the orbax directory, or the variant directory holding it."""
    path = Path(path)
    checkpoint_dir = find_checkpoint_dir(path)
    if checkpoint_dir is None:
        raise CheckpointError(path, f"no orbax checkpoint here (expected one of {', '.join(ORBAX_MARKERS)} "
                                    "in this directory or in one directory inside it)")
    tokenizer_path = find_tokenizer(checkpoint_dir)
    if tokenizer_path is None:
        raise CheckpointError(checkpoint_dir / TOKENIZER_FILE,
                              f"the SentencePiece tokenizer is missing: put {TOKENIZER_FILE} (from the same Kaggle "
                              "download) in the checkpoint directory or the directory above it")
    tree = _restore(checkpoint_dir)
    name = checkpoint_dir.name if checkpoint_dir == path else path.name
    config = infer_config(tree, checkpoint_dir, name)
    if overrides:
        try:
            config = config.replace(**overrides)
        except (TypeError, ValueError) as e:
            raise CheckpointError(checkpoint_dir, f"the config overrides are invalid ({e})") from None
    params = convert_tree(tree, config, checkpoint_dir)
    tokenizer = load_tokenizer_file(tokenizer_path)
    return Checkpoint(config=config, params=params, tokenizer=tokenizer, source=str(path), format="orbax")
