"""The Gemma chat template (CodeGemma 7B-IT, Gemma instruction models), built from token ids.

    <bos><start_of_turn>user\\n{text}<end_of_turn>\\n<start_of_turn>model\\n{text}<end_of_turn>\\n ...
    <start_of_turn>model\\n                                   <- the model writes its turn here

Gemma has no system role: system instructions go at the start of the first user turn. The
control tokens are inserted as ids, so text that contains "<start_of_turn>" stays text.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

from .errors import PromptError

Role = Literal["user", "model"]
# The pieces of Gemma's templates that a detokenizer drops and a prompt shown to a person writes out.
CONTROL_PIECES = ("<start_of_turn>", "<end_of_turn>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                  "<|file_separator|>")


@dataclasses.dataclass(frozen=True)
class Turn:
    role: Role
    text: str


def has_chat_template(tokenizer) -> bool:
    return all(tokenizer.piece_to_id(p) is not None for p in ("<start_of_turn>", "<end_of_turn>"))


def chat_prompt(tokenizer, turns: Sequence[Turn], *, system: str | None = None) -> list[int]:
    """Prompt ids asking the model for the next model turn after `turns` (the last one a user's)."""
    if not has_chat_template(tokenizer):
        raise PromptError("this tokenizer has no <start_of_turn>/<end_of_turn> pieces: not a chat model")
    if not turns or turns[-1].role != "user":
        raise PromptError("a chat prompt must end with a user turn")
    start, end = tokenizer.piece_to_id("<start_of_turn>"), tokenizer.piece_to_id("<end_of_turn>")
    encode = lambda text: tokenizer.encode(text, add_bos=False)  # noqa: E731
    ids = [tokenizer.bos_id]
    for i, turn in enumerate(turns):
        if turn.role not in ("user", "model"):
            raise PromptError(f"unknown chat role {turn.role!r}: Gemma knows 'user' and 'model'")
        text = f"{system}\n\n{turn.text}" if system and i == 0 and turn.role == "user" else turn.text
        ids += [start] + encode(f"{turn.role}\n{text}") + [end] + encode("\n")
    return ids + [start] + encode("model\n")


def decode_keeping_pieces(ids: Sequence[int], decode, pieces: dict[int, str]) -> str:
    """Ids -> text with the control tokens among them written out as their pieces (`pieces`: id ->
    piece): detokenizers drop control tokens, so the runs between them are decoded one by one."""
    out, run = [], []
    for i in ids:
        if i in pieces:
            if run:
                out.append(decode(run))
                run = []
            out.append(pieces[i])
        else:
            run.append(i)
    if run:
        out.append(decode(run))
    return "".join(out)
