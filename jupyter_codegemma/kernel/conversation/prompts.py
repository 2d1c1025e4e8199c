"""Conversation about code in the notebook: `%codegemma explain`, `%codegemma fix`, `%%codegemma --chat`.

The pure part (no threads, no display): what the kernel knows about the last failure (`Failure`,
`last_failure`), cut to size and cleaned of secrets by `limits`, the
prompts for instruction models (Gemma's chat template) and base models (a completion-style document),
the chat history, and the checks a proposed fix must pass. `magics.py` runs these on the engine worker
and shows the results.

Everything sent to the model is bounded twice (see limits.py).
"""

from __future__ import annotations

import builtins
import dataclasses
import keyword
import linecache
import re
import sys
import traceback
import types
from typing import TYPE_CHECKING, Callable, Sequence

from .limits import REDACTED, Budget, excerpt, is_secret_name, redact, truncate

if TYPE_CHECKING:  # the runtime package imports JAX: keep importing this module cheap
    from ...backends.chat import Turn

BASE_MODEL_NOTE = ("*{model} is a base model: it continues text rather than following instructions, so "
                   "treat this answer with care. An instruction-tuned model (CodeGemma 7B-IT: "
                   "`%codegemma load PATH`) gives much better explanations, fixes and chat answers.*")
NO_FAILURE = ("codegemma: no exception to explain: no cell has raised one in this kernel yet. Run the "
              "failing cell first, or explain a cell's code with `%codegemma explain --cell N`.")

# --- what the kernel knows about the last failure -------------------------------------------------


@dataclasses.dataclass
class Failure:
    """An exception raised by a cell, and that cell."""

    error: BaseException
    source: str  # the raw cell, as typed
    number: int | None  # its execution count, In[number]

    @property
    def label(self) -> str:
        return f"In[{self.number}]" if self.number is not None else "the failing cell"

    @property
    def is_syntax_error(self) -> bool:
        return isinstance(self.error, SyntaxError)


class FailureRecorder:
    """A `post_run_cell` hook: remembers the last cell that raised, with its raw source."""

    def __init__(self):
        self.last: Failure | None = None

    def __call__(self, result) -> None:
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if error is None or isinstance(error, KeyboardInterrupt):
            return
        info = getattr(result, "info", None)
        self.last = Failure(error, getattr(info, "raw_cell", "") or "", getattr(result, "execution_count", None))


def last_failure(shell, recorder: FailureRecorder | None = None) -> Failure | None:
    """The last exception a cell raised: the recorder's, else `sys.last_value` and its cell from history."""
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if recorder is not None and recorder.last is not None and (error is None or error is recorder.last.error):
        return recorder.last
    if error is None:
        return recorder.last if recorder is not None else None
    filename_map = getattr(getattr(shell, "compile", None), "_filename_map", {})
    number = None
    filenames = [getattr(error, "filename", None)] if isinstance(error, SyntaxError) else []
    filenames += [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    for name in filenames:
        if name in filename_map:
            number = filename_map[name]  # the last (innermost) cell frame wins
    source = cell_source(shell, number) if number is not None else ""
    return Failure(error, source or "", number)


def cell_source(shell, number: int) -> str | None:
    """The raw source of In[number], or None."""
    history = list(getattr(shell.history_manager, "input_hist_raw", []))
    if 0 < number < len(history):
        return history[number]
    return None


def _user_frames(tb: types.TracebackType | None, cell_files: dict) -> list[tuple[types.FrameType, int]]:
    """(frame, line) of the traceback, IPython's own frames dropped."""
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    ipython = ("IPython" + "/core/", "ipykernel/")
    return [(f, n) for f, n in frames if f.f_code.co_filename in cell_files
            or not any(part in f.f_code.co_filename.replace("\\", "/") for part in ipython)]


def format_traceback(error: BaseException, cell_files: dict, limit: int) -> str:
    """The traceback as Python prints it, cells named In[N], IPython's frames dropped, cut to `limit`."""
    if isinstance(error, SyntaxError):
        text = "".join(traceback.format_exception_only(type(error), error))
    else:
        frames = _user_frames(error.__traceback__, cell_files)
        summary = traceback.StackSummary.extract(((f, n) for f, n in frames), capture_locals=False)
        for entry in summary:
            if entry.filename in cell_files:
                entry.filename = f"In[{cell_files[entry.filename]}]"
        text = ("Traceback (most recent call last):\n" + "".join(summary.format())
                + "".join(traceback.format_exception_only(type(error), error)))
    # The end (the innermost frames and the message) matters most.
    return redact(truncate(text.rstrip("\n"), limit, keep="tail"))


def _short_repr(value, limit: int) -> str:
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ must not break the explanation
        text = f"<{type(value).__name__} (repr failed: {type(e).__name__})>"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        text = f"{type(value).__name__} shape={getattr(value, 'shape')} dtype={getattr(value, 'dtype')}: {text}"
    elif isinstance(value, (list, tuple, dict, set, str, bytes)):
        text = f"{type(value).__name__} of length {len(value)}: {text}" if len(text) > limit else text
    return truncate(text, limit, keep="head")


def names_in(line: str) -> list[str]:
    """Identifiers used on a line of code (attributes and keywords left out), in order, once each."""
    names = []
    for match in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)", line):
        name = match.group(1)
        if not keyword.iskeyword(name) and name not in names:
            names.append(name)
    return names


