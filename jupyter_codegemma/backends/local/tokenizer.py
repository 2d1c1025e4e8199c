"""SentencePiece tokenizer for Gemma models, loaded from a `tokenizer.model` or a GGUF vocabulary.

Both sources end up as one SentencePiece `ModelProto`, so encoding and decoding run through the
same C++ processor whatever the checkpoint format, and the proto bytes can be cached beside
converted weights (`Tokenizer.serialized`).

The GGUF rebuild aims to reproduce llama.cpp's tokenization with `parse_special=False`:
control tokens written in the text stay text, user-defined pieces (whitespace runs, HTML tags)
are matched atomically, and bytes with no piece of their own fall back to `<0xNN>` pieces.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import sentencepiece
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from ..errors import CodeGemmaError

__all__ = ["IncrementalDecoder", "Tokenizer", "TokenizerError"]

MAX_MODEL_BYTES = 256 << 20  # a file larger than this is not a tokenizer.model (Gemma 3's is 4.7 MB)


class TokenizerError(CodeGemmaError, ValueError):
    """A tokenizer that cannot be built or used; the message names its source and the problem."""

    def __init__(self, source: str, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"tokenizer {self.source}: {problem}")


class Tokenizer:
    """A loaded SentencePiece model plus the special ids the runtime needs.

    Build it with one of the `from_*` class methods; the constructor takes an already
    validated proto.
    """

    def __init__(self, proto: sp_pb2.ModelProto, data: bytes, source: str):
        self.source = source
        self._data = data
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(data)
        except Exception as exc:  # the C++ status arrives as RuntimeError/OSError
            raise TokenizerError(source, f"SentencePiece rejected the model: {exc}") from exc

        n = self._sp.get_piece_size()
        spec = proto.trainer_spec
        # Ids come from the trainer spec, not from sp.bos_id(): the latter looks the pieces up
        # by name and returns -1 when a GGUF marks them with an unexpected type.
        self._vocab_size = n
        self._bos_id = _check_id(source, "bos", spec.bos_id, n)
        self._eos_id = _check_id(source, "eos", spec.eos_id, n)
        self._unk_id = _check_id(source, "unk", spec.unk_id, n)
        self._pad_id = None if spec.pad_id < 0 else _check_id(source, "pad", spec.pad_id, n)
        # Leading-space stripping makes decode() depend on where a window of ids starts, which
        # the streaming decoder must allow for.
        norm = proto.normalizer_spec
        self._strips_leading_space = norm.add_dummy_prefix or norm.remove_extra_whitespaces
        self._is_byte: list[bool] | None = None  # built lazily: only streaming needs it

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_sentencepiece_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a `tokenizer.model` (as shipped with HF / Kaggle Gemma and CodeGemma)."""
        source = os.fspath(path)
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_MODEL_BYTES:
                    raise TokenizerError(source, f"the file has {size} bytes, too many for a SentencePiece model "
                                                 f"(at most {MAX_MODEL_BYTES}; Gemma's has about 4 MB)")
                data = f.read()
        except OSError as exc:
            raise TokenizerError(source, f"cannot read the file ({exc.strerror or exc})") from exc
        return cls.from_serialized(data, source=source)

    @classmethod
    def from_serialized(cls, data: bytes, source: str = "<bytes>") -> Tokenizer:
        """Load serialized `ModelProto` bytes, e.g. ones cached by `serialized()`."""
        data = bytes(data)
        proto = sp_pb2.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as exc:  # protobuf's DecodeError, but upb raises others too
            raise TokenizerError(source, "not a SentencePiece model: the protobuf does not parse") from exc
        # Arbitrary bytes often parse as an empty or nonsensical proto; a real model has pieces.
        if not proto.pieces:
            raise TokenizerError(source, "not a SentencePiece model: it has no pieces")
        # The pieces are serialized first: a file cut off after some of them still parses, but
        # lacks the specs that follow (SentencePiece's trainer always writes both).
        missing = [name for name in ("trainer_spec", "normalizer_spec") if not proto.HasField(name)]
        if missing:
            raise TokenizerError(source, f"not a SentencePiece model, or a truncated one: it has no "
                                         f"{' and no '.join(missing)}")
        return cls(proto, data, source)

    # ----------------------------------------------------------------- properties

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def bos_id(self) -> int:
        return self._bos_id

    @property
    def eos_id(self) -> int:
        return self._eos_id

    @property
    def unk_id(self) -> int:
        return self._unk_id

    @property
    def pad_id(self) -> int | None:
        return self._pad_id

    def serialized(self) -> bytes:
        """The `ModelProto` bytes, loadable again with `from_serialized`."""
        return self._data

    def __repr__(self) -> str:
        return f"Tokenizer(source={self.source!r}, vocab_size={self._vocab_size})"

    # ----------------------------------------------------------------- encode / decode

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Token ids of `text`, `<bos>` first unless `add_bos=False`.

        SentencePiece never produces control ids from text, so "<start_of_turn>" typed by a
        user is tokenized as characters, as llama.cpp does with parse_special=False.
        """
        ids = self._sp.encode(text, out_type=int)
        return [self._bos_id, *ids] if add_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: control tokens vanish, runs of byte pieces are joined as UTF-8
        (invalid bytes become U+FFFD, one per byte)."""
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self._vocab_size:
                raise TokenizerError(self.source, f"cannot decode id {i}: vocabulary has {self._vocab_size} ids")
        return self._sp.decode(ids)

    def id_to_piece(self, i: int) -> str:
        """The piece of id `i` as SentencePiece stores it (spaces written as "▁")."""
        i = int(i)
        if not 0 <= i < self._vocab_size:
            raise TokenizerError(self.source, f"no piece for id {i}: vocabulary has {self._vocab_size} ids")
        return self._sp.id_to_piece(i)

    def pieces(self) -> list[str]:
        """Every id's piece, in id order: one call into SentencePiece (~0.1 s for 262 144 pieces, where
        asking for each id in turn takes ~0.3 s more of Python). Not kept: only the vocabulary's tables
        (vocabulary.py) read them, once."""
        return self._sp.id_to_piece(list(range(self._vocab_size)))

    def piece_to_id(self, piece: str) -> int | None:
        """Id of `piece`, or None if the vocabulary lacks it.

        SentencePiece answers unk_id for absent pieces; that is ambiguous with the real
        `<unk>` piece, hence the round-trip check.
        """
        i = self._sp.piece_to_id(piece)
        return i if self._sp.id_to_piece(i) == piece else None

    def _byte_table(self) -> list[bool]:
        if self._is_byte is None:
            # One call for every id (0.04 s for Gemma 3's 262 144), where asking id by id takes 0.1-0.15 s
            # of Python at the first request.
            self._is_byte = [bool(b) for b in self._sp.is_byte(list(range(self._vocab_size)))]
        return self._is_byte

    def _byte_value(self, i: int) -> int:
        # Byte pieces are spelled "<0xNN>" in every SentencePiece model.
        return int(self._sp.id_to_piece(i)[3:5], 16)


