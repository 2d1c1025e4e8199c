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


# Bytes per element of every safetensors dtype, so the header can be checked against the file
# even for dtypes `get` does not convert.
_ITEMSIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
              "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8}
MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors format itself sets


class SafetensorsFile:
    """Names, shapes and float32 contents of one .safetensors file (memory-mapped).

    The header is checked whole when the file is opened: its length against the file, its JSON,
    and every tensor's dtype, shape and data offsets against the data that follows, so a broken
    or hostile file fails here, in one CheckpointError, before anything is mapped or allocated.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.size = os.fstat(f.fileno()).st_size
                raw_len = f.read(8)
                if len(raw_len) < 8:
                    raise CheckpointError(path, f"the file has {len(raw_len)} bytes, fewer than a safetensors "
                                                "header's 8-byte length: not a safetensors file, or a truncated one")
                (header_len,) = struct.unpack("<Q", raw_len)
                if header_len > self.size - 8:
                    raise CheckpointError(path, f"the header claims {header_len} bytes, but only {self.size - 8} "
                                                "follow its length: not a safetensors file, or a truncated one")
                if header_len > MAX_HEADER_BYTES:
                    raise CheckpointError(path, f"the header claims {header_len} bytes, more than the format's "
                                                f"limit of {MAX_HEADER_BYTES}: not a safetensors file")
                raw_header = f.read(header_len)
        except OSError as e:
            raise CheckpointError(path, f"cannot read the file: {e.strerror or e}") from None
        try:
            header = json.loads(raw_header)
        except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problem = " ".join(str(e).split())[:200]
            raise CheckpointError(path, f"the header is not JSON ({problem}): not a safetensors file, "
                                        "or a corrupt one") from None
        if not isinstance(header, dict):
            raise CheckpointError(path, f"the header is a JSON {type(header).__name__}, not an object: "
                                        "not a safetensors file, or a corrupt one")
        header.pop("__metadata__", None)
        self.data_start = 8 + header_len
        data_size = self.size - self.data_start
        for name, info in header.items():
            _check_entry(path, name, info, data_size)
        self.header: dict = header

    def keys(self) -> list[str]:
        return list(self.header)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        begin, end = info["data_offsets"]  # checked against the file and the shape when it was opened
        shape, dtype = tuple(info["shape"]), info["dtype"]
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


def _check_entry(path: Path, name: str, info, data_size: int) -> None:
    """One header entry: {"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}, whose
    bytes lie in the data section and are as many as its shape and dtype need."""

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(path, f"tensor {name!r} in the header {problem}: the file is corrupt")

    def is_int(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if not isinstance(info, dict):
        raise bad(f"is described by a JSON {type(info).__name__}, not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad(f"has dtype {dtype!r}, expected a string such as \"BF16\"")
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise bad(f"has shape {str(shape)[:100]}, expected a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_int(o) for o in offsets)):
        raise bad(f"has data_offsets {str(offsets)[:100]}, expected [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise CheckpointError(path, f"tensor {name!r} has data_offsets [{begin}, {end}], outside the file's "
                                    f"{data_size} bytes of data: the file is truncated or corrupt")
    itemsize = _ITEMSIZES.get(dtype)
    if itemsize is not None:
        count = 1
        for d in shape:
            count *= d
        if (end - begin) != count * itemsize:
            raise bad(f"has shape {shape} of {dtype} ({count * itemsize} bytes) but data_offsets [{begin}, {end}] "
                      f"({end - begin} bytes)")


def _tensor_files(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            files = [directory / name for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise CheckpointError(index, f"not a valid safetensors index ({type(e).__name__}: {e})") from None
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


MAX_CONFIG_BYTES = 16 << 20  # a Gemma config.json is about 1 KB
MAX_LAYERS = 4096  # the largest Gemma has 62; the bound keeps a corrupt count from building a huge config


def read_hf_config(config_path: Path, name: str | None = None) -> GemmaConfig:
    try:
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(config_path, f"the file has {config_path.stat().st_size} bytes, too many for a "
                                               "model's config.json")
        cfg = json.loads(config_path.read_text())
    except OSError as e:
        raise CheckpointError(config_path, f"cannot read the file: {e.strerror}") from None
    except (ValueError, RecursionError) as e:  # also UnicodeDecodeError
        raise CheckpointError(config_path, f"not valid JSON ({' '.join(str(e).split())[:200]})") from None
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
        if not 1 <= num_layers <= MAX_LAYERS:
            raise CheckpointError(config_path, f"num_hidden_layers is {num_layers}, not a plausible layer count "
                                               f"(1 to {MAX_LAYERS})")
        embed_dim = int(cfg["hidden_size"])
        num_heads = int(cfg["num_attention_heads"])
        if num_heads < 1:
            raise CheckpointError(config_path, f"num_attention_heads is {num_heads}; it must be positive")
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
    except (TypeError, ValueError, ArithmeticError) as e:
        raise CheckpointError(config_path, f"does not describe a valid model ({' '.join(str(e).split())[:200]})") from None


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