def involved_values(error: BaseException, cell_files: dict, budget: Budget) -> list[str]:
    """`name = repr` for the names on the failing lines (innermost frame first), secrets redacted."""
    lines: list[str] = []
    seen: set[str] = set()
    frames = _user_frames(error.__traceback__, cell_files)[::-1]
    for frame, lineno in frames[:3]:
        code = linecache.getline(frame.f_code.co_filename, lineno)
        scope = "" if frame.f_code.co_name == "<module>" else f"  (in {frame.f_code.co_name})"
        for name in names_in(code):
            if name in seen or len(seen) >= budget.names:
                continue
            seen.add(name)
            if name in frame.f_locals:
                value = frame.f_locals[name]
            elif name in frame.f_globals:
                value = frame.f_globals[name]
            elif hasattr(builtins, name):
                continue
            elif re.search(rf"(?<![\w.]){name}\s*=(?!=)", code):
                continue  # being assigned by the failing line: not defined yet, as expected
            else:
                lines.append(f"{name}: not defined{scope}")
                continue
            if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type,
                                  types.MethodType)):
                continue
            shown = REDACTED if is_secret_name(name) else redact(_short_repr(value, budget.value))
            lines.append(f"{name} = {shown}{scope}")
    text = "\n".join(lines)
    return truncate(text, budget.values, keep="head").splitlines() if text else []


def syntax_location(source: str, error: SyntaxError | None = None) -> str:
    """'line L, column C: category: message' from the exercise checker (or the SyntaxError itself)."""
    try:
        from ...exercises.checker import check_code
    except ImportError:
        check_code = None
    if check_code is not None:
        try:
            found = check_code(source)
        except Exception:
            found = None
        if found is not None and not found.ok:
            where = f"line {found.line}, column {found.col}"
            why = f" ({truncate(found.explanation, 240, 'head')})" if found.explanation else ""
            return f"{where}: {found.category}: {found.message}{why}"
    if error is not None:
        return f"line {error.lineno}, column {error.offset}: {type(error).__name__}: {error.msg}"
    return ""


@dataclasses.dataclass
class Context:
    """The parts sent to the model, already cut and redacted, and what to show of them."""

    source: str = ""
    label: str = ""
    traceback: str = ""
    values: list[str] = dataclasses.field(default_factory=list)
    syntax: str = ""  # the checker's location and category of a syntax error

    def summary(self) -> str:
        parts = []
        if self.source:
            parts.append(f"{self.label or 'the cell'} ({len(self.source.splitlines())} lines)")
        if self.traceback:
            parts.append(f"the traceback ({len(self.traceback.splitlines())} lines)")
        if self.syntax:
            parts.append("the syntax error's location")
        if self.values:
            parts.append(f"{len(self.values)} values")
        return ", ".join(parts) or "nothing but the request"

    def as_text(self) -> str:
        out = []
        if self.source:
            out.append(f"Cell {self.label}:\n```python\n{self.source}\n```".replace("Cell :", "Cell:"))
        if self.syntax:
            out.append(f"Syntax error at {self.syntax}")
        if self.traceback:
            out.append(f"Traceback:\n```text\n{self.traceback}\n```")
        if self.values:
            out.append("Values of the names involved:\n```text\n" + "\n".join(self.values) + "\n```")
        return "\n\n".join(out)


def failure_context(failure: Failure, cell_files: dict, budget: Budget) -> Context:
    error = failure.error
    line = None
    if failure.is_syntax_error:
        line = error.lineno
    else:
        cell_lines = [n for f, n in _user_frames(error.__traceback__, cell_files) if f.f_code.co_filename in cell_files]
        line = cell_lines[-1] if cell_lines else None
    return Context(
        source=redact(excerpt(failure.source.rstrip("\n"), budget.source, line)),
        label=failure.label,
        traceback=format_traceback(error, cell_files, budget.traceback),
        values=[] if failure.is_syntax_error else involved_values(error, cell_files, budget),
        syntax=syntax_location(failure.source, error) if failure.is_syntax_error else "",
    )


