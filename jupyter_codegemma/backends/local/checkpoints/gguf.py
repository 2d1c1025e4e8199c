"""GGUF files (llama.cpp, Ollama) -> (config, params, tokenizer).

What llama.cpp's converter changed, and we undo:
- every Gemma norm weight is stored as 1 + scale (our RMSNorm adds the 1 itself);
- linear weights are stored per projection (`attn_q`, `attn_k`, ...); we fuse the ones that
  share an input (both are [out, in], so fusing is a concatenation);
- Gemma 3 files trim the embedding to the real vocabulary.
Quantized tensors (Q4_K, Q5_0, Q6_K, Q8_0, ...) are dequantized to float32 by the `gguf` package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import GemmaConfig, alternating_local_global, all_global, local_global_pattern
from ...errors import CheckpointError
from .base import Checkpoint, Params
from .gguf_header import scan_gguf_header

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = ("gemma", "gemma2", "gemma3")

# Our name for each per-layer norm, by GGUF tensor name.
_LAYER_NORMS = {
    "attn_norm": ("pre_attention_norm",),
    "ffn_norm": ("pre_ffw_norm",),
    "post_attention_norm": ("post_attention_norm",),
    "post_ffw_norm": ("post_ffw_norm",),
    "attn_q_norm": ("attn", "query_norm"),
    "attn_k_norm": ("attn", "key_norm"),
}


def is_gguf(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _open_reader(path: Path):
    import gguf

    if not path.exists():
        raise CheckpointError(path, "no such file")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, expected a .gguf file")
    if not is_gguf(path):
        raise CheckpointError(path, "not a GGUF file (it does not start with the bytes 'GGUF')")
    # The reader trusts the header (a hostile count makes it loop or allocate without end): every
    # count, length, shape and offset is checked against the file first (see gguf_header.py).
    scan_gguf_header(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # whatever numpy or struct raise on what the scan does not check
        raise CheckpointError(path, f"the file is truncated or corrupt ({_one_line(e)}); "
                                    "download it again") from None
    return reader


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    return value


def read_config(reader, path: Path, name: str | None = None) -> GemmaConfig:
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(path, f"unsupported architecture {arch!r}; this runtime loads "
                                    f"{', '.join(SUPPORTED_ARCHITECTURES)} (Gemma 1/CodeGemma, Gemma 2, Gemma 3 text)")

    def need(key: str):
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise CheckpointError(path, f"metadata key {arch}.{key} is missing")
        return value

    def positive(key: str, value) -> int:
        value = int(value)
        if value < 1:
            raise CheckpointError(path, f"metadata key {arch}.{key} is {value}; it must be positive")
        return value

    num_layers = positive("block_count", need("block_count"))
    # Each layer has at least nine tensors; the bound keeps a corrupt count from building a
    # config (one entry per layer) bigger than the file.
    if num_layers > len(reader.tensors):
        raise CheckpointError(path, f"metadata key {arch}.block_count is {num_layers}, but the file holds only "
                                    f"{len(reader.tensors)} tensors: the file is corrupt")
    embed_dim = positive("embedding_length", need("embedding_length"))
    num_heads = positive("attention.head_count", need("attention.head_count"))
    num_kv_heads = positive("attention.head_count_kv", _field(reader, f"{arch}.attention.head_count_kv", num_heads))
    head_dim = positive("attention.key_length",
                        _field(reader, f"{arch}.attention.key_length", max(embed_dim // num_heads, 1)))
    embedding = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embedding is None:
        raise CheckpointError(path, "tensor token_embd.weight is missing")
    if len(embedding.shape) != 2:
        raise CheckpointError(path, f"tensor token_embd.weight has {len(embedding.shape)} dimensions, expected 2")
    common = dict(
        name=name or str(_field(reader, "general.name", path.stem)),
        architecture=arch,
        num_layers=num_layers,
        vocab_size=int(embedding.shape[1]),  # GGUF lists dimensions fastest first
        embed_dim=embed_dim,
        hidden_dim=int(need("feed_forward_length")),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        norm_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
        max_context=int(_field(reader, f"{arch}.context_length", 8192)),
    )
    # llama.cpp's rule for the query scale: the 27B models scale by embed_dim / num_heads.
    head_scale = head_dim**-0.5
    wide_scale = (embed_dim // num_heads) ** -0.5
    if arch == "gemma":
        return GemmaConfig(attention_kinds=all_global(num_layers), query_scale=head_scale,
                           rope_base_global=float(_field(reader, "gemma.rope.freq_base", 10_000.0)), **common)
    window = int(_field(reader, f"{arch}.attention.sliding_window", 4096 if arch == "gemma2" else 512))
    if arch == "gemma2":
        return GemmaConfig(
            attention_kinds=alternating_local_global(num_layers), sliding_window=window,
            query_scale=wide_scale if num_layers == 46 else head_scale,
            attn_logit_softcap=float(_field(reader, "gemma2.attn_logit_softcapping", 50.0)),
            final_logit_softcap=float(_field(reader, "gemma2.final_logit_softcapping", 30.0)),
            rope_base_global=float(_field(reader, "gemma2.rope.freq_base", 10_000.0)),
            rope_base_local=float(_field(reader, "gemma2.rope.freq_base", 10_000.0)),
            use_post_attn_norm=True, use_post_ffw_norm=True, **common)
    period = positive("attention.sliding_window_pattern", _field(reader, "gemma3.attention.sliding_window_pattern", 6))
    scaling = _field(reader, "gemma3.rope.scaling.type")
    factor = float(_field(reader, "gemma3.rope.scaling.factor", 1.0)) if scaling in (None, "linear") else 1.0
    return GemmaConfig(
        attention_kinds=local_global_pattern(num_layers, period), sliding_window=window,
        query_scale=wide_scale if num_layers == 62 else head_scale,
        rope_base_global=float(_field(reader, "gemma3.rope.freq_base", 1_000_000.0)),
        rope_base_local=10_000.0,  # not in the metadata: llama.cpp fixes it for Gemma 3's local layers
        rope_scale_global=factor,
        use_qk_norm=True, use_post_attn_norm=True, use_post_ffw_norm=True, **common)


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def convert_tensors(tensors: dict[str, Callable[[], np.ndarray]], config: GemmaConfig, path: Path) -> Params:
    """GGUF tensors (name -> loader of a float32 numpy array) -> our parameter tree."""

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in tensors:
            raise CheckpointError(path, f"tensor {name} is missing (is this a {config.architecture} model?)")
        array = tensors[name]()
        if array.shape != shape:  # numpy order: [out, in]
            raise CheckpointError(path, f"tensor {name} has shape {list(array.shape)} but the metadata "
                                        f"implies {list(shape)}; the file is inconsistent")
        return array

    c = config
    d, q_rows, kv_rows = c.embed_dim, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    params: Params = {"embedder": {"input_embedding": get("token_embd.weight", (c.vocab_size, d))}}
    params["final_norm"] = {"scale": get("output_norm.weight", (d,)) - 1.0}
    for i in range(c.num_layers):
        layer: dict = {}
        blk = f"blk.{i}."
        # GGUF already stores [out, in] matrices; fusing is a concatenation.
        qkv = [get(blk + name + ".weight", (rows, d))
               for name, rows in (("attn_q", q_rows), ("attn_k", kv_rows), ("attn_v", kv_rows))]
        _set(layer, ("attn", "qkv", "w"), np.concatenate(qkv, axis=0))
        _set(layer, ("attn", "output", "w"), get(blk + "attn_output.weight", (d, q_rows)))
        gate_up = [get(blk + name + ".weight", (c.hidden_dim, d)) for name in ("ffn_gate", "ffn_up")]
        _set(layer, ("mlp", "gate_up", "w"), np.concatenate(gate_up))
        _set(layer, ("mlp", "down", "w"), get(blk + "ffn_down.weight", (d, c.hidden_dim)))
        wanted = ["attn_norm", "ffn_norm"]
        wanted += ["post_attention_norm"] if c.use_post_attn_norm else []
        wanted += ["post_ffw_norm"] if c.use_post_ffw_norm else []
        wanted += ["attn_q_norm", "attn_k_norm"] if c.use_qk_norm else []
        for gguf_name in wanted:
            width = c.head_dim if gguf_name in ("attn_q_norm", "attn_k_norm") else d
            _set(layer, _LAYER_NORMS[gguf_name] + ("scale",), get(blk + gguf_name + ".weight", (width,)) - 1.0)
        params[f"layer_{i}"] = layer
    return params


def load_gguf(path: str | os.PathLike) -> Checkpoint:
    """Read a GGUF file whole: config from its metadata, float32 params, the tokenizer."""
    import gguf

    from ..tokenizer import TokenizerError
    from .gguf_vocab import read_gguf_vocab

    path = Path(path)
    reader = _open_reader(path)
    try:
        config = read_config(reader, path)
    except (TypeError, ValueError, ArithmeticError) as e:  # a value of the wrong type, or shapes GemmaConfig rejects
        raise CheckpointError(path, f"the metadata does not describe a valid model ({_one_line(e)})") from None

    def loader(t) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            try:
                array = gguf.quants.dequantize(t.data, t.tensor_type)
            except NotImplementedError as e:
                raise CheckpointError(path, f"tensor {t.name} has type {t.tensor_type.name}, "
                                            f"which the gguf package cannot dequantize ({e})") from None
            except (ValueError, TypeError, ArithmeticError) as e:
                raise CheckpointError(path, f"tensor {t.name} ({t.tensor_type.name}) cannot be dequantized "
                                            f"({_one_line(e)}): the file is corrupt") from None
            return np.asarray(array, dtype=np.float32)
        return load

    tensors = {t.name: loader(t) for t in reader.tensors}
    params = convert_tensors(tensors, config, path)
    try:
        tokenizer = read_gguf_vocab(reader, source=str(path))
    except Exception as e:
        problem = e.problem if isinstance(e, TokenizerError) else _one_line(e, 400)
        raise CheckpointError(path, f"the tokenizer vocabulary cannot be read: {problem}") from None
    return Checkpoint(config=config, params=params, tokenizer=tokenizer, source=str(path), format="gguf")

