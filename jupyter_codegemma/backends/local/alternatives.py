"""Checked completions: the suggestion the model writes first is shown when it passes the check of
backends/candidates.py (no cost beyond the check); when it fails, the next best ones are tried.

Alternatives branch where the first suggestion went wrong (the token holding the failure's first
character: the indentation, a made-up name): the top few other tokens at that position, by the
model's own logits, each continued greedily. The prompt's keys and values are cached, so each branch
costs one new prompt token and its continuation. Then, if none passed, the same at its first word and
at its first token. The first alternative that passes is shown (one that is only a comment only when
no other does, unless the model's own was a comment too); when none does, nothing is (withheld).

A line still to write (the cursor at a line's start) wants code: a suggestion that is only a comment
(`# Write your code here`) is passed over, like one that fails, for the model's other first words, and
shown only when no code passes. Asked for one line (mode "line"), so is a line that cannot stand where
nothing follows it (`if n < 0:` as a function's last line, with no body to come in the suggestion), and
a line that repeats the next line of code (`return False` just above the function's last, `return
False`). Nothing of such a suggestion streams before the choice.

The code after the cursor may read a name before anything binds it (`return max_depth` with no
`max_depth = ...` anywhere): a NameError waiting to happen, which the line at the cursor most likely
should prevent (line_to_write.py; where the code parses only with a line there, a placeholder
stands in for it: the body of a `for` above, the header of the block below). A suggestion that binds
fewer of those names than it could is passed over for one that binds them all: the model's other
likeliest first words, each continued, and then a line begun with the binding itself (`max_depth =` ->
`max_depth = 0`; `import math` for a module of the standard library; where the line opens the block
below, `for i` -> `for i in range(len(l)):`, or `def xor(` for a name the code calls), continued by
the model. Only at a line's start: a line still to write. When none binds them all, the one that binds
most is shown, the suggestion shown otherwise first among equals. A model without FIM cannot see those
names. As with the ranking below, nothing streams before the choice there.

A model without FIM sees only the code before the cursor. With `rank_by_suffix`, when code follows the
cursor, the suggestion the rules above would show is not shown at once: it is weighed against the
model's other passing suggestions (those the search above wrote, and more, branching at the first
suggestion's first word and at its first token: another indentation, another statement), each scored by
the model on what it would make, the suggestion and the next SCORED_LINES lines of code after it
together; the likeliest is shown. Those lines are what the model could not see: `for idx2, elem2 in
enumerate(numbers):` before lines using `idx2` follows better than `if elem > threshold:`. Each is
scored from the prompt the sampler has cached (scoring.continuation_logprob): only the suggestion and
those lines run through the model.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from .. import candidates, line_to_write
from ..base import CancelToken, CompletionResult, SamplingParams, Shape
from ..line_to_write import ALL, SOME
from .healing import Healing, decoder_of
from .scoring import continuation_logprob

BRANCHES = 4  # alternatives tried at one position
MAX_ALTERNATIVES = 8  # at most, per request, in the search for one that passes
# What the ranking scores after each suggestion: the lines of code that follow the cursor, up to this many
# holding code and this many characters (whole lines), so its cost does not grow with the cell.
SCORED_LINES = 3
SCORED_CHARS = 600


def checked(engine, first: Iterator[str], result: CompletionResult, prompt_ids: Sequence[int], prefix: str,
            suffix: str, new_shape: Callable[[], Shape], max_new_tokens: int, stops: Sequence[int],
            cancel: CancelToken | None, namespace: Collection[str] | None,
            allowed_names: Sequence[str], healed: Healing | None = None,
            rank_by_suffix: bool = False) -> Iterator[str]:
    """Stream the first suggestion (`first`, which fills `result`); once it has ended, check it and, if
    it fails, replace it with the first alternative that passes, or with nothing. `healed`: the prompt
    lost its last blanks or begun word (healing.py), so a suggestion's first token must write them again. While it
    streams, only the texts that pass are shown (candidates.passing); where another suggestion may be
    chosen over one that passes (ranking, names to bind: see the module), nothing before the choice."""

    # A text is judged once per request: the streamed one again when it ends, the search's again when ranked.
    @functools.cache
    def verdict(text: str) -> candidates.Verdict:
        return candidates.verdict_for(prefix, text, suffix, namespace, allowed_names)

    following = _following_code(suffix) if rank_by_suffix else ""
    # Names the code after the cursor reads before anything binds them: what the line at the cursor
    # most likely binds (line_to_write.read). A model without FIM cannot see them.
    # Only for a cursor at a line's start (a line still to write): inside a line the names a
    # statement binds are mostly elsewhere, and random spans showed no gain for the cost.
    at_line_start = not prefix[prefix.rfind("\n") + 1:].strip()
    to_write = (line_to_write.read(prefix, suffix, namespace) if at_line_start and suffix.strip()
                else line_to_write.LineToWrite())
    needed = to_write.needed

    @functools.cache
    def binding(text: str) -> int:
        """How far `text` binds the names needed: ALL of them (or none is needed), SOME, or NONE."""
        return line_to_write.binding(prefix, text, suffix, needed, namespace)

    # A line still to write wants code: a comment alone there (`# Write your code here`, `# check if the
    # list is empty`) does nothing the code needs, so it is shown only when no code passes. Asked for
    # one line, a line that cannot stand (`if n < 0:` with nothing after it) likewise, and one that
    # repeats the next line of code (`return False` just above the function's last, `return False`).
    whole_line = at_line_start and result.mode == "line"
    next_line = _next_code_line(suffix) if whole_line else ""

    def wanted(text: str) -> bool:  # the check's own verdict says whether the line is left open
        return not at_line_start or not (_only_comments(text) or (whole_line and (
            verdict(text).unfinished or (next_line and text.strip() == next_line))))

    def shown(text: str) -> candidates.Verdict:
        return verdict(text) if wanted(text) else _NOT_WANTED

    # When another suggestion may be chosen over a first one that passes (ranked, or one that binds
    # what the code below needs), nothing is shown before the choice: the ghost text never changes
    # into a different one under the user's eyes.
    hold = bool(following or needed)
    if hold:
        for _ in first:
            pass
    else:
        yield from candidates.passing(first, shown)
    if cancel is not None and cancel.is_set():
        return

    first_verdict = verdict(result.text)
    result.candidates = 1
    if first_verdict.ok and not following and binding(result.text) == ALL and wanted(result.text):
        result.checked = "passed"
        if hold:
            yield result.text
        return
    started = time.perf_counter()
    search = _Search(engine, result, prompt_ids, healed, new_shape, max_new_tokens, stops, cancel)
    forced = line_to_write.lines_that_bind(needed, line_to_write.block_to_open(to_write, suffix, result.text),
                                           result.text, suffix) if needed else []
    text, label = _choice(search, result.text, first_verdict, verdict, binding, wanted, forced, healed)
    if following and text and not search.cancelled():
        text, label = _ranked(engine, search, text, label, following, verdict, binding, prompt_ids, healed)
    result.candidates, result.checked, result.text = 1 + search.tried, label, text
    result.total_ms += (time.perf_counter() - started) * 1e3
    yield text


class _Search:
    """The model's other suggestions for one request: branches at a position of the first suggestion's
    ids, each continued greedily (the prompt's keys and values are cached, so each costs one new prompt
    token and its continuation), and lines begun with forced ids. Counts them, and keeps each text."""

    def __init__(self, engine, result: CompletionResult, prompt_ids: Sequence[int], healed: Healing | None,
                 new_shape: Callable[[], Shape], max_new_tokens: int, stops: Sequence[int],
                 cancel: CancelToken | None):
        self.engine, self.result, self.prompt_ids, self.healed = engine, result, list(prompt_ids), healed
        self.new_shape, self.max_new_tokens, self.stops, self.cancel = new_shape, max_new_tokens, stops, cancel
        self.decode = decoder_of(engine.tokenizer, healed)
        self.ids = [i for i in result.ids if i not in stops]  # the first suggestion's
        self.texts = [result.text]  # every suggestion written, the first one's first
        self.tried = 0
        self._branched: set[int] = set()

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def token_at(self, offset: int) -> int:
        """The index of the first suggestion's token that holds its character `offset`."""
        return _token_at(self.decode, self.ids, offset)

    def branches(self, positions: Sequence[int], most: int) -> Iterator[str]:
        """At each position not branched at before: the BRANCHES likeliest other tokens there, each
        continued; `most` suggestions in all."""
        made = 0
        for position in positions:
            if position > len(self.ids) or position in self._branched:
                continue
            self._branched.add(position)
            first_mask = self.healed.mask if self.healed is not None and position == 0 else None
            for token in _branches(self.engine, self.prompt_ids + self.ids[:position],
                                   self.ids[position:position + 1], first_mask):
                if made == most or self.cancelled():
                    return
                made += 1
                yield self.forced(self.ids[:position] + [token])

    def forced(self, ids: list[int]) -> str:
        """The suggestion that begins with `ids` and goes on greedily."""
        self.tried += 1
        text, new_tokens = _continue(self.engine, self.decode, self.prompt_ids, ids, self.new_shape(),
                                     self.max_new_tokens, self.stops, self.cancel)
        self.result.stats.new_tokens += new_tokens
        self.texts.append(text)
        return text


