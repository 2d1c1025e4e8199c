"""`%codegemma explain | fix | chat | debug` and `%%codegemma --explain | --chat`: run on the engine worker.

Gathering the context (the last failure, a cell) happens here on the kernel's main thread; cutting it
to the engine's context and generating happen on the engine worker through `stream` (magics' `_stream`,
which redraws the output and handles interrupts). The prompts and limits live in conversation.py.
"""

from __future__ import annotations

import argparse
import dataclasses

from . import fixes, limits
from . import prompts as cv
from ...backends.base import GenerationResult, SamplingParams, chat_tokens, shaped_stream, token_counter
from ...backends.repetition import stop_runaway
from .. import prompts as prompting
from ..safe_markdown import diff_block, untrusted_markdown
from ..worker import PROMPT_KINDS

_MARGIN = 8  # tokens kept free besides the answer's


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        from IPython.core.error import UsageError

        raise UsageError(f"{self.prog}: {message}")  # IPython shows it as one line, no traceback


def _parser(prog: str) -> _Parser:
    parser = _Parser(prog=prog, add_help=False)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    return parser


@dataclasses.dataclass
class _Answer:
    text: str  # the answer (Markdown) or the code (fix)
    prompt_tokens: int
    context_text: str
    summary: str
    instruction: bool
    model: str
    result: object


