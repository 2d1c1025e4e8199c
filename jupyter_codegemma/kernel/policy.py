"""The notebook's AI policy, and the one place that decides what is allowed in this kernel.

A teacher stores a policy in the notebook's metadata (`metadata.jupyter_codegemma.policy`), with the
"Set notebook AI policy" command or `%codegemma policy ...`; the labextension sends it to the kernel
when the comm opens and whenever the metadata changes. Its fields, all optional (a missing one allows):

    completions     bool   the editor's ghost text
    generation      bool   %%codegemma, explain, fix and chat
    max_hint_level  0..3   the highest rung of the exercise widget's hint ladder
    model_fixes     bool   level-3 hints: a fix by the model
    exam            bool   exam mode: completions, generation and model fixes off, hints capped at 1

The kernel's own switches (`%codegemma disable ...`, the CodeGemma traitlets) apply as well: what is
allowed is what both allow (`allowed`). The policy is a classroom convention, not a lock: a student can
delete the metadata. So the kernel remembers whether a policy it saw was later removed or loosened, and
the exercise results record it (`PolicyState.provenance`).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Mapping

MAX_HINT_LEVEL = 3  # the hint ladder's top: 1 where, 2 what kind and why, 3 the model's fix
EXAM_HINT_LEVEL = 1
_BOOL_FIELDS = ("completions", "generation", "model_fixes", "exam")
FIELDS = (*_BOOL_FIELDS[:2], "max_hint_level", *_BOOL_FIELDS[2:])

# What each capability is called in a refusal: "<what> is/are switched off by this notebook's policy".
_NAMES = {"completions": "completions are", "generation": "%%codegemma, explain, fix and chat are",
          "model_fixes": "model fixes are", "hints": "exercise hints are"}


class PolicyError(ValueError):
    """A policy that is not one: the message is the one line to show (or to send as `bad_request`)."""


@dataclasses.dataclass(frozen=True)
class NotebookPolicy:
    """A notebook's policy as written (exam mode is kept apart from what it implies, so it round-trips)."""

    completions: bool = True
    generation: bool = True
    max_hint_level: int = MAX_HINT_LEVEL
    model_fixes: bool = True
    exam: bool = False

    @property
    def effective(self) -> "NotebookPolicy":
        """What the policy allows, exam mode spelled out."""
        if not self.exam:
            return self
        return dataclasses.replace(self, completions=False, generation=False, model_fixes=False,
                                   max_hint_level=min(self.max_hint_level, EXAM_HINT_LEVEL))

    def to_json(self) -> dict:
        """The fields that restrict something (what the metadata holds; {} restricts nothing)."""
        default = NotebookPolicy()
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) != getattr(default, name)}

    def describe(self) -> str:
        """One line: "completions off, hints up to level 1" ("no restrictions" when there are none); the
        labextension's status bar words it the same way (`describePolicy` in kernel/policy.ts)."""
        p = self.effective
        words = [f"{name.replace('_', ' ')} off" for name in ("completions", "generation", "model_fixes")
                 if not getattr(p, name)]
        if p.max_hint_level < MAX_HINT_LEVEL:
            words.append("no hints" if p.max_hint_level == 0 else f"hints up to level {p.max_hint_level}")
        return ("exam mode: " if self.exam else "") + (", ".join(words) or "no restrictions")