def code_context(source: str, label: str, budget: Budget) -> Context:
    return Context(source=redact(truncate(source.rstrip("\n"), budget.source)), label=label)


# --- prompts ----------------------------------------------------------------------------------------

SYSTEM = ("You are a coding assistant inside a Jupyter notebook (Python). Answer briefly, in Markdown; "
          "put code in ```python code blocks.")


def explain_request(context: Context, failed: bool) -> str:
    if failed:
        ask = ("This notebook cell raised an exception. Explain in plain words why it failed, pointing at "
               "the line, and how to fix it. Be brief.")
    else:
        ask = "Explain what this notebook cell does, step by step, in plain words. Be brief."
    return f"{ask}\n\n{context.as_text()}"


def fix_request(context: Context) -> str:
    return ("This notebook cell raised an exception. Fix it: reply with the whole corrected cell in one "
            "```python code block, then one sentence saying what you changed.\n\n" + context.as_text())


def base_explain_prompt(context: Context, failed: bool) -> str:
    if failed:
        head = ("Below is a Python notebook cell that raised an exception, its traceback and the values of "
                "the names involved, followed by an explanation of the error in plain words and how to fix it.")
        tail = "Explanation of the error and how to fix it:\n"
    else:
        head = "Below is a Python notebook cell, followed by an explanation of what it does, in plain words."
        tail = "Explanation of what the code does:\n"
    return f"{head}\n\n{context.as_text()}\n\n{tail}"


def base_fix_prompt(context: Context) -> str:
    return ("Below is a Python notebook cell that raised an exception, then the same cell corrected so that "
            f"it runs without the error.\n\n{context.as_text()}\n\nThe corrected cell:\n```python\n")


def base_chat_prompt(turns: Sequence[Turn]) -> str:
    lines = ["A conversation between a Python programmer (User) and a helpful coding assistant (Assistant), "
             "who answers briefly and puts code in ```python blocks.", ""]
    for turn in turns:  # a blank line after each exchange, as the open turn at the end has none
        lines.append(f"{'User' if turn.role == 'user' else 'Assistant'}: {turn.text.strip()}")
        if turn.role == "model":
            lines.append("")
    return "\n".join(lines) + "\nAssistant:"


BASE_STOPS = {"explain": ("\n\n\n", "\nBelow is a ", "\nCell In["), "chat": ("\nUser:", "\n\n\n\n")}


def trim_base_answer(text: str, kind: str) -> tuple[str, bool]:
    """(the answer, whether it is complete): a base model goes on past its answer; cut at the stop marks."""
    cut = len(text)
    for mark in BASE_STOPS[kind]:
        i = text.find(mark)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip(), cut < len(text)


# --- chat history -----------------------------------------------------------------------------------


class ChatHistory:
    """The turns of `%%codegemma --chat` in this kernel (one kernel = one notebook)."""

    def __init__(self):
        self.turns: list[Turn] = []
        self.dropped = 0  # turns left out of the last prompt to fit the context

    def add(self, question: str, answer: str, budget: Budget = Budget()) -> None:
        from ...backends.chat import Turn

        self.turns += [Turn("user", truncate(question, budget.history)),
                       Turn("model", truncate(answer, budget.history))]

    def reset(self) -> int:
        n, self.turns = len(self.turns), []
        return n // 2

    def last_answer(self) -> str | None:
        return self.turns[-1].text if self.turns and self.turns[-1].role == "model" else None

    def prompt_turns(self, question: str, fits: Callable[[list[Turn]], bool]) -> list[Turn]:
        """The newest history that `fits` with the new question; the oldest exchanges go first."""
        from ...backends.chat import Turn

        turns = self.turns + [Turn("user", question)]
        dropped = 0
        while len(turns) > 1 and not fits(turns):
            turns = turns[2:]  # one (user, model) exchange
            dropped += 2
        self.dropped = dropped
        return turns


_FENCES = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of an answer, in order (an unclosed last fence counts)."""
    blocks = [m.group(2).rstrip("\n") for m in _FENCES.finditer(markdown)]
    rest = _FENCES.sub("", markdown)
    if rest.count("```") == 1:
        blocks.append(rest.split("```", 1)[1].split("\n", 1)[-1].rstrip("\n"))
    return [b for b in blocks if b.strip()]
