"""Fill-in-the-middle prompts at token-id level, and shaping a raw completion into a suggestion.

CodeGemma was trained on two FIM layouts (50/50), built here from ids so that no text the
user typed can be mistaken for a control token:

  PSM  <bos> [path\\n] <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>   -> middle
  SPM  <bos> [path\\n] <|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix   -> middle

(SPM is the suffix-prefix-middle variant of Bavarian et al., 2022, "Efficient Training of
Language Models to Fill in the Middle": the prefix sits right before the generated text.)
Other files of the project go first, each as `path\\n{content}<|file_separator|>`.

A model without FIM pieces (the default Gemma 3 270M) gets the prefix alone; the suffix is
then used to stop and to trim what the model writes that is already there.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal, Sequence

Layout = Literal["psm", "spm"]
Mode = Literal["line", "block", "auto"]
LAYOUTS = ("psm", "spm")
MODES = ("line", "block", "auto")

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR = (
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_separator|>")


@dataclasses.dataclass(frozen=True)
class FimTokens:
    prefix: int
    middle: int
    suffix: int
    file_separator: int

    @classmethod
    def of(cls, tokenizer) -> "FimTokens | None":
        """The FIM ids of a tokenizer, or None when it lacks any of them."""
        ids = [tokenizer.piece_to_id(p) for p in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR)]
        return None if None in ids else cls(*ids)

    @property
    def all(self) -> tuple[int, ...]:
        return (self.prefix, self.middle, self.suffix, self.file_separator)


@dataclasses.dataclass(frozen=True)
class ContextFile:
    """Another file of the project, shown to the model before the one being completed."""

    path: str
    content: str


def build_prompt(tokenizer, prefix: str, suffix: str = "", *, layout: Layout = "psm", path: str | None = None,
                 context_files: Sequence[ContextFile] = (), max_tokens: int | None = None) -> list[int]:
    """The prompt ids for completing between prefix and suffix.

    Without FIM pieces the prompt is <bos> + the prefix (context files and path are left out:
    a base model would only continue them as text). With `max_tokens`, what is farthest from
    the cursor goes first: context files, then the end of the suffix (kept to at most a
    quarter of the budget), then the start of the prefix.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    encode = lambda text: tokenizer.encode(text, add_bos=False)  # noqa: E731
    fim = FimTokens.of(tokenizer)
    prefix_ids = encode(prefix)
    if fim is None:
        if max_tokens is not None:
            prefix_ids = prefix_ids[max(len(prefix_ids) - (max_tokens - 1), 0):]
        return [tokenizer.bos_id] + prefix_ids
    suffix_ids = encode(suffix)
    head = [tokenizer.bos_id]
    files = [encode(f"{f.path}\n{f.content}") + [fim.file_separator] for f in context_files]
    path_ids = encode(f"{path}\n") if path else []
    if max_tokens is not None:
        fixed = len(head) + len(path_ids) + 3  # bos, path, three FIM pieces
        room = max_tokens - fixed
        if room < 1:
            raise ValueError(f"a budget of {max_tokens} tokens leaves no room for the code")
        while files and sum(map(len, files)) + len(prefix_ids) + len(suffix_ids) > room:
            files.pop(0)  # the file listed first is the least related
        room -= sum(map(len, files))
        suffix_ids = suffix_ids[:max(room // 4, room - len(prefix_ids))]
        prefix_ids = prefix_ids[max(len(prefix_ids) - (room - len(suffix_ids)), 0):]
    ids = head + [i for f in files for i in f] + path_ids
    if layout == "psm":
        ids += [fim.prefix] + prefix_ids + [fim.suffix] + suffix_ids + [fim.middle]
    else:
        ids += [fim.prefix, fim.suffix] + suffix_ids + [fim.middle] + prefix_ids
    return ids


# --- from raw model text to a suggestion --------------------------------------------------------


# The keywords that begin a compound statement: a line begun with one opens a block (`for op in o` ->
# `perations:` and its body).
_OPENS_BLOCK = re.compile(r"\s*(?:async\s+)?(?:for|while|if|elif|else|with|def|class|try|except|finally)\b")


def resolve_mode(mode: Mode, prefix: str, suffix: str) -> Literal["line", "block"]:
    """`auto`: a whole block where one starts (an empty line, a line ending in ':', or the header of a
    compound statement being written whose body is still to come), else the line."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    current_line = prefix.rsplit("\n", 1)[-1]
    rest_of_line = suffix.split("\n", 1)[0]
    if rest_of_line.strip():
        return "line"  # the cursor is inside a line: only that line can change
    if not current_line.strip() or current_line.rstrip().endswith((":", "{")):
        return "block"
    if _writes_header(current_line):
        if _indent(_next_line(suffix)) <= _indent(current_line):
            return "block"  # no body below it yet: the suggestion writes the header's end and the body
    return "line"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _next_line(suffix: str) -> str:
    """The first line after the cursor's that is not blank ("" when none is)."""
    return next((line for line in suffix.split("\n")[1:] if line.strip()), "")


_ENDS_HEADER = re.compile(r":\s*#[^'\"]*$")  # a ':' with a comment after it


def _writes_header(current_line: str) -> bool:
    """Whether the cursor is in the header of a compound statement, before its ':'."""
    return _OPENS_BLOCK.match(current_line) is not None and not current_line.rstrip().endswith((":", "{"))


def _block_end(lines: list[str], current_line: str, final: bool) -> int | None:
    """Index of the first line after the block the cursor is in, if it has been written yet.

    The block's lines are those indented at least as deep as its first line (deeper, when
    that line opens a block with ':'); the first line indented less ends it.
    At the top level (no indentation to go back to) a blank line ends the block.
    """
    first = current_line + lines[0]
    opens = first.rstrip().endswith(":") or _ENDS_HEADER.search(first) is not None
    if len(lines) > 1 and not opens and _writes_header(current_line):
        return 1  # a header finished on its own line (`if x: return y`) opens no block below it
    base = _indent(first) + (1 if opens else 0) if first.strip() else None
    for i in range(1, len(lines)):
        growing = i == len(lines) - 1 and not final
        if not lines[i].strip():
            # A blank line is one only once the next has begun; at the top level it ends the block.
            if not growing and base == 0 and any(line.strip() for line in lines[:i]):
                return i
            continue
        # Once a line has a visible character its indentation is settled, even mid-stream.
        if base is None:
            base = _indent(lines[i])
        elif _indent(lines[i]) < base:
            return i
    return None


@dataclasses.dataclass(frozen=True)
class Shaped:
    text: str
    complete: bool  # no more model output can change it: stop generating


def shape(raw: str, prefix: str, suffix: str, mode: Literal["line", "block"], final: bool = False) -> Shaped:
    """Cut a raw completion to the suggestion for `mode`, and trim what the suffix already has.

    Called on the text so far while it streams (`final=False`) and once at the end.
    """
    text, complete = raw, final
    if mode == "line":
        if "\n" in text:
            text, complete = text.split("\n", 1)[0], True
    else:
        lines = text.split("\n")
        end = _block_end(lines, prefix.rsplit("\n", 1)[-1], final)
        if end is not None:
            text, complete = "\n".join(lines[:end]).rstrip("\n"), True
        elif "\n\n\n" in text:  # two blank lines: the model has moved on
            text, complete = text.split("\n\n\n", 1)[0], True

    # The model may write what follows the cursor on its line (say the closing bracket the
    # editor already has): cut the suggestion where that text begins.
    rest_of_line = suffix.split("\n", 1)[0].strip()
    if rest_of_line:
        stripped = text.rstrip()
        if stripped.endswith(rest_of_line):
            text, complete = stripped[: -len(rest_of_line)], True
        elif rest_of_line in text.split("\n", 1)[0]:
            first = text.split("\n", 1)[0]
            text, complete = first[: first.index(rest_of_line)], True
    # For a model without FIM, the suffix's next line written out means it has run past the gap.
    next_line = _next_line(suffix).strip()
    if next_line and mode == "block":
        lines = text.split("\n")
        for i, line in enumerate(lines[1:], 1):
            if line.strip() == next_line:
                text, complete = "\n".join(lines[:i]).rstrip("\n"), True
                break
    return Shaped(text=text, complete=complete)
