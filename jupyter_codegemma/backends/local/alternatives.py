"""Checked completions: the suggestion the model writes first is shown when it passes the check of
backends/candidates.py (no cost beyond the check); when it fails, the next best ones are tried.

Alternatives branch where the first suggestion went wrong (the token holding the failure's first
character: the indentation, a made-up name): the top few other tokens at that position, by the
model's own logits, each continued greedily. The prompt's keys and values are cached, so each branch
costs one new prompt token and its continuation. Then, if none passed, the same at its first word and
at its first token. The first alternative that passes is shown (one that is only a comment only when
no other does, unless the model's own was a comment too); when none does, nothing is (withheld).

The code after the cursor may read a name before anything binds it (`return max_depth` with no
`max_depth = ...` anywhere): a NameError waiting to happen, which the line at the cursor most likely
should prevent (candidates.names_to_bind). A suggestion that binds none of those names is then passed
over for one that does: the model's other likeliest first words, each continued, and then a line begun
with the assignment itself (`max_depth =` -> `max_depth = 0`; `import math` for a module of the
standard library), continued by the model. Only at a line's start: a line still to write. When none binds, the
suggestion it would have shown otherwise is shown. A model without FIM cannot see those names. As with
the ranking below, nothing streams before the choice there.

A model without FIM sees only the code before the cursor. With `rank_by_suffix`, when the code after
the cursor goes on (its next line of code), a first suggestion that passes is not shown at once: the
model's other likeliest suggestions are made the same way (branching at its first word) and every
one that passes is scored by the model on the text it would make, the suggestion and the next line
after it together (scoring.py); the likeliest is shown. The next line is what the model could not
see: `for idx2, elem2 in enumerate(numbers):` before a line using `idx2` follows better than
`if elem > threshold:`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from .. import candidates
from ..base import CancelToken, CompletionResult, SamplingParams, Shape
from .healing import Healing, decoder_of

BRANCHES = 4  # alternatives tried at one position
MAX_ALTERNATIVES = 8  # at most, per request
# What the suffix ranking scores: this much of the code before the cursor (from a line's start; the
# next line depends on what is near), so its cost does not grow with the notebook.
SCORED_PREFIX_CHARS = 2000


def checked(engine, first: Iterator[str], result: CompletionResult, prompt_ids: Sequence[int], prefix: str,
            suffix: str, new_shape: Callable[[], Shape], max_new_tokens: int, stops: Sequence[int],
            cancel: CancelToken | None, namespace: Collection[str] | None,
            allowed_names: Sequence[str], healed: Healing | None = None,
            rank_by_suffix: bool = False) -> Iterator[str]:
    """Stream the first suggestion (`first`, which fills `result`); once it has ended, check it and, if
    it fails, replace it with the first alternative that passes, or with nothing. `healed`: the prompt
    lost its last blanks (healing.py), so a suggestion's first token must write them again. While it
    streams, only the texts that pass are shown (candidates.passing); where another suggestion may be
    chosen over one that passes (ranking, names to bind: see the module), nothing before the choice."""

    def verdict(text: str) -> candidates.Verdict:
        return candidates.verdict_for(prefix, text, suffix, namespace, allowed_names)

    next_line = _next_code_line(suffix) if rank_by_suffix else ""
    # Names the code after the cursor reads before anything binds them: what the line at the cursor
    # most likely binds (candidates.names_to_bind). A model without FIM cannot see them.
    # Only for a cursor at a line's start (a line still to write): inside a line the names a
    # statement binds are mostly elsewhere, and random spans showed no gain for the cost.
    at_line_start = not prefix[prefix.rfind("\n") + 1:].strip()
    needed = candidates.names_to_bind(prefix, suffix, namespace) if at_line_start and suffix.strip() else ()

    def binds(text: str) -> bool:
        return not needed or candidates.binds(prefix, text, suffix, needed, namespace)

    # When another suggestion may be chosen over a first one that passes (ranked, or one that binds
    # what the code below needs), nothing is shown before the choice: the ghost text never changes
    # into a different one under the user's eyes.
    hold = bool(next_line or needed)
    if hold:
        for _ in first:
            pass
    else:
        yield from candidates.passing(first, verdict)
    if cancel is not None and cancel.is_set():
        return

    first_verdict = verdict(result.text)
    result.candidates = 1
    if first_verdict.ok and not next_line and binds(result.text):
        result.checked = "passed"
        if hold:
            yield result.text
        return
    started, decode = time.perf_counter(), decoder_of(engine.tokenizer, healed)
    ids = [i for i in result.ids if i not in stops]
    code = len(result.text) - len(result.text.lstrip())
    if first_verdict.ok and next_line:
        yield _ranked_by_suffix(engine, decode, result, ids, prompt_ids, prefix, next_line, verdict,
                                new_shape, max_new_tokens, stops, cancel, healed)
        result.total_ms += (time.perf_counter() - started) * 1e3
        return
    if first_verdict.ok:  # it passed but binds none of the names needed: another may, else it stays
        positions = [_token_at(decode, ids, code)]
    else:  # where it went wrong, then its first word (after the indentation), then its first token
        positions = list(dict.fromkeys([_token_at(decode, ids, first_verdict.offset), _token_at(decode, ids, code), 0]))
    tried, fallback, unbinding = 0, "", ""

    def shown(text: str, checked: str) -> str:
        result.candidates, result.checked, result.text = 1 + tried, checked, text
        result.total_ms += (time.perf_counter() - started) * 1e3
        return text

    for position in positions:
        if position > len(ids):
            continue
        first_mask = healed.mask if healed is not None and position == 0 else None
        for token in _branches(engine, list(prompt_ids) + ids[:position], ids[position:position + 1], first_mask):
            if tried == MAX_ALTERNATIVES or (cancel is not None and cancel.is_set()):
                break
            tried += 1
            text, new_tokens = _continue(engine, decode, prompt_ids, ids[:position] + [token], new_shape(),
                                         max_new_tokens, stops, cancel)
            result.stats.new_tokens += new_tokens
            if text.strip() and verdict(text).ok:
                if _only_comments(text) and not _only_comments(result.text):
                    fallback = fallback or text  # says nothing the code needs: shown only if no code passes
                    continue
                if not binds(text):
                    unbinding = unbinding or text  # shown only if nothing binds what the code after it needs
                    continue
                yield shown(text, "binds" if first_verdict.ok else "replaced")
                return
    # The line the code after the cursor needs, begun with the assignment itself: `total =` -> `total =
    # 0` (with the name alone the model went on to lengthen it: `vowels` -> `vowels_count = 0`), or
    # `import math` for a module of the standard library.
    indent = result.text[:code]
    for name in needed[:2] if healed is None and not (cancel is not None and cancel.is_set()) else ():
        tried += 1
        line = f"import {name}" if name in sys.stdlib_module_names else f"{name} ="
        forced = engine.tokenize(indent + line, add_bos=False)
        text, new_tokens = _continue(engine, decode, prompt_ids, forced, new_shape(), max_new_tokens, stops, cancel)
        result.stats.new_tokens += new_tokens
        if verdict(text).ok and binds(text):
            yield shown(text, "binds" if first_verdict.ok else "replaced")
            return
    if first_verdict.ok:
        yield shown(result.text, "passed")  # held back above: shown now
        return
    if unbinding:
        yield shown(unbinding, "replaced")
        return
    yield shown(fallback, "replaced" if fallback else "withheld")


def _next_code_line(suffix: str) -> str:
    """The code after the cursor up to the first later line that holds code, that line included (""
    when there is none): what the suffix ranking scores after each suggestion."""
    lines = suffix.split("\n")
    for i in range(1, len(lines)):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            return "\n".join(lines[:i + 1])
    return ""


def _ranked_by_suffix(engine, decode, result: CompletionResult, ids: list[int], prompt_ids: Sequence[int],
                      prefix: str, next_line: str, verdict, new_shape, max_new_tokens: int,
                      stops: Sequence[int], cancel: CancelToken | None, healed: Healing | None) -> str:
    """The likeliest of the first suggestion (which passed) and its passing alternatives from its first
    word, each scored with the code up to the next line of code after it. Sets `result`'s text,
    `candidates` and `checked` ("passed": the model's own won; "ranked": another did)."""
    code = len(result.text) - len(result.text.lstrip())
    position = _token_at(decode, ids, code)
    options = [result.text]
    first_mask = healed.mask if healed is not None and position == 0 else None
    tried = 0
    for token in _branches(engine, list(prompt_ids) + ids[:position], ids[position:position + 1], first_mask):
        if cancel is not None and cancel.is_set():
            break
        tried += 1
        text, new_tokens = _continue(engine, decode, prompt_ids, ids[:position] + [token], new_shape(),
                                     max_new_tokens, stops, cancel)
        result.stats.new_tokens += new_tokens
        if text.strip() and text not in options and not _only_comments(text) and verdict(text).ok:
            options.append(text)
    result.candidates = 1 + tried
    best = 0
    if len(options) > 1 and not (cancel is not None and cancel.is_set()):
        start = prefix.rfind("\n", 0, max(len(prefix) - SCORED_PREFIX_CHARS, 0)) + 1
        # Up to the next line of code; the line that follows the suggestion starts after its own end.
        scores = engine.score([prefix[start:] + option + next_line for option in options])
        best = max(range(len(options)), key=lambda i: scores[i])
    result.checked = "passed" if best == 0 else "ranked"
    result.text = options[best]
    return result.text


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.split("\n"))