class Conversation:
    """The conversation commands of one kernel: its chat history and the last failure it saw."""

    def __init__(self, shell, settings, service, stream):
        self.shell, self.settings, self.service, self.stream = shell, settings, service, stream
        self.history = cv.ChatHistory()
        self.recorder = cv.FailureRecorder()
        shell.events.register("post_run_cell", self.recorder)

    def close(self) -> None:
        try:
            self.shell.events.unregister("post_run_cell", self.recorder)
        except ValueError:
            pass

    # --- the commands ---------------------------------------------------------------------------

    def explain(self, words: list[str]) -> None:
        """%codegemma explain [--cell N]: the last exception, or the code of In[N]."""
        parser = _parser("%codegemma explain")
        parser.add_argument("--cell", type=int, default=None)
        args = parser.parse_args(words)
        if args.cell is not None:
            source = cv.cell_source(self.shell, args.cell)
            if source is None or not source.strip():
                print(f"codegemma: there is no cell In[{args.cell}] in this kernel's history")
                return
            self.explain_code(source, f"In[{args.cell}]", args.max_new_tokens)
            return
        failure = cv.last_failure(self.shell, self.recorder)
        if failure is None:
            print(cv.NO_FAILURE)
            return
        files = self._cell_files()
        contexts = limits.contexts_at_scales(lambda budget: cv.failure_context(failure, files, budget))
        self._answer(contexts, "explain", True, args.max_new_tokens)

    def explain_code(self, source: str, label: str = "this cell", max_new_tokens: int | None = None) -> None:
        """%%codegemma --explain: what the code in the body does."""
        contexts = limits.contexts_at_scales(lambda budget: cv.code_context(source, label, budget))
        self._answer(contexts, "explain", False, max_new_tokens)

    def fix(self, words: list[str]) -> None:
        """%codegemma fix [--insert]: a corrected version of the cell that raised the last exception."""
        parser = _parser("%codegemma fix")
        parser.add_argument("--insert", action="store_true")
        args = parser.parse_args(words)
        failure = cv.last_failure(self.shell, self.recorder)
        if failure is None:
            print(cv.NO_FAILURE.replace("to explain", "to fix"))
            return
        if not failure.source.strip():
            print(f"codegemma: the source of the cell that raised {type(failure.error).__name__} is not in the "
                  f"history; run it again, then %codegemma fix")
            return
        files = self._cell_files()
        contexts = limits.contexts_at_scales(lambda budget: cv.failure_context(failure, files, budget))
        answer, handle = self._run(contexts, "fix", True, args.max_new_tokens)
        if answer is None:
            return
        proposal = answer.text
        why_not = fixes.judge_fix(failure.source, proposal, self._transform, error=failure.error,
                                  line=fixes.failing_line(failure, files))
        note = self._note(answer)
        section = limits.context_section(answer.context_text, answer.prompt_tokens, answer.summary)
        if why_not is not None:
            text = (f"{note}**No confident fix** for {failure.label} ({type(failure.error).__name__}): "
                    f"{untrusted_markdown(why_not)}. Nothing was inserted; read the traceback, or try "
                    f"`%codegemma explain`.")
            handle.update({"text/markdown": text + section, "text/plain": "codegemma: no confident fix: " + why_not},
                          raw=True)
            return
        change = fixes.diff(failure.source, proposal, failure.label)
        handle.update({"text/markdown": f"{note}Proposed fix for {failure.label}:\n\n{diff_block(change)}" + section,
                       "text/plain": change}, raw=True)
        if args.insert:
            self.shell.set_next_input(proposal.rstrip("\n") + "\n", replace=False)
            print("codegemma: the fixed cell is inserted below. It is not run: read it first.")
        else:
            print("codegemma: `%codegemma fix --insert` puts the fixed cell below (it is never run).")

    def chat(self, question: str, max_new_tokens: int | None = None) -> None:
        """%%codegemma --chat: one turn of the conversation kept in this kernel."""
        answer, handle = self._run([question], "chat", False, max_new_tokens)
        if answer is None:
            return
        self.history.add(question, answer.text)
        blocks = cv.code_blocks(answer.text)
        text = self._note(answer) + untrusted_markdown(answer.text)
        if blocks:
            text += "\n\n" + "; ".join(f"`%codegemma chat insert {i}` puts code block {i} in a new cell"
                                       for i in range(1, len(blocks) + 1)[:3])
        text += limits.context_section(answer.context_text, answer.prompt_tokens, answer.summary)
        handle.update({"text/markdown": text, "text/plain": answer.text}, raw=True,
                      metadata={"jupyter_codegemma": {"code_blocks": blocks}})

    def chat_command(self, words: list[str]) -> None:
        """%codegemma chat reset | insert [N] | history."""
        command = words[0] if words else "history"
        if command == "reset":
            n = self.history.reset()
            print(f"codegemma: chat history cleared ({n} exchanges)")
        elif command == "insert":
            answer = self.history.last_answer()
            blocks = cv.code_blocks(answer) if answer else []
            try:
                n = int(words[1]) if len(words) > 1 else 1
            except ValueError:
                print(f"codegemma: expected a block number, got {words[1]!r}")
                return
            if not 1 <= n <= len(blocks):
                print(f"codegemma: the last answer has {len(blocks)} code blocks; no block {n}")
                return
            self.shell.set_next_input(blocks[n - 1] + "\n", replace=False)
            print(f"codegemma: code block {n} is inserted below. It is not run: read it first.")
        elif command == "history":
            if not self.history.turns:
                print("codegemma: the chat is empty; ask with a %%codegemma --chat cell")
            for turn in self.history.turns:
                print(f"--- {turn.role}\n{turn.text}")
        else:
            print(f"codegemma: expected `chat reset`, `chat insert [N]` or `chat history`, got {command!r}")

    def debug(self, words: list[str]) -> None:
        """%codegemma debug last-prompt [magic|conversation|completion] [--ids]: the last prompt of each
        kind of request (%%codegemma cells, explain/fix/chat, the editor's completions), as the model saw it."""
        kinds = [w for w in words[1:] if w != "--ids"]
        if not words or words[0] != "last-prompt" or any(k not in PROMPT_KINDS for k in kinds):
            print(f"codegemma: expected `%codegemma debug last-prompt [{'|'.join(PROMPT_KINDS)}] [--ids]`")
            return
        engine, prompts = self.service.engine, self.service.last_prompts
        shown = [k for k in (kinds or PROMPT_KINDS) if k in prompts]
        if engine is None or not shown:
            what = " or ".join(kinds) if kinds else "any"
            print(f"codegemma: no {what} prompt has run in this kernel yet")
            return
        for kind in shown:
            ids, text = prompts[kind]
            if "--ids" in words:
                print(f"--- the last {kind} prompt's ids ---")
                print(ids if ids else "(sent to the server as text: no ids on this side)")
            elif ids:
                print(f"--- the last {kind} prompt: {len(ids)} tokens ---")
                print(limits.render_prompt(engine.tokenizer, ids))
            else:  # a server backend sends text; the server tokenizes it
                print(f"--- the last {kind} prompt sent to the server: {len(text)} characters ---")
                print(text)
            if kind == "completion":
                _print_kernel_facts(self.service.last_facts, self.service.settings.kernel_context)

    # --- running on the engine ----------------------------------------------------------------------

    def _answer(self, contexts, kind: str, failed: bool, max_new_tokens: int | None) -> None:
        answer, handle = self._run(contexts, kind, failed, max_new_tokens)
        if answer is None:
            return
        text = self._note(answer) + (untrusted_markdown(answer.text) or "*(the model wrote nothing)*")
        handle.update({"text/markdown": text + limits.context_section(answer.context_text, answer.prompt_tokens,
                                                                  answer.summary),
                       "text/plain": answer.text}, raw=True)

    def _run(self, candidates, kind: str, failed: bool, max_new_tokens: int | None):
        """(answer, display handle) after streaming, or (None, None) when the stream raised (reported by magics)."""
        # Explanations get their own, smaller budget: a good one is short, and a long one from a small
        # model is mostly repetition.
        max_new = max_new_tokens or (self.settings.explain_max_new_tokens if kind == "explain"
                                     else self.settings.max_new_tokens)
        sampling = SamplingParams(temperature=self.settings.temperature, seed=self.settings.seed,
                                  repetition_penalty=self.settings.penalty_for(kind))

        def run(engine, job, out):
            model = engine.info()["model"]
            instruction = engine.instruction
            limit = engine.context_len - max_new - _MARGIN
            build, count, context_text, summary = self._builders(token_counter(engine), kind, failed, instruction,
                                                                 limit)
            prompt, tokens, index = limits.fit_prompt(candidates, build, count, limit)
            note = self._note_for(instruction, model)
            result = GenerationResult(prompt_ids=[], ids=[], text="")

            def start(stop):
                if instruction:  # the turns: the backend applies the chat template (a server, its own)
                    return engine.chat(prompt, system=cv.SYSTEM, max_new_tokens=max_new, sampling=sampling,
                                       cancel=stop)
                return engine.generate(prompt, max_new_tokens=max_new, sampling=sampling, cancel=stop, truncate=True)

            @stop_runaway
            def shape(text, final):
                return self._shape(text, kind, instruction)

            for shaped in shaped_stream(start, shape, result, job.cancel):
                shown = shaped or "…"
                if kind == "fix":
                    out.put(("text", {"text/plain": shown}))
                else:
                    out.put(("text", {"text/markdown": note + untrusted_markdown(shown), "text/plain": shown}))
            answer = _Answer(result.text, tokens, context_text(candidates[index]), summary(candidates[index]),
                             instruction, model, result)
            return answer, result

        answer, summary, handle = self.stream(run, kind="conversation")
        print(summary)
        return answer, handle

    def _builders(self, count_text, kind: str, failed: bool, instruction: bool, limit: int):
        """(build, count_tokens, context_text, summary) for this kind of request and model. An instruction
        model's prompt is its chat turns (engine.chat applies the template), a base model's is text;
        `count_text` counts a text's tokens (base.token_counter: a server without a tokenize route estimates)."""
        from ...backends.chat import Turn

        if instruction:
            def count(turns):
                return chat_tokens(count_text, turns, cv.SYSTEM)
        else:
            def count(prompt):
                return count_text(prompt) + 1  # and <bos>
        if kind == "chat":
            def build(question):
                def fits(turns):
                    return count(to_prompt(turns)) <= limit

                def to_prompt(turns):
                    return list(turns) if instruction else cv.base_chat_prompt(turns)

                return to_prompt(self.history.prompt_turns(question, fits))

            def summary(question):
                kept = len(self.history.turns) - self.history.dropped
                return (f"{kept // 2} earlier exchanges" + (f" ({self.history.dropped // 2} older ones left out "
                                                             f"to fit the context)" if self.history.dropped else "")
                        + " and the question")

            def context_text(question):
                turns = self.history.turns[self.history.dropped:] + [Turn("user", question)]
                return cv.base_chat_prompt(turns)

            return build, count, context_text, summary
        if instruction:
            def ask(ctx):
                return cv.explain_request(ctx, failed) if kind == "explain" else cv.fix_request(ctx)

            def build(ctx):
                return [Turn("user", ask(ctx))]
        else:
            def build(ctx):
                return cv.base_explain_prompt(ctx, failed) if kind == "explain" else cv.base_fix_prompt(ctx)

        return build, count, lambda ctx: ctx.as_text(), lambda ctx: ctx.summary()

    @staticmethod
    def _shape(text: str, kind: str, instruction: bool) -> tuple[str, bool]:
        """(what to show, whether a base model's answer is complete)."""
        if kind == "fix":
            if instruction:
                return prompting.extract_code(text), False
            return prompting.trim_base_output(text), "```" in text
        if instruction:
            return text.strip(), False
        return cv.trim_base_answer(text, kind)

    @staticmethod
    def _note_for(instruction: bool, model: str) -> str:
        return "" if instruction else cv.BASE_MODEL_NOTE.format(model=untrusted_markdown(model)) + "\n\n"

    def _note(self, answer: _Answer) -> str:
        return self._note_for(answer.instruction, answer.model)

    def _cell_files(self) -> dict:
        return dict(getattr(getattr(self.shell, "compile", None), "_filename_map", {}) or {})

    def _transform(self, code: str) -> str:
        manager = getattr(self.shell, "input_transformer_manager", None)
        return manager.transform_cell(code) if manager is not None else code


def _print_kernel_facts(facts, enabled: bool) -> None:
    """What the live kernel added to the last completion: its facts (in the prompt above) and the names
    the completion was kept to."""
    if not enabled:
        print("--- kernel facts: off (%codegemma set kernel_context on) ---")
        return
    if facts is None:
        return
    print(f"--- kernel facts: {facts.count}, read in {facts.elapsed_ms:.1f} ms ---")
    for line in facts.lines:
        print(line)
    allowed = facts.continuations()
    if allowed:
        shown = ", ".join(repr(facts.typed + rest) for rest in allowed[:40])
        print(f"--- the completion must start with one of {len(allowed)} names: {shown}"
              f"{', ...' if len(allowed) > 40 else ''} ---")
    else:
        print("--- no constraint: the valid names at the cursor are not known ---")