def _choice(search: _Search, first: str, first_verdict: candidates.Verdict, verdict, binding, wanted,
            forced: Sequence[str], healed: Healing | None) -> tuple[str, str]:
    """What is shown without ranking, and how it was chosen ("passed", "binds", "replaced", "withheld"):
    the first suggestion if it passes and binds all the names needed; else the first alternative that
    does, branching where the first went wrong (the token holding the failure's first character), then
    at its first word, then at its first token; then a line begun with a needed name's binding. Failing
    that, the code that passes and binds most of them, the first suggestion before the others; then a
    comment (or text otherwise not wanted)."""
    if first_verdict.ok and binding(first) == ALL and wanted(first):
        return first, "passed"
    code = len(first) - len(first.lstrip())
    if first_verdict.ok:  # it passed but binds too little, or is not wanted: another may, else it stays
        positions = [search.token_at(code)]
    else:
        positions = list(dict.fromkeys([search.token_at(first_verdict.offset), search.token_at(code), 0]))
    found = "binds" if first_verdict.ok and wanted(first) else "replaced"
    fallback = ""
    passed = [first] if first_verdict.ok and wanted(first) else []
    for text in search.branches(positions, MAX_ALTERNATIVES):
        if text.strip() and verdict(text).ok:
            if not wanted(text) or (_only_comments(text) and not _only_comments(first)):
                fallback = fallback or text  # says nothing the code needs: shown only if no code passes
                continue
            if binding(text) == ALL:
                return text, found
            passed.append(text)  # shown only if nothing binds more
    # The line the code after the cursor needs, begun with the assignment itself: `total =` -> `total =
    # 0` (with the name alone the model went on to lengthen it: `vowels` -> `vowels_count = 0`), or
    # `import math` for a module of the standard library. Where the line opens the block the code after
    # it is indented as, the header that binds: `for i` (-> `for i in range(len(l)):`), or `def xor(` for
    # a name the code calls (line_to_write.lines_that_bind).
    for line in forced if healed is None and not search.cancelled() else ():
        text = search.forced(search.engine.tokenize(line, add_bos=False))
        if verdict(text).ok and binding(text) == ALL:
            return text, found
        if verdict(text).ok and binding(text) == SOME:
            passed.append(text)
    if passed:
        best = max(passed, key=binding)  # the first of the best: the first suggestion's where it is one
        return best, "passed" if best == first else found
    if first_verdict.ok:
        return first, "passed"
    return fallback, "replaced" if fallback else "withheld"