def _token_at(decode: Callable[[Sequence[int]], str], ids: Sequence[int], offset: int) -> int:
    """The index of the token whose text holds character `offset` of the decoded `ids`."""
    for j in range(len(ids)):
        if len(decode(ids[:j + 1])) > offset:
            return j
    return max(len(ids) - 1, 0)


def _branches(engine, context: list[int], exclude: Sequence[int], mask: np.ndarray | None = None) -> list[int]:
    """The BRANCHES likeliest next tokens after `context` (the model's logits), without `exclude`, among
    those `mask` allows (all when None)."""
    sampler = engine._sampler
    with sampler._lock:  # the sampler's own lock: one request at a time uses its cache
        _, logits = sampler.prefill(context)
        logits = np.asarray(logits[0], np.float32)
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    top = np.argpartition(-logits, BRANCHES + len(exclude))[:BRANCHES + len(exclude)]
    ranked = [int(i) for i in top[np.argsort(-logits[top])] if int(i) not in exclude and int(i) not in engine.stop_ids]
    return ranked[:BRANCHES]


def _continue(engine, decode: Callable[[Sequence[int]], str], prompt_ids: Sequence[int], forced: list[int],
              shape: Shape, max_new_tokens: int, stops: Sequence[int], cancel: CancelToken | None) -> tuple[str, int]:
    """The suggestion that begins with the ids `forced` and goes on greedily; and how many ids that took."""
    text, complete = shape(decode(forced), False)
    ids = list(forced)
    left = max_new_tokens - len(forced)
    if not complete and left > 0 and forced[-1] not in stops:
        tokens = engine._sampler.generate(list(prompt_ids) + forced, max_new_tokens=left, sampling=SamplingParams(),
                                          stop_ids=stops, cancel=cancel)
        try:
            for token in tokens:
                if token in stops:
                    break
                ids.append(token)
                text, complete = shape(decode(ids), False)
                if complete:
                    break
        finally:
            tokens.close()  # the sampler keeps the cache it has filled for the next request
    text, _ = shape(decode(ids), True)
    return text, len(ids) - len(forced) + 1