def parse_policy(data: Any) -> NotebookPolicy | None:
    """A policy from JSON (the comm's `policy` field, the metadata): None for null; a PolicyError when a
    field has the wrong type or range. Unknown fields are ignored, as in every message."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise PolicyError(f'"policy" must be an object or null, got {_kind(data)}')
    values = {}
    for name in _BOOL_FIELDS:
        if name in data and data[name] is not None:
            if not isinstance(data[name], bool):
                raise PolicyError(f'policy: "{name}" must be true or false, got {_kind(data[name])}')
            values[name] = data[name]
    level = data.get("max_hint_level")
    if level is not None:
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= MAX_HINT_LEVEL:
            raise PolicyError(f'policy: "max_hint_level" must be a whole number in 0..{MAX_HINT_LEVEL}, '
                              f"got {level!r:.40}")
        values["max_hint_level"] = level
    return NotebookPolicy(**values)


def parse_policy_words(words: list[str], current: NotebookPolicy | None) -> NotebookPolicy | None:
    """`%codegemma policy completions=off generation=off max_hint_level=1 model_fixes=off exam=on`: the
    current policy with those fields changed; `clear` alone is no policy. PolicyError names a bad word."""
    if words == ["clear"]:
        return None
    values = dataclasses.asdict(current or NotebookPolicy())
    for word in words:
        name, sep, text = word.partition("=")
        if not sep or name not in FIELDS:
            raise PolicyError(f"expected NAME=VALUE with NAME one of {', '.join(FIELDS)}, got {word!r}")
        if name == "max_hint_level":
            if not (text.isdigit() and 0 <= int(text) <= MAX_HINT_LEVEL):
                raise PolicyError(f"max_hint_level takes 0, 1, 2 or 3, not {text!r}")
            values[name] = int(text)
        elif text.lower() in ("on", "true", "yes", "1"):
            values[name] = True
        elif text.lower() in ("off", "false", "no", "0"):
            values[name] = False
        else:
            raise PolicyError(f"{name} takes on or off, not {text!r}")
    return NotebookPolicy(**values)


def loosens(before: NotebookPolicy | None, after: NotebookPolicy | None) -> bool:
    """Whether `after` allows something `before` did not (no policy allows everything)."""
    if before is None:
        return False
    old, new = before.effective, (after or NotebookPolicy()).effective
    return (any(getattr(new, name) and not getattr(old, name) for name in ("completions", "generation",
                                                                            "model_fixes"))
            or new.max_hint_level > old.max_hint_level)


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What this kernel may do now: the kernel's own switches and the notebook's policy together, and
    for each thing refused, who refused it (so the one-line refusal names the right switch)."""

    completions: bool
    generation: bool
    model_fixes: bool
    max_hint_level: int
    by_policy: frozenset = frozenset()  # the names refused by the notebook's policy

    def refusal(self, name: str) -> str:
        """Why `name` ("completions", "generation", "model_fixes", "hints") is refused, in one line."""
        what = _NAMES[name]
        if name in self.by_policy:
            return f"{what} switched off by this notebook's policy"
        switch = {"model_fixes": "hints"}.get(name, name)
        return f"{what} switched off in this kernel (%codegemma enable {switch} switches them on)"


def allowed(settings, policy: NotebookPolicy | None) -> Allowed:
    """The one place that decides "is X allowed": `settings` is the CodeGemma configurable (None: no
    kernel switches, e.g. a widget made by hand), `policy` the notebook's (None: no policy)."""
    kernel = {name: bool(getattr(settings, f"{name}_enabled", True)) for name in ("completions", "generation")}
    hints = bool(getattr(settings, "hints_enabled", True))  # exam mode's old switch: no model hints
    p = (policy or NotebookPolicy()).effective
    by_policy = {name for name in ("completions", "generation", "model_fixes") if not getattr(p, name)}
    if p.max_hint_level == 0:
        by_policy.add("hints")
    return Allowed(completions=kernel["completions"] and p.completions,
                   generation=kernel["generation"] and p.generation,
                   model_fixes=hints and p.model_fixes, max_hint_level=p.max_hint_level,
                   by_policy=frozenset(by_policy))


class PolicyState:
    """The notebook policy in force in this kernel, and whether one seen earlier was removed or loosened.
    Set from comm handlers (shell or subshell threads) and magics (the main thread), read by the worker's
    callers and the exercise widgets: hence the lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._policy: NotebookPolicy | None = None
        self._removed = False
        self._listeners: list = []  # called with the policy's JSON when the kernel's user changes it

    def listen(self, listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def policy(self) -> NotebookPolicy | None:
        with self._lock:
            return self._policy

    @property
    def removed(self) -> bool:
        """A policy seen earlier in this kernel session was later removed or loosened."""
        with self._lock:
            return self._removed

    def allowed(self, settings) -> Allowed:
        """What may run now under the kernel's switches (`settings`) and this policy."""
        return allowed(settings, self.policy)

    def set(self, policy: NotebookPolicy | None, *, announce: bool = False) -> bool:
        """Put `policy` in force; True if it differs from the one before. `announce`: the kernel's user
        set it (`%codegemma policy`), so the listeners (the open comms) tell the frontends to store it."""
        with self._lock:
            changed = policy != self._policy
            self._removed = self._removed or loosens(self._policy, policy)
            self._policy = policy
            listeners = list(self._listeners) if announce else []
        for listener in listeners:
            listener(policy.to_json() if policy is not None else None)
        return changed

    def describe(self) -> str:
        """One line for `%codegemma policy` and `%codegemma status`."""
        with self._lock:
            policy, removed = self._policy, self._removed
        text = "none" if policy is None else policy.describe()
        return text + ("; a stricter policy was removed or loosened in this session (exercise results record it)"
                       if removed else "")

    def provenance(self) -> dict:
        """What each saved exercise result records: {"policy": {...} or None, "policy_removed": bool}."""
        with self._lock:
            return {"policy": self._policy.to_json() if self._policy is not None else None,
                    "policy_removed": self._removed}


def _kind(value: Any) -> str:
    from ..protocol import _kind as kind

    return kind(value)