class IncrementalDecoder:
    """Turns a growing list of generated ids into text pieces for streaming.

    Each push decodes only a short window: the ids pushed since the last emission plus the
    ids of that emission as context, and returns the part of the window's text beyond the
    context's text. The window restarts only at a point where the text so far is final: no
    UTF-8 sequence of byte pieces is left open there, and the context holds visible text, so
    the tokenizer's decode-at-start rules (leading-space stripping) treat the context and
    the window alike. Hence the concatenation of everything returned equals
    `tokenizer.decode(all_ids)`.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._is_byte = tokenizer._byte_table()
        self._ids: list[int] = []
        self._prefix_start = 0  # window start: first id of the context
        self._read_start = 0  # first id not yet turned into emitted text
        self._prefix_text = ""  # decode(ids[prefix_start:read_start])
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._parts)

    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    def push(self, token_id: int) -> str:
        """Add one id; return the text it makes visible ("" while a UTF-8 sequence is open)."""
        token_id = int(token_id)
        if not 0 <= token_id < self._tok.vocab_size:
            raise TokenizerError(self._tok.source, f"cannot decode id {token_id}: vocabulary has {self._tok.vocab_size} ids")
        self._ids.append(token_id)
        if self._open_utf8_tail():
            return ""
        return self._emit()

    def flush(self) -> str:
        """Whatever is still held back; an unfinished UTF-8 sequence decodes to U+FFFD."""
        return self._emit() if self._read_start < len(self._ids) else ""

    def _emit(self) -> str:
        window_text = self._tok.decode(self._ids[self._prefix_start :])
        new = window_text[len(self._prefix_text) :]
        if not new:
            # Only invisible ids so far (control tokens, a stripped leading space): keep
            # waiting, so the next context still starts with visible text.
            return ""
        last_read, self._read_start = self._read_start, len(self._ids)
        recent_text = self._tok.decode(self._ids[last_read:])
        if recent_text or not self._tok._strips_leading_space:
            self._prefix_start, self._prefix_text = last_read, recent_text
        else:
            # Alone, the recent ids read as nothing (a lone "▁" stripped at the start), so
            # they cannot tell decode() that the text has begun: keep the older context too.
            self._prefix_text = window_text
        self._parts.append(new)
        return new

    def _open_utf8_tail(self) -> bool:
        """True if the ids end in byte pieces that may be the start of an unfinished UTF-8
        character. Errs towards True (E0 80 can never be completed, yet is held): holding
        back only delays text, while emitting early would print U+FFFD for a real character."""
        ids, is_byte = self._ids, self._is_byte
        if not is_byte[ids[-1]]:
            return False
        tail: list[int] = []
        for i in reversed(ids[max(self._read_start, len(ids) - 3) :]):
            if not is_byte[i]:
                break
            tail.append(self._tok._byte_value(i))
        tail.reverse()  # at most the last 3 bytes, oldest first
        for k, b in enumerate(tail):
            if 0xC2 <= b <= 0xF4:  # the lead bytes UTF-8 allows
                need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
                rest = tail[k + 1 :]
                if all(0x80 <= c < 0xC0 for c in rest) and 1 + len(rest) < need:
                    return True
        return False


# --------------------------------------------------------------------- helpers


def _check_id(source: str, name: str, i: int, n: int) -> int:
    if not 0 <= i < n:
        raise TokenizerError(source, f"{name} id {i} is outside the vocabulary (size {n})")
    return int(i)
