"""`%%codegemma` (a request in plain words -> code) and `%codegemma` (status, load, settings).

Thin: parse the options, queue the work on the service's engine worker, show what comes back. The
generated code is shown and inserted as a new cell; it is never executed.
"""

from __future__ import annotations

import queue
import shlex
import time

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..backends.base import GenerationResult, SamplingParams, shaped_stream
from ..backends.chat import Turn
from ..backends.repetition import stop_runaway
from . import prompts as prompting
from .policy import PolicyError, parse_policy_words
from .safe_markdown import code_block
from .conversation.commands import Conversation
from .worker import Job, Service
from .settings import CodeGemma, SettingError, set_from_text

_REFRESH_S = 0.1
# What `%codegemma enable|disable` switches: the editor's completions, exercise hints, and generation
# (%%codegemma cells, explain, fix, chat). `%codegemma disable` alone is exam mode: all of them off.
SWITCHES = ("completions", "hints", "generation")
GENERATION_OFF = ("codegemma: %%codegemma, explain, fix and chat are switched off in this kernel (exam mode; "
                  "%codegemma enable generation switches them on)")  # how often the streamed output area is redrawn


class _Cancelled(Exception):
    pass


class _Failed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@magics_class
class CodeGemmaMagics(Magics):
    def __init__(self, shell, settings: CodeGemma, service: Service):
        super().__init__(shell)
        self.settings = settings
        self.service = service
        self.conversation = Conversation(shell, settings, service, self._stream)

    # --- %%codegemma ----------------------------------------------------------------------------

    @magic_arguments()
    @argument("--max-new-tokens", type=int, default=None, metavar="N",
              help="the most tokens to write (default: CodeGemma.max_new_tokens)")
    @argument("--temperature", type=float, default=None, metavar="T",
              help="0 is greedy (default: CodeGemma.temperature)")
    @argument("--model", default=None, metavar="PATH", help="load this model first (and keep it)")
    @argument("--context", type=int, default=None, metavar="N",
              help="show the model the N previous code cells (default: CodeGemma.context_cells)")
    @argument("--fill", action="store_true",
              help="the cell is code with one <FILL> marker: fill it in (fill-in-the-middle)")
    @argument("--no-insert", action="store_true", help="only show the code; do not insert a cell")
    @argument("--replace", action="store_true", help="replace this cell with the code")
    @argument("--explain", action="store_true", help="explain the code in the cell (Markdown; nothing inserted)")
    @argument("--chat", action="store_true",
              help="the cell is a chat message; the conversation is kept (%%codegemma chat reset clears it)")
    @cell_magic
    def codegemma(self, line: str, cell: str):
        """Turn a request in plain words into code: streamed here, then inserted as a new cell below.

            %%codegemma --context 2
            plot the column means of df as a bar chart

        With --fill the cell is code with one <FILL> marker, and the model fills it in. The code is
        never run: read it, then run the new cell. With --explain the model explains the code in the
        cell; with --chat the cell is a message in a conversation kept in this kernel.
        """
        args = parse_argstring(self.codegemma, line)
        if args.model:
            self.settings.model = args.model
        if not cell.strip():
            print("codegemma: the cell is empty: write a request under %%codegemma (see %codegemma help)")
            return
        if self._refused("%%codegemma" + (" --chat" if args.chat else " --explain" if args.explain else "")):
            return
        if args.explain or args.chat:
            talk = self.conversation.chat if args.chat else self.conversation.explain_code
            self._talk(talk, cell, max_new_tokens=args.max_new_tokens)
            return
        max_new_tokens = args.max_new_tokens or self.settings.max_new_tokens
        temperature = self.settings.temperature if args.temperature is None else args.temperature
        if max_new_tokens < 1 or temperature < 0:
            print("codegemma: --max-new-tokens takes a whole number of at least 1 and --temperature a number of "
                  f"at least 0; got {max_new_tokens} and {temperature}")
            return
        n_context = self.settings.context_cells if args.context is None else max(args.context, 0)
        if args.fill:
            try:
                prefix, suffix = prompting.split_fill(cell)
            except ValueError as e:
                print(f"codegemma: {e}")
                return
            run = self._fill_job(prefix, suffix, max_new_tokens)
        else:
            history = list(getattr(self.shell.history_manager, "input_hist_raw", []))
            context = prompting.previous_code_cells(history[:-1], n_context, current=None) if n_context else []
            run = self._generate_job(cell, context, max_new_tokens, temperature)
        try:
            code, summary, handle = self._stream(run)
        except _Cancelled:
            print("codegemma: cancelled (the kernel was interrupted); the model is ready for the next request")
            return
        except _Failed as e:
            print(f"codegemma: {e}")
            return
        handle.update({"text/markdown": code_block(code, "python"), "text/plain": code}, raw=True)
        insert = not args.no_insert and bool(code.strip())
        where = "replaces this cell" if args.replace else "is in a new cell below"
        print(summary + (f" The code {where}, not run: read it first." if insert else ""))
        if insert:
            self.shell.set_next_input(code, replace=args.replace)

    def _generate_job(self, request: str, context: list[str], max_new_tokens: int, temperature: float):
        sampling = SamplingParams(temperature=temperature, seed=self.settings.seed,
                                  repetition_penalty=self.settings.penalty_for("generate"))

        def run(engine, job, out):
            instruction = engine.instruction
            if instruction:  # one user turn; the backend applies the chat template (a server, its own)
                turns = [Turn("user", prompting.chat_request(request, context))]
                shape = stop_runaway(prompting.instruction_code_shape, functions=True)
            else:
                prompt = prompting.base_prompt(request, context)
                shape = stop_runaway(prompting.base_code_shape, functions=True)
            result = GenerationResult(prompt_ids=[], ids=[], text="")

            def start(stop):
                if instruction:
                    return engine.chat(turns, max_new_tokens=max_new_tokens, sampling=sampling, cancel=stop)
                return engine.generate(prompt, max_new_tokens=max_new_tokens, sampling=sampling, cancel=stop,
                                       truncate=True)

            for code in shaped_stream(start, shape, result, job.cancel):
                out.put(("text", code))
            return result.text, result

        return run

    def _fill_job(self, prefix: str, suffix: str, max_new_tokens: int):
        def run(engine, job, out):
            # A gap inside a line is filled to the end of that line; a gap on lines of its own, as a block.
            inside_line = bool(prefix.rsplit("\n", 1)[-1].strip() or suffix.split("\n", 1)[0].strip())
            completion = engine.complete(prefix, suffix, mode="line" if inside_line else "block",
                                         max_new_tokens=max_new_tokens,
                                         cancel=job.cancel)
            for text in completion:
                out.put(("text", prefix + text + suffix))
            return prefix + completion.result.text + suffix, completion.result

        return run

    def _stream(self, run, kind: str = "magic"):
        """Run on the engine worker, redrawing the output as text arrives; (code, summary, display handle)."""
        out: queue.Queue = queue.Queue()

        def work(engine):
            out.put(("result", run(engine, job, out)))

        job = Job(work, on_cancelled=lambda: out.put(("cancelled", None)),
                  on_error=lambda code, message: out.put(("error", (code, message))),
                  progress=lambda message: out.put(("progress", message)), kind=kind)
        handle = display({"text/plain": "codegemma: waiting for the model..."}, raw=True, display_id=True)
        self.service.submit(job)
        shown, redrawn = None, 0.0
        try:
            while True:
                try:
                    kind, value = out.get(timeout=_REFRESH_S)
                except queue.Empty:
                    if job.finished.is_set() and out.empty():
                        raise _Failed("internal", "the engine worker stopped without an answer") from None
                    continue
                if kind == "progress":
                    handle.update({"text/plain": f"codegemma: {value}..."}, raw=True)
                elif kind == "text":  # the text so far, or a bundle of it ({"text/markdown": ...})
                    if value != shown and time.monotonic() - redrawn >= _REFRESH_S:
                        shown = value
                        handle.update(shown if isinstance(shown, dict) else {"text/plain": shown}, raw=True)
                        redrawn = time.monotonic()
                elif kind == "result":
                    code, result = value
                    return code, _summary(result), handle
                elif kind == "cancelled":
                    raise _Cancelled()
                else:  # the caller prints the one line; a "waiting for the model..." above it would be stale
                    if shown is None:
                        handle.update({"text/plain": ""}, raw=True)
                    raise _Failed(*value)
        except KeyboardInterrupt:
            job.cancel.set()
            job.drop_if_queued()
            job.finished.wait()  # one decode step: the engine is free for the next request
            text = shown.get("text/plain", "") if isinstance(shown, dict) else (shown or "")
            handle.update({"text/plain": text + "\n[cancelled]"}, raw=True)
            raise _Cancelled() from None

    # --- %codegemma -----------------------------------------------------------------------------

    @line_magic("codegemma")
    def codegemma_line(self, line: str):
        """%codegemma status | load [PATH] | set KEY=VALUE | enable | disable | policy | explain | fix | chat | help

        status           the model, its state and device, and the settings
        load [PATH]      load a model file now (no PATH: the default model)
        use URL [--model NAME] | use local
                         use a shared OpenAI-compatible server (vLLM, llama.cpp, Ollama) instead of a
                         model in this kernel; the API key comes from $CODEGEMMA_API_KEY
                         (CodeGemma.api_key_env). `use local` goes back to the model in this kernel
        set KEY=VALUE    change a setting, e.g. `set temperature=0.2` or `set kernel_context off`
                         (same as %config CodeGemma.KEY)
        enable|disable   switch inline completions, exercise hints and generation (%%codegemma, explain,
                         fix, chat) on or off; `disable` alone is exam mode (`disable hints` for one)
        policy [NAME=on|off ...] | policy clear
                         show or set this notebook's AI policy (stored in its metadata by the
                         labextension): completions, generation, model_fixes, exam=on|off and
                         max_hint_level=0..3, e.g. `policy completions=off generation=off max_hint_level=1`
        explain [--cell N]   explain the last exception (traceback, cell, values), or the code of In[N]
        fix [--insert]   propose a fixed version of the cell that raised the last exception, as a diff;
                         --insert puts it in a new cell below (never run)
        chat reset | insert [N] | history
                         clear the %%codegemma --chat conversation; put the N-th code block of the
                         last answer in a new cell; show the conversation
        debug last-prompt [magic|conversation|completion] [--ids]
                         the last prompt of each kind of request (as text, or its token ids)
        help             this text, and the settings with their current values
        """
        words = shlex.split(line)
        command, rest = (words[0], words[1:]) if words else ("status", [])
        handler = {"status": self._status, "load": self._load, "set": self._set, "enable": self._enable,
                   "disable": self._disable, "help": self._help, "use": self._use, "policy": self._policy}.get(command)
        talk = {"explain": self.conversation.explain, "fix": self.conversation.fix,
                "chat": self.conversation.chat_command, "debug": self.conversation.debug}.get(command)
        if talk is not None:
            if command != "debug" and not (command == "chat" and rest[:1] in (["reset"], ["history"])) \
                    and self._refused(f"%codegemma {command}"):
                return
            self._talk(talk, rest)
            return
        if handler is None:
            print(f"codegemma: unknown subcommand {command!r}; try %codegemma help")
            return
        handler(rest)

    def _refused(self, what: str) -> bool:
        """Whether generation is switched off (by the notebook's policy, or in this kernel); says so in one line."""
        allowed = self.service.allowed()
        if not allowed.generation:
            print(f"codegemma: {what} is switched off by this notebook's policy." if "generation" in allowed.by_policy
                  else GENERATION_OFF)
        return not allowed.generation

    def _policy(self, rest):
        """`policy`: show it; `policy NAME=VALUE ...`: change it (the frontend stores it); `policy clear`."""
        try:
            if rest:
                self.service.policy.set(parse_policy_words(rest, self.service.policy.policy), announce=True)
        except PolicyError as e:
            print(f"codegemma: {e}")
            return
        print(f"codegemma: this notebook's policy: {self.service.policy.describe()}")

    def _talk(self, action, *args, **kwargs):
        """Run a conversation command (conversation/commands.py), reporting what stops it in one line."""
        try:
            action(*args, **kwargs)
        except _Cancelled:
            print("codegemma: cancelled (the kernel was interrupted); the model is ready for the next request")
        except _Failed as e:
            print(f"codegemma: {e}")

    def _status(self, rest):
        status = self.service.status()
        if self.service.engine is None and status["state"] == "loading":
            status["state"] = "not loaded (loads on first use)"
        for key in ("model", "state", "device", "fim", "completions_enabled", "hints_enabled", "message"):
            if key in status and status[key] != "":
                print(f"{key:<20} {status[key]}")
        print(f"{'policy':<20} {self.service.policy.describe()}")

    def _load(self, rest):
        """`load [PATH]`: a model in this kernel (the default one without PATH), loaded now."""
        handle = self._switch_backend(model=rest[0] if rest else "", server_url="")
        if handle is None:
            return
        info = self.service.engine.info()
        name = self.settings.model_label(info["model"])
        handle.update({"text/plain": f"codegemma: loaded {name} ({info['parameters'] / 1e6:.0f}M parameters, "
                                     f"{info['dtype']} on {info['device']}, FIM: {'yes' if info['fim'] else 'no'})"},
                      raw=True)

    def _use(self, rest):
        """`use URL [--model NAME]`: connect to a server now (a clear line if it is down); `use local`."""
        if len(rest) == 1 and rest[0] == "local":
            self.settings.server_url = ""
            self.service.forget_engine()
            print(f"codegemma: using the model in this kernel ({self.settings.model_label()}); it loads on first use")
            return
        words, model = list(rest), ""
        if "--model" in words:
            at = words.index("--model")
            model = words[at + 1] if at + 1 < len(words) else ""
            del words[at:at + 2]
        if len(words) != 1 or words[0].startswith("-") or ("--model" in rest and not model):
            print("codegemma: expected `%codegemma use URL [--model NAME]` or `%codegemma use local`")
            return
        # connect now: a server that is down is said here, not at the first completion
        handle = self._switch_backend(server_model=model, server_url=words[0])
        if handle is not None:
            handle.update({"text/plain": _remote_line(self.service.engine.info())}, raw=True)

    def _switch_backend(self, **settings):
        """Change the backend settings and load what they name now; the display handle, or None after one
        line saying why not. When it fails the settings go back to what they were (the worker keeps a
        loaded model; with none loaded, later requests must not retry the bad path or server)."""
        before = {name: getattr(self.settings, name) for name in settings}
        for name, value in settings.items():
            setattr(self.settings, name, value)
        try:
            _, _, handle = self._stream(lambda engine, job, out: ("", None), kind="")
            return handle
        except (_Failed, _Cancelled) as e:
            if self.service.engine is None:
                for name, value in before.items():
                    setattr(self.settings, name, value)
            print(f"codegemma: {e or 'cancelled'}")
            return None

    def _set(self, rest):
        if not rest:
            print("codegemma: expected `%codegemma set KEY=VALUE`, e.g. `%codegemma set temperature=0.2`")
            return
        if len(rest) == 2 and "=" not in rest[0] + rest[1]:  # `set kernel_context off`
            rest = [f"{rest[0]}={rest[1]}"]
        for item in rest:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"codegemma: expected KEY=VALUE, got {item!r} (e.g. `%codegemma set temperature=0.2`)")
                return
            try:
                shown = set_from_text(self.settings, key.strip(), value.strip())
            except SettingError as e:
                print(f"codegemma: {e}")
                return
            print(f"codegemma: {key.strip()} = {shown!r}")

    def _switch(self, rest, on: bool):
        """enable|disable [completions|hints|generation]: all three (exam mode when off), or the ones named."""
        which = rest or list(SWITCHES)
        for name in which:
            if name not in SWITCHES:
                print(f"codegemma: expected {', '.join(map(repr, SWITCHES))}, got {name!r}")
                return
        for name in which:
            setattr(self.settings, f"{name}_enabled", on)
        what = ", ".join(which[:-1]) + f" and {which[-1]}" if len(which) > 1 else which[0]
        print(f"codegemma: {what} {'enabled' if on else 'disabled'}")

    def _enable(self, rest):
        self._switch(rest, True)

    def _disable(self, rest):
        self._switch(rest, False)

    def _help(self, rest):
        print(self.codegemma_line.__doc__)
        print(self.codegemma.__doc__)
        print("Settings (%codegemma set KEY=VALUE or %config CodeGemma.KEY = VALUE):")
        for name, trait in sorted(self.settings.traits(config=True).items()):
            print(f"  {name:<20} {getattr(self.settings, name)!r:<12} {trait.help}")


def _remote_line(info: dict) -> str:
    return (f"codegemma: using {info['model']} on the server at {info['server']} (context {info['context']} "
            f"tokens, FIM: {'yes' if info['fim'] else 'no'}); this kernel loads no model")


def _summary(result) -> str:
    """One line on how the answer was written: its length, why it ended (in words), its speed."""
    if result is None:
        return ""
    stats = result.stats
    decode_s = max((result.total_ms - result.ttft_ms) / 1e3, 1e-9)
    rate = (stats.new_tokens - 1) / decode_s if stats.new_tokens > 1 else 0.0
    ended = {"length": f"; cut off at the {stats.new_tokens}-token limit (--max-new-tokens N writes more)",
             "cancelled": "; cancelled", "context": "; stopped at the end of the model's context"}
    return (f"codegemma: {stats.new_tokens} tokens{ended.get(stats.finish_reason, '')}; first after "
            f"{result.ttft_ms:.0f} ms, then {rate:.1f} tokens/s.")
