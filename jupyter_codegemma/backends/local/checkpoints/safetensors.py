"""Hugging Face checkpoint directories -> (config, params, tokenizer).

A directory as `save_pretrained` writes it: `config.json`, `model.safetensors` or shards listed
in `model.safetensors.index.json`, and the SentencePiece `tokenizer.model`.

What differs from the runtime layout, and how it is mapped:
- projections are separate `[out, in]` matrices (`q_proj`, `k_proj`, `v_proj`; `gate_proj`,
  `up_proj`): fused by concatenation, as for GGUF;
- norms are stored as the scale itself (`RMSNorm` multiplies by `1 + weight`, like ours): no +1;
- Gemma 1's `post_attention_layernorm` is the norm *before* the feed-forward layer; Gemma 2 and 3
  name that one `pre_feedforward_layernorm` and use `post_attention_layernorm` after attention;
- Gemma 3 multimodal checkpoints (`model_type` "gemma3") keep the text model under
  `language_model.model.` (older transformers) or `model.language_model.` (newer): only the text
  model is loaded.

Tensors are read with a small reader of the safetensors format (8-byte header length, a JSON
header, raw little-endian data), because the `safetensors` package's numpy API cannot return
bfloat16, the dtype real Gemma checkpoints use; every tensor becomes float32.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from ..config import AttentionKind, GemmaConfig, alternating_local_global, all_global, local_global_pattern
from ...errors import CheckpointError
from .base import Checkpoint, Params, load_tokenizer_file

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.model"
MODEL_TYPES = {"gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3"}

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file() and any(path.glob("*.safetensors"))


# --- reading safetensors files ------------------------------------------------------------------


class SafetensorsFile:
    """Names, shapes and float32 contents of one .safetensors file (memory-mapped)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as f:
                raw_len = f.read(8)
                if len(raw_len) < 8:
                    raise ValueError("the file is shorter than its 8-byte header length")
                (header_len,) = struct.unpack("<Q", raw_len)
                if header_len > 100_000_000:
                    raise ValueError(f"implausible header length {header_len}")
                header = json.loads(f.read(header_len))
        except OSError as e:
            raise CheckpointError(path, f"cannot read the file: {e.strerror}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(path, f"not a safetensors file, or a truncated one ({e})") from None
        header.pop("__metadata__", None)
        self.header: dict = header
        self.data_start = 8 + header_len
        self.size = path.stat().st_size

    def keys(self) -> list[str]:
        return list(self.header)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        begin, end = info["data_offsets"]
        shape, dtype = tuple(info["shape"]), info["dtype"]
        if self.data_start + end > self.size:
            raise CheckpointError(self.path, f"tensor {name} runs past the end of the file; the file is truncated")
        if dtype == "BF16":
            raw = np.memmap(self.path, np.uint16, "r", offset=self.data_start + begin, shape=((end - begin) // 2,))
            array = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dtype in _DTYPES:
            np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
            count = (end - begin) // np_dtype.itemsize
            array = np.memmap(self.path, np_dtype, "r", offset=self.data_start + begin, shape=(count,))
            array = array.astype(np.float32)
        else:
            raise CheckpointError(self.path, f"tensor {name} has dtype {dtype}, which this loader does not read "
                                             "(expected F32, F16 or BF16)")
        return array.reshape(shape)


def _tensor_files(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(index, f"not a valid safetensors index ({e})") from None
        files = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(missing[0], f"shard listed in {INDEX_FILE} is missing")
        return files
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(directory, "no *.safetensors files")
    return files


# --- config ------------------------------------------------------------------------------------------


def _rope(cfg: dict, kind: str, default_theta: float) -> tuple[float, float]:
    """(base, linear scale factor) for "full_attention" or "sliding_attention" layers.

    transformers ≥ 5 writes `rope_parameters` (per layer type for Gemma 3); older configs write
    `rope_theta`, `rope_local_base_freq` and `rope_scaling`.
    """
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and kind in params and isinstance(params[kind], dict):
        params = params[kind]
    if isinstance(params, dict) and "rope_theta" in params:
        factor = float(params.get("factor", 1.0)) if params.get("rope_type", "default") == "linear" else 1.0
        return float(params["rope_theta"]), factor
    if kind == "sliding_attention":
        return float(cfg.get("rope_local_base_freq", default_theta)), 1.0
    scaling = cfg.get("rope_scaling") or {}
    kind_name = scaling.get("rope_type", scaling.get("type", "default"))
    factor = float(scaling.get("factor", 1.0)) if kind_name == "linear" else 1.0
    return float(cfg.get("rope_theta", default_theta)), factor


def _attention_kinds(cfg: dict, arch: str, num_layers: int, path: Path) -> tuple[AttentionKind, ...]:
    layer_types = cfg.get("layer_types")
    if layer_types:
        if len(layer_types) != num_layers:
            raise CheckpointError(path, f"layer_types lists {len(layer_types)} layers, num_hidden_layers is {num_layers}")
        names = {"sliding_attention": AttentionKind.LOCAL, "full_attention": AttentionKind.GLOBAL}
        try:
            return tuple(names[t] for t in layer_types)
        except KeyError as e:
            raise CheckpointError(path, f"unknown layer type {e.args[0]!r} in layer_types") from None
    if arch == "gemma":
        return all_global(num_layers)
    if arch == "gemma2":
        return alternating_local_global(num_layers)
    return local_global_pattern(num_layers, int(cfg.get("sliding_window_pattern", 6)))


def read_hf_config(config_path: Path, name: str | None = None) -> GemmaConfig:
    try:
        cfg = json.loads(config_path.read_text())
    except OSError as e:
        raise CheckpointError(config_path, f"cannot read the file: {e.strerror}") from None
    except ValueError as e:
        raise CheckpointError(config_path, f"not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(config_path, "expected a JSON object")
    model_type = cfg.get("model_type")
    if model_type == "gemma3" and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "model_type": "gemma3_text"}
        model_type = "gemma3_text"
    if model_type not in MODEL_TYPES:
        raise CheckpointError(config_path, f"unknown model_type {model_type!r}; this runtime loads "
                                           f"{', '.join(sorted(MODEL_TYPES))} (Gemma 1/CodeGemma, Gemma 2, Gemma 3)")
    arch = MODEL_TYPES[model_type]
    try:
        num_layers = int(cfg["num_hidden_layers"])
        embed_dim = int(cfg["hidden_size"])
        num_heads = int(cfg["num_attention_heads"])
        num_kv_heads = int(cfg.get("num_key_value_heads") or num_heads)
        head_dim = int(cfg.get("head_dim") or embed_dim // num_heads)
        common = dict(
            name=name or str(cfg.get("_name_or_path") or config_path.parent.name),
            architecture=arch, num_layers=num_layers, vocab_size=int(cfg["vocab_size"]), embed_dim=embed_dim,
            hidden_dim=int(cfg["intermediate_size"]), num_heads=num_heads, num_kv_heads=num_kv_heads,
            head_dim=head_dim, norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            max_context=int(cfg.get("max_position_embeddings", 8192)),
        )
        activation = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
        if activation not in ("gelu_pytorch_tanh", "gelu"):
            # HF's Gemma 1 config says "gelu" but its model uses the tanh approximation, as ours does.
            raise CheckpointError(config_path, f"unsupported activation {activation!r}")
        kinds = _attention_kinds(cfg, arch, num_layers, config_path)
        default_global = 1_000_000.0 if arch == "gemma3" else 10_000.0
        base_global, scale_global = _rope(cfg, "full_attention", default_global)
        base_local, _ = _rope(cfg, "sliding_attention", 10_000.0 if arch == "gemma3" else base_global)
        if arch == "gemma":
            return GemmaConfig(attention_kinds=kinds, query_scale=head_dim**-0.5, rope_base_global=base_global,
                               rope_base_local=base_global, **common)
        window = cfg.get("sliding_window")
        query_scale = float(cfg.get("query_pre_attn_scalar") or head_dim) ** -0.5
        attn_cap, final_cap = cfg.get("attn_logit_softcapping"), cfg.get("final_logit_softcapping")
        return GemmaConfig(
            attention_kinds=kinds, sliding_window=int(window) if window else None, query_scale=query_scale,
            rope_base_global=base_global, rope_base_local=base_local, rope_scale_global=scale_global,
            attn_logit_softcap=float(attn_cap) if attn_cap is not None else None,
            final_logit_softcap=float(final_cap) if final_cap is not None else None,
            use_qk_norm=arch == "gemma3", use_post_attn_norm=True, use_post_ffw_norm=True, **common)
    except KeyError as e:
        raise CheckpointError(config_path, f"the field {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(config_path, f"does not describe a valid model ({e})") from None


# --- tensors -----------------------------------------------------------------------------------------

_PREFIXES = ("model.", "model.language_model.", "language_model.model.", "")


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def convert_hf_tensors(files: list[SafetensorsFile], config: GemmaConfig, config_path: Path) -> Params:
    where = {name: f for f in files for name in f.keys()}
    prefix = next((p for p in _PREFIXES if p + "embed_tokens.weight" in where), None)
    if prefix is None:
        raise CheckpointError(files[0].path, "tensor model.embed_tokens.weight is missing (is this a Gemma model?)")

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        full = prefix + name
        f = where.get(full)
        if f is None:
            raise CheckpointError(files[0].path.parent, f"tensor {full} is missing from the *.safetensors files "
                                                        f"(is this a {config.architecture} model?)")
        if f.shape(full) != shape:
            raise CheckpointError(f.path, f"tensor {full} has shape {list(f.shape(full))} but {config_path} "
                                          f"implies {list(shape)}; the checkpoint and its config disagree")
        return f.get(full)

    c = config
    d, q_rows, kv_rows = c.embed_dim, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    params: Params = {"embedder": {"input_embedding": get("embed_tokens.weight", (c.vocab_size, d))},
                      "final_norm": {"scale": get("norm.weight", (d,))}}
    for i in range(c.num_layers):
        layer: dict = {}
        pre = f"layers.{i}."
        qkv = [get(pre + f"self_attn.{n}_proj.weight", (rows, d))
               for n, rows in (("q", q_rows), ("k", kv_rows), ("v", kv_rows))]
        _set(layer, ("attn", "qkv", "w"), np.concatenate(qkv, axis=0))
        _set(layer, ("attn", "output", "w"), get(pre + "self_attn.o_proj.weight", (d, q_rows)))
        gate_up = [get(pre + f"mlp.{n}_proj.weight", (c.hidden_dim, d)) for n in ("gate", "up")]
        _set(layer, ("mlp", "gate_up", "w"), np.concatenate(gate_up, axis=0))
        _set(layer, ("mlp", "down", "w"), get(pre + "mlp.down_proj.weight", (d, c.hidden_dim)))
        _set(layer, ("pre_attention_norm", "scale"), get(pre + "input_layernorm.weight", (d,)))
        if c.architecture == "gemma":
            _set(layer, ("pre_ffw_norm", "scale"), get(pre + "post_attention_layernorm.weight", (d,)))
        else:
            _set(layer, ("pre_ffw_norm", "scale"), get(pre + "pre_feedforward_layernorm.weight", (d,)))
            _set(layer, ("post_attention_norm", "scale"), get(pre + "post_attention_layernorm.weight", (d,)))
            _set(layer, ("post_ffw_norm", "scale"), get(pre + "post_feedforward_layernorm.weight", (d,)))
        if c.use_qk_norm:
            _set(layer, ("attn", "query_norm", "scale"), get(pre + "self_attn.q_norm.weight", (c.head_dim,)))
            _set(layer, ("attn", "key_norm", "scale"), get(pre + "self_attn.k_norm.weight", (c.head_dim,)))
        params[f"layer_{i}"] = layer
    return params


def relevant_files(directory: Path) -> list[Path]:
    """The files whose contents make up the checkpoint (for the converted-weights cache key)."""
    files = [directory / CONFIG_FILE, *_tensor_files(directory)]
    return files + [directory / TOKENIZER_FILE] if (directory / TOKENIZER_FILE).is_file() else files


def load_safetensors(directory: str | os.PathLike) -> Checkpoint:
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(config_path, "config.json is missing: a Hugging Face checkpoint directory has one")
    config = read_hf_config(config_path)
    files = [SafetensorsFile(p) for p in _tensor_files(directory)]
    tokenizer_path = directory / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise CheckpointError(tokenizer_path, "the SentencePiece tokenizer (tokenizer.model) is missing; copy it "
                                              "from the model's repository into this directory")
    params = convert_hf_tensors(files, config, config_path)
    tokenizer = load_tokenizer_file(tokenizer_path)
    return Checkpoint(config=config, params=params, tokenizer=tokenizer, source=str(directory), format="safetensors")
