"""Write tiny GGUF files the way llama.cpp's `convert_hf_to_gguf.py` writes Gemma models.

Test helper, not part of the package. `write_gguf(path, config, params)` takes a config and a
parameter tree in the runtime layout (fused `attn/qkv/w`, `mlp/gate_up/w`, norms as offsets from
one) and undoes what the runtime's loader undoes:

- the fused matrices are split back into llama.cpp's per-projection tensors
  (`attn_q`, `attn_k`, `attn_v`; `ffn_gate`, `ffn_up`), all stored [out, in] in numpy order
  (GGUFWriter records the dimensions reversed, fastest first, exactly as llama.cpp does);
- every norm weight is stored as 1 + scale, as the converter's Gemma classes do;
- the metadata keys are the ones the converter writes for `gemma`, `gemma2` and `gemma3`.

Knobs for error-path tests: `arch_override` (write the file as another architecture),
`drop_tensors` (leave tensors out), `metadata_overrides` (`{key: value}` sets or replaces a key,
`{key: None}` removes it), `quantize` (`{tensor name: GGMLQuantizationType}`).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gguf
import numpy as np

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.config import GemmaConfig

SPACE = "\u2581"  # SentencePiece's "▁"

# GGUF token types (llama.cpp's llama_token_type).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3


def tiny_vocab(vocab_size: int) -> tuple[list[str], list[float], list[int]]:
    """A Gemma-like SentencePiece vocabulary of exactly `vocab_size` pieces:
    `<pad> <eos> <bos> <unk>`, the 256 byte pieces `<0x00>`..`<0xFF>`, then normal pieces
    ("▁", single characters, "▁a", ..., two-letter pieces) until the vocabulary is full."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_UNKNOWN]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TOKEN_BYTE] * 256
    scores = [0.0] * len(tokens)

    def normal_pieces() -> Iterable[str]:
        yield SPACE
        chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,:;()[]{}=+-*/_'\"#"
        yield from chars
        yield from (SPACE + c for c in chars)
        lower = string.ascii_lowercase
        yield from (a + b for a in lower for b in lower)
        yield from (SPACE + a + b for a in lower for b in lower)

    pieces = normal_pieces()
    while len(tokens) < vocab_size:
        try:
            piece = next(pieces)
        except StopIteration:
            raise ValueError(f"tiny_vocab cannot fill {vocab_size} pieces") from None
        scores.append(-float(len(tokens) - 260))  # earlier pieces merge first
        tokens.append(piece)
        types.append(TOKEN_NORMAL)
    if len(tokens) > vocab_size:
        raise ValueError(f"a vocabulary needs at least {len(tokens)} pieces, the config has {vocab_size}")
    return tokens, scores, types