def _next_code_line(suffix: str) -> str:
    """The first line after the cursor's that holds code, stripped ("" when none does)."""
    return next((line.strip() for line in suffix.split("\n")[1:] if line.strip() and not line.lstrip().startswith("#")), "")


def _following_code(suffix: str) -> str:
    """The code after the cursor that the ranking scores: its whole lines up to the SCORED_LINES-th later
    line that holds code, within SCORED_CHARS ("" when no later line holds code)."""
    lines = suffix.split("\n")
    taken, code = [lines[0]], 0
    for line in lines[1:]:
        if len("\n".join(taken + [line])) > SCORED_CHARS:
            break
        taken.append(line)
        if line.strip() and not line.lstrip().startswith("#"):
            code += 1
            if code == SCORED_LINES:
                break
    return "\n".join(taken) if code else ""


def _ranked(engine, search: _Search, choice: str, label: str, following: str, verdict, binding,
            prompt_ids: Sequence[int], healed: Healing | None) -> tuple[str, str]:
    """The likeliest, followed by `following`, of `choice` (what would be shown, with its `label`) and the
    other suggestions that pass like it: the check, code rather than only comments, and what the code
    after the cursor needs bound when `choice` binds it. More are written first: branches at the first
    suggestion's first word and its first token. "ranked" when another than `choice` is shown."""
    first = search.texts[0]
    code = len(first) - len(first.lstrip())
    for _ in search.branches([search.token_at(code), 0], 2 * BRANCHES):
        pass
    comments, bound = _only_comments(choice), binding(choice)
    options = [choice] + [text for text in dict.fromkeys(search.texts) if text != choice and text.strip()
                          and _only_comments(text) == comments and verdict(text).ok and binding(text) >= bound]
    if len(options) == 1 or search.cancelled():
        return choice, label
    sampler, context = engine._sampler, list(prompt_ids)
    healed_text = healed.text if healed is not None else ""
    scored = [context + engine.tokenize(healed_text + option + following, add_bos=False) for option in options]
    if max(len(ids) for ids in scored) > sampler.cache_len:
        return choice, label  # the context is full: nothing to rank in
    scores = []
    with sampler.locked():  # one request at a time uses the sampler's cache
        for ids in scored:
            if search.cancelled():
                return choice, label
            scores.append(continuation_logprob(sampler, ids, len(context)))
    best = max(range(len(options)), key=lambda i: scores[i])
    return (choice, label) if best == 0 else (options[best], "ranked")


# While a suggestion streams, one that is not wanted is not shown: another may replace it.
_NOT_WANTED = candidates.Verdict(False, "a comment alone, or a line that cannot stand, where a line of code is wanted")


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
    with sampler.locked():  # the sampler's own lock: one request at a time uses its cache
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
