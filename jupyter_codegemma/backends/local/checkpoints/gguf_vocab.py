"""A GGUF file's vocabulary -> the SentencePiece model it came from.

llama.cpp's converter flattens a SentencePiece model into `tokenizer.ggml.tokens`, `.scores` and
`.token_type`; this rebuilds the `ModelProto` so tokenization runs through SentencePiece itself
(see tokenizer.py for what that reproduces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from ..tokenizer import Tokenizer, TokenizerError

if TYPE_CHECKING:  # gguf is only needed by callers that already hold a reader
    import gguf

__all__ = ["read_gguf_vocab", "tokenizer_from_gguf_vocab"]

_SPACE_SYMBOL = "\u2581"  # SentencePiece's escaped space, "▁"

_Type = sp_pb2.ModelProto.SentencePiece.Type

# GGUF's tokenizer.ggml.token_type follows llama.cpp's llama_token_type, whose numbering was
# copied from SentencePiece; spelled out so a change on either side fails loudly here.
_GGUF_TOKEN_TYPES: dict[int, int] = {
    1: _Type.NORMAL,
    2: _Type.UNKNOWN,
    3: _Type.CONTROL,
    4: _Type.USER_DEFINED,
    5: _Type.UNUSED,
    6: _Type.BYTE,
}



def tokenizer_from_gguf_vocab(tokens: Sequence[str], scores: Sequence[float], token_types: Sequence[int], *,
                              source: str = "<gguf>", **special) -> Tokenizer:
    """Rebuild the SentencePiece model that a llama.cpp "llama" (SPM) vocabulary came from.

    `special`: bos_id, eos_id, unk_id, pad_id (None for none) and add_space_prefix, which mirrors
    the GGUF key `tokenizer.ggml.add_space_prefix` (False for Gemma: no dummy prefix).
    """
    proto = _proto_from_gguf_vocab(tokens, scores, token_types, source=source, **special)
    return Tokenizer(proto, proto.SerializeToString(), source)


def read_gguf_vocab(reader: gguf.GGUFReader, source: str) -> Tokenizer:
    """Build the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.

    Used by the GGUF checkpoint loader; `source` names the file in error messages.
    """
    fields = reader.fields

    def field(key: str):
        f = fields.get(key)
        if f is None:
            raise TokenizerError(source, f"GGUF metadata has no {key}")
        return f

    def scalar(key: str, default=None):
        f = fields.get(key)
        if f is None:
            return default
        return f.parts[f.data[0]][0].item()

    model_field = field("tokenizer.ggml.model")
    model = bytes(model_field.parts[model_field.data[0]]).decode("utf-8")
    if model != "llama":
        # Only llama.cpp's "llama" vocabularies are SentencePiece models (Gemma's is one).
        raise TokenizerError(source, f"tokenizer.ggml.model is {model!r}; only SentencePiece ('llama') vocabularies are supported")

    tok_field = field("tokenizer.ggml.tokens")
    try:
        tokens = [bytes(tok_field.parts[i]).decode("utf-8") for i in tok_field.data]
    except UnicodeDecodeError as exc:
        raise TokenizerError(source, f"tokenizer.ggml.tokens holds a piece that is not UTF-8 ({exc})") from exc
    n = len(tokens)
    scores = _gguf_array(field("tokenizer.ggml.scores"), n, source)
    types = _gguf_array(field("tokenizer.ggml.token_type"), n, source)

    ids = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id")):
        ids[name] = scalar(f"tokenizer.ggml.{key}")
        if ids[name] is None:
            raise TokenizerError(source, f"GGUF metadata has no tokenizer.ggml.{key}")
    # llama.cpp prepends a space to SPM text unless the file says otherwise.
    add_space_prefix = bool(scalar("tokenizer.ggml.add_space_prefix", True))
    return tokenizer_from_gguf_vocab(
        tokens,
        scores.tolist(),
        types.tolist(),
        bos_id=int(ids["bos"]),
        eos_id=int(ids["eos"]),
        unk_id=int(ids["unk"]),
        pad_id=scalar("tokenizer.ggml.padding_token_id"),
        add_space_prefix=add_space_prefix,
        source=source,
    )


def _gguf_array(f, n: int, source: str):
    """A GGUF array field as one numpy array.

    The reader keeps one memmap view per element; when they are adjacent in the file (they
    always are for fixed-size elements) a single view over the span avoids a Python loop
    over 262 144 elements.
    """
    import numpy as np

    if len(f.data) != n:
        raise TokenizerError(source, f"{f.name} has {len(f.data)} entries but there are {n} tokens")
    if n == 0:
        return np.zeros(0)
    first, last = f.parts[f.data[0]], f.parts[f.data[-1]]
    base = first.base if isinstance(first.base, np.ndarray) else None
    if base is not None and last.base is base and first.size == 1:
        start = first.__array_interface__["data"][0]
        end = last.__array_interface__["data"][0]
        if end - start == (n - 1) * first.itemsize:
            offset = start - base.__array_interface__["data"][0]
            raw = np.asarray(base).view(np.uint8)[offset : offset + n * first.itemsize]
            return raw.view(first.dtype)
    return np.concatenate([f.parts[i] for i in f.data])


def _proto_from_gguf_vocab(tokens: Sequence[str], scores: Sequence[float], token_types: Sequence[int], *,
                           bos_id: int, eos_id: int, unk_id: int, pad_id: int | None, add_space_prefix: bool = False,
                           source: str) -> sp_pb2.ModelProto:
    n = len(tokens)
    if n == 0:
        raise TokenizerError(source, "the vocabulary is empty")
    if len(scores) != n or len(token_types) != n:
        raise TokenizerError(source, f"vocabulary lists disagree: {n} tokens, {len(scores)} scores, {len(token_types)} token types")
    for name, i in (("bos", bos_id), ("eos", eos_id), ("unk", unk_id), ("pad", pad_id)):
        if i is not None and not 0 <= i < n:
            raise TokenizerError(source, f"{name} id {i} is outside the vocabulary (size {n})")

    proto = sp_pb2.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = sp_pb2.TrainerSpec.BPE
    spec.vocab_size = n
    spec.byte_fallback = True
    spec.split_digits = True
    spec.allow_whitespace_only_pieces = True
    spec.split_by_whitespace = True
    spec.treat_whitespace_as_suffix = False
    spec.max_sentencepiece_length = 16
    spec.vocabulary_output_piece_score = True
    spec.hard_vocab_limit = True
    spec.unk_id, spec.bos_id, spec.eos_id = unk_id, bos_id, eos_id
    spec.pad_id = -1 if pad_id is None else pad_id
    spec.unk_piece, spec.bos_piece, spec.eos_piece = tokens[unk_id], tokens[bos_id], tokens[eos_id]
    if pad_id is not None:
        spec.pad_piece = tokens[pad_id]

    norm = proto.normalizer_spec
    norm.name = "identity"
    norm.precompiled_charsmap = b""
    norm.add_dummy_prefix = add_space_prefix
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True

    add_piece = proto.pieces.add
    user_defined, control, unknown = _Type.USER_DEFINED, _Type.CONTROL, _Type.UNKNOWN
    for i, (piece, score, gtype) in enumerate(zip(tokens, scores, token_types)):
        ptype = _GGUF_TOKEN_TYPES.get(int(gtype))
        if ptype is None:
            raise TokenizerError(source, f"token {i} ({piece!r}) has unknown GGUF token type {gtype}")
        if i == unk_id:
            # SentencePiece needs exactly one UNKNOWN piece, at unk_id; Gemma's GGUF marks
            # <unk> as CONTROL, so force it.
            ptype = unknown
        elif ptype == unknown:
            ptype = control  # a second "unknown" piece is invisible either way
        if ptype == user_defined and " " in piece:
            # SentencePiece matches user-defined pieces against the escaped text, while GGUF
            # stores them (the whitespace runs) with real spaces.
            piece = piece.replace(" ", _SPACE_SYMBOL)
        if not piece:
            raise TokenizerError(source, f"token {i} is an empty string")
        add_piece(piece=piece, score=score, type=ptype)

    if token_types[unk_id] == 3:
        # llama.cpp prints a CONTROL <unk> as nothing; SentencePiece would print " ⁇ ".
        spec.unk_surface = ""
    return proto