def gguf_tensors(config: GemmaConfig, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The runtime's parameter tree -> llama.cpp's tensors (float32, numpy order [out, in])."""
    c = config

    def f32(x) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32))

    def norm(x) -> np.ndarray:
        return f32(1.0 + np.asarray(x, dtype=np.float32))  # the converter's `data_torch + 1`

    q_rows, kv_rows = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    out = {"token_embd.weight": f32(params["embedder"]["input_embedding"])}
    for i in range(c.num_layers):
        layer, blk = params[f"layer_{i}"], f"blk.{i}."
        qkv = f32(layer["attn"]["qkv"]["w"])
        assert qkv.shape == (q_rows + 2 * kv_rows, c.embed_dim), qkv.shape
        out[blk + "attn_norm.weight"] = norm(layer["pre_attention_norm"]["scale"])
        out[blk + "attn_q.weight"] = f32(qkv[:q_rows])
        out[blk + "attn_k.weight"] = f32(qkv[q_rows:q_rows + kv_rows])
        out[blk + "attn_v.weight"] = f32(qkv[q_rows + kv_rows:])
        if c.use_qk_norm:
            out[blk + "attn_q_norm.weight"] = norm(layer["attn"]["query_norm"]["scale"])
            out[blk + "attn_k_norm.weight"] = norm(layer["attn"]["key_norm"]["scale"])
        out[blk + "attn_output.weight"] = f32(layer["attn"]["output"]["w"])
        if c.use_post_attn_norm:
            out[blk + "post_attention_norm.weight"] = norm(layer["post_attention_norm"]["scale"])
        out[blk + "ffn_norm.weight"] = norm(layer["pre_ffw_norm"]["scale"])
        gate_up = f32(layer["mlp"]["gate_up"]["w"])
        assert gate_up.shape == (2 * c.hidden_dim, c.embed_dim), gate_up.shape
        out[blk + "ffn_gate.weight"] = f32(gate_up[:c.hidden_dim])
        out[blk + "ffn_up.weight"] = f32(gate_up[c.hidden_dim:])
        out[blk + "ffn_down.weight"] = f32(layer["mlp"]["down"]["w"])
        if c.use_post_ffw_norm:
            out[blk + "post_ffw_norm.weight"] = norm(layer["post_ffw_norm"]["scale"])
    out["output_norm.weight"] = norm(params["final_norm"]["scale"])
    return out


def _add_metadata(writer: gguf.GGUFWriter, config: GemmaConfig) -> None:
    """The keys convert_hf_to_gguf.py's GemmaModel / Gemma2Model / Gemma3Model write."""
    c, w = config, writer
    w.add_context_length(c.max_context)
    w.add_embedding_length(c.embed_dim)
    w.add_block_count(c.num_layers)
    w.add_feed_forward_length(c.hidden_dim)
    w.add_head_count(c.num_heads)
    w.add_head_count_kv(c.num_kv_heads)
    w.add_layer_norm_rms_eps(c.norm_eps)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    if c.architecture == "gemma":
        w.add_rope_freq_base(c.rope_base_global)
    elif c.architecture == "gemma2":
        w.add_rope_freq_base(c.rope_base_global)
        w.add_attn_logit_softcapping(c.attn_logit_softcap)
        w.add_final_logit_softcapping(c.final_logit_softcap)
        w.add_sliding_window(c.sliding_window)
    elif c.architecture == "gemma3":
        w.add_rope_freq_base(c.rope_base_global)
        w.add_sliding_window(c.sliding_window)
        if c.rope_scale_global != 1.0:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(c.rope_scale_global)
    else:
        raise ValueError(f"write_gguf does not know architecture {c.architecture!r}")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_vocab(writer: gguf.GGUFWriter, vocab: tuple[Sequence[str], Sequence[float], Sequence[int]]) -> None:
    tokens, scores, types = vocab
    w = writer
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(list(tokens))
    w.add_token_scores([float(s) for s in scores])
    w.add_token_types([int(t) for t in types])
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_pad_token_id(PAD_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


def _set_value(writer: gguf.GGUFWriter, key: str, value: Any) -> None:
    kv = writer.kv_data[0]
    if value is None:
        kv.pop(key, None)
        return
    kv.pop(key, None)  # no "duplicated key" warning
    if isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, (list, tuple)):
        writer.add_array(key, list(value))
    else:
        raise TypeError(f"cannot write metadata {key}={value!r}")


def write_gguf(
    path: str | os.PathLike,
    config: GemmaConfig,
    params: Mapping[str, Any],
    *,
    vocab: tuple[Sequence[str], Sequence[float], Sequence[int]] | None = None,
    quantize: Mapping[str, gguf.GGMLQuantizationType] | None = None,
    arch_override: str | None = None,
    drop_tensors: Iterable[str] = (),
    metadata_overrides: Mapping[str, Any] | None = None,
) -> os.PathLike:
    """Write `params` (runtime layout) as a llama.cpp GGUF file for `config.architecture`.

    `general.name` is `config.name`, so the loaded config can equal the original one.
    Returns `path`.
    """
    arch = arch_override or config.architecture
    quantize = dict(quantize or {})
    drop = set(drop_tensors)
    tensors = gguf_tensors(config, params)
    unknown = (set(quantize) | drop) - set(tensors)
    if unknown:
        raise KeyError(f"no such tensors: {sorted(unknown)}")

    writer = gguf.GGUFWriter(path, arch)  # writes general.architecture = arch
    try:
        writer.add_type("model")
        writer.add_name(config.name)
        _add_metadata(writer, config)
        _add_vocab(writer, vocab if vocab is not None else tiny_vocab(config.vocab_size))
        for key, value in (metadata_overrides or {}).items():
            _set_value(writer, key, value)

        for name, array in tensors.items():
            if name in drop:
                continue
            qtype = quantize.get(name)
            if qtype is None or qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(name, array)
            else:
                data = gguf.quants.quantize(array, qtype)
                if data.dtype == np.uint8:
                    writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
                else:  # F16 (and other plain float types) come back as ordinary arrays
                    writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


# The tiny configs every checkpoint test writes, and a prompt longer than their sliding windows
# (8 positions), so local layers really mask something; ids < 512.
TINY_CONFIGS = {
    "gemma1-mqa": configs.tiny_gemma1_mqa,
    "gemma1-mha": configs.tiny_gemma1_mha,
    "gemma2": configs.tiny_gemma2,
    "gemma3": configs.tiny_gemma3,
}
TINY_IDS = [BOS_ID, 300, 17, 511, 260, 261, 400, 42, 5, 300, 300, 1, 77, 450]
