"""The engine: load a model once, then turn prompts into streamed text.

Strings live here, not in the sampler: the engine tokenizes, picks stop ids, enforces the
context limit, detokenizes incrementally, and measures time to first token. It is safe to
call from several threads (the sampler serialises the device work).
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from .. import fim
from ..base import (COMPLETION_STOPS, GENERATION_STOPS, CancelToken, Completion, CompletionResult, Generation,
                    GenerationResult, SamplingParams, is_instruction_model, shaped_stream, stop_ids,
                    suggestion_shape)
from ..chat import chat_prompt, has_chat_template
from ..errors import PromptError, SettingsError
from . import alternatives, constraint, healing, native, prefetch, process, vocabulary
from .checkpoints import Checkpoint, WeightsCache
from .config import GemmaConfig, count_params
from .model_source import open_checkpoint
from .dtypes import resolve_cache_dtype, resolve_dtype, resolve_prefill_dtype
from .options import EngineOptions
from .tokenizer import IncrementalDecoder, Tokenizer
from .weights_on_device import HostArena, weights_to_device


class Engine:
    def __init__(self, checkpoint: Checkpoint, options: EngineOptions = EngineOptions(),
                 load_seconds: float = 0.0, arena: HostArena | None = None):
        import jax
        import jax.numpy as jnp

        from .model_spec import TransformerSpec
        from .sampler import Sampler

        self.options = options
        self.config: GemmaConfig = checkpoint.config
        self.tokenizer: Tokenizer = checkpoint.tokenizer
        self.source = checkpoint.source
        self.format = checkpoint.format
        from . import sharding

        platform = jax.devices()[0].platform
        self.num_devices = sharding.device_count_to_use(options.devices)
        self.mesh = sharding.make_mesh(self.num_devices) if self.num_devices > 1 else None
        native_int8 = False
        if platform == "cpu" and self.mesh is None and options.dtype in ("auto", "int8"):
            from . import native

            native_int8 = native.enable_native(WeightsCache(options.cache_dir).root / "kernels")
        self.dtype = resolve_dtype(options.dtype, platform, native_int8)
        if self.dtype == "int8" and self.mesh is not None:
            raise SettingsError("dtype int8 runs on one device; use dtype bfloat16 (or float32) with several devices")
        self.prefill_dtype = resolve_prefill_dtype(options.prefill_dtype, self.dtype, platform,
                                                   native_int8=native_int8)
        self.cache_dtype = resolve_cache_dtype(options.cache_dtype, self.dtype, self.prefill_dtype, platform,
                                               native_attention=native_int8)
        self.context_len = min(options.cache_len, self.config.max_context)
        if self.dtype == "int8":
            self._sampler = self._int8_sampler(checkpoint, platform, arena)
        else:
            dtype = jnp.float32 if self.dtype == "float32" else jnp.bfloat16
            if self.mesh is not None:
                # One array at a time: the host never holds a second copy of the whole model.
                shardings = sharding.param_shardings(checkpoint.params, self.mesh)
                params = jax.tree.map(lambda a, s: jax.device_put(np.asarray(a).astype(dtype), s),
                                      checkpoint.params, shardings)
                place_cache = sharding.cache_placer(self.config, self.mesh)
            else:
                params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), dtype=dtype), checkpoint.params)
                place_cache = None
            self._sampler = Sampler(TransformerSpec(self.config, dtype=dtype), params, self.context_len,
                                    cache_dtype=jnp.dtype(self.cache_dtype), place_cache=place_cache,
                                    speculative=options.speculative, programs=self._programs())
        self.device = str(jax.devices()[0].platform)
        self.load_seconds = load_seconds
        self.stop_ids = stop_ids(self.tokenizer, GENERATION_STOPS)
        # The ids of the last prompt the engine ran (generate or complete), for debugging prompt
        # building without mocking the engine: `%codegemma debug last-prompt` shows them.
        self.last_prompt_ids: list[int] = []
        self.last_prompt = ""  # prompts are ids here; a server backend keeps the text it sent
        self._warm_up: threading.Thread | None = None

    def _int8_sampler(self, checkpoint: Checkpoint, platform: str, arena: HostArena | None):
        """Decode with int8 weights; prefill with float weights of `prefill_dtype` (or the same
        int8 ones). The int8 tree is kept in the converted-weights cache next to the float one.
        On the CPU the int8 matrices go into `arena` if they fit (prefetch.HeadStart), else a new one."""
        import jax.numpy as jnp

        from . import native, quantize
        from .layer_stacks import layer_period, stack_layers
        from .model_spec import TransformerSpec
        from .sampler import Sampler

        store = WeightsCache(self.options.cache_dir) if checkpoint.sha256 else None
        if store is not None and store.has_variant(checkpoint.sha256, quantize.VARIANT):
            quantized = store.load_variant(checkpoint.sha256, quantize.VARIANT)
        else:
            quantized = quantize.quantize_int8(checkpoint.params)
            if store is not None:
                try:
                    store.store_variant(checkpoint.sha256, quantize.VARIANT, quantized)
                except OSError:
                    pass  # a read-only or full cache directory only costs speed next time
        # Activations stay float32 on CPU: the int8 kernel takes float32 and XLA's CPU
        # elementwise work is no faster in bfloat16.
        act = jnp.float32 if platform == "cpu" else jnp.bfloat16
        # The layer loop passes whole stacks of int8 matrices to the native kernels; the prefill and
        # decode models must share it (they share the cache's layout).
        period = 0
        if self.options.layer_loop and self.prefill_dtype == "int8" and native.native_enabled():
            period = layer_period(self.config)
            quantized = stack_layers(quantized, self.config, period)
        params = weights_to_device(quantized, act, huge_pages=platform == "cpu", arena=arena)
        model = TransformerSpec(self.config, dtype=act, layer_period=period)
        prefill_model = prefill_params = None
        if self.prefill_dtype != "int8":
            dense = jnp.float32 if self.prefill_dtype == "float32" else jnp.bfloat16
            # The embedding (the largest matrix) is shared: the prefill reads it only for its
            # last position's logits and to look up the prompt's rows.
            prefill_params = {**weights_to_device(quantize.dense_layers(checkpoint.params), dense),
                              "embedder": params["embedder"]}
            prefill_model = TransformerSpec(self.config, dtype=dense)
        return Sampler(model, params, self.context_len, cache_dtype=jnp.dtype(self.cache_dtype),
                       speculative=self.options.speculative, prefill_model=prefill_model, prefill_params=prefill_params, programs=self._programs())

    def _programs(self):
        """Saved steps (programs.py) beside the compilation cache, for one device; None otherwise."""
        if not self.options.compilation_cache or self.mesh is not None:
            return None
        from .programs import Programs

        return Programs(WeightsCache(self.options.cache_dir).root / "programs")

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, options: EngineOptions = EngineOptions(),
             progress: Callable[[str], None] | None = None, *, head_start: prefetch.HeadStart | None = None) -> "Engine":
        """Load a model file, or the default model (Gemma 3 270M) when `model` is None.

        `head_start`: what `prefetch.start` began before JAX was imported (`backends.local.load` does
        that); without one, the load begins it here, so that the weights' pages are faulted in and the
        tokenizer loaded while the rest of the checkpoint is opened."""
        started = time.perf_counter()
        process.configure_heap()
        head_start = head_start or prefetch.start(model, options)
        try:
            cache = WeightsCache(options.cache_dir)
            if options.compilation_cache:
                process.configure_compilation_cache(cache.root / "xla")
            checkpoint = open_checkpoint(model, cache, progress or (lambda message: None), head_start.tokenizer)
            engine = cls(checkpoint, options, load_seconds=0.0, arena=head_start.arena)
        finally:
            head_start.release()
        engine.load_seconds = time.perf_counter() - started
        if options.warm_up:
            engine.warm_up_in_background()
        return engine

    def warm_up_in_background(self) -> threading.Thread:
        """Start compiling the usual buckets' programs in a daemon thread (Sampler.precompile).
        While a request runs, the warm-up compiles only the programs it announced (its later prompt
        chunks and decoding: compile_queue.py), and the rest once it is over. Stopped,
        and waited for, when the process exits."""
        if self._warm_up is not None:
            return self._warm_up
        stop = threading.Event()

        def run():
            try:
                # What a first, short request needs, first; then a short real run: it reads every
                # weight once (the first request then does not fault in the memory-mapped arrays)
                # and compiles the small programs around the steps. The prompt repeats itself so
                # that drafts get verified too. Then the programs of long prompts.
                self._sampler.precompile(stop, self._sampler.short_prompt_programs(), yield_to_requests=True)
                # The vocabulary's tables that token healing and name constraints read, before a request does.
                vocabulary.tables(self.tokenizer)
                if not self.last_prompt_ids and not stop.is_set():
                    prompt = [self.tokenizer.bos_id] + [1000, 1001, 1002] * 7
                    for _ in self._sampler.generate(prompt, max_new_tokens=6):
                        pass
                self._sampler.precompile(stop, yield_to_requests=True)
            except Exception:  # noqa: BLE001 — an optimisation only: requests compile what they need
                pass

        self._warm_up = threading.Thread(target=run, name="codegemma-warm-up", daemon=True)
        self._warm_up.start()

        def finish(thread=self._warm_up):
            stop.set()
            thread.join()

        atexit.register(finish)
        return self._warm_up

    def warm_up(self, progress: Callable[[str], None] | None = None) -> float:
        """Compile (or fetch from the compilation cache) the programs a short request uses, so
        the first real request does not wait for them. Returns the seconds it took."""
        if progress is not None:
            progress("compiling the model's programs (kept in the compilation cache for next time)")
        started = time.perf_counter()
        for _ in self._sampler.generate([self.tokenizer.bos_id], max_new_tokens=2):
            pass
        self._sampler.reset()
        return time.perf_counter() - started

    def wait_for_warm_up(self, timeout: float | None = None) -> bool:
        """Wait for the background warm-up (if one runs); True once it has finished."""
        if self._warm_up is not None:
            self._warm_up.join(timeout)
            return not self._warm_up.is_alive()
        return True

    # --- facts -----------------------------------------------------------------------------------

    kind = "local"

    @property
    def instruction(self) -> bool:
        return is_instruction_model(f"{self.config.name} {self.source}") and has_chat_template(self.tokenizer)

    @property
    def has_fim(self) -> bool:
        return all(self.tokenizer.piece_to_id(p) is not None
                   for p in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"))

    def info(self) -> dict:
        return {
            "model": self.config.name,
            "source": self.source,
            "format": self.format,
            "architecture": self.config.architecture,
            "device": self.device,
            "dtype": self.dtype,
            "prefill_dtype": self.prefill_dtype,
            "cache_dtype": self.cache_dtype,
            **native.report(self.dtype == "int8"),  # isa, kernels, kernels_from
            "devices": self.num_devices,
            "parameters": count_params(self.config),
            "layers": self.config.num_layers,
            "layer_period": self._sampler.model.layer_period,  # 0: unrolled; p: a loop over groups of p
            "vocab_size": self.config.vocab_size,
            "context": self.context_len,
            "fim": self.has_fim,
            "load_seconds": round(self.load_seconds, 3),
        }

    # --- text ------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def prepare_prompt(self, prompt: str | Sequence[int], max_new_tokens: int, truncate: bool = False) -> list[int]:
        """Prompt text or ids -> ids that fit the context, or a PromptError.

        A prompt that does not leave room for `max_new_tokens` is refused, unless `truncate`
        is set: then the start is dropped (BOS is kept) — the end of a prompt is what a
        completion depends on most.
        """
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not ids or (isinstance(prompt, str) and not prompt):
            raise PromptError("the prompt is empty: give some text to continue")
        bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
        if bad:
            raise PromptError(f"prompt id {bad[0]} is outside the vocabulary (0..{self.config.vocab_size - 1})")
        room = self.context_len - max(max_new_tokens, 1)
        if len(ids) > room:
            if not truncate:
                raise PromptError(
                    f"the prompt has {len(ids)} tokens, but with max_new_tokens={max_new_tokens} only {room} "
                    f"fit in the context of {self.context_len} tokens; shorten the prompt, lower "
                    f"max_new_tokens, or allow truncation (keeps the end of the prompt)")
            head = ids[:1] if ids[0] == self.tokenizer.bos_id else []
            ids = head + ids[len(ids) - (room - len(head)):]
        return ids

    def generate(self, prompt: str | Sequence[int], *, max_new_tokens: int = 128,
                 sampling: SamplingParams = SamplingParams(), stop_ids: Sequence[int] | None = None,
                 cancel: CancelToken | None = None, truncate: bool = False) -> Generation:
        """Start generating; iterate the result for text pieces as they are decoded."""
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        prompt_ids = self.prepare_prompt(prompt, max_new_tokens, truncate)
        stops = tuple(self.stop_ids if stop_ids is None else stop_ids)
        result = GenerationResult(prompt_ids=prompt_ids, ids=[], text="")
        return Generation(self._stream(prompt_ids, max_new_tokens, sampling, stops, cancel, result), result)

    def _stream(self, prompt_ids, max_new_tokens, sampling, stops, cancel, result, names=None,
                healed: healing.Healing | None = None) -> Iterator[str]:
        """`healed`: the prompt lost its last blanks or begun word; the first token writes them again
        (`names` is then unused) and the text yielded starts after them."""
        started = time.perf_counter()
        self.last_prompt_ids = list(prompt_ids)
        decoder = IncrementalDecoder(self.tokenizer)
        if healed is not None:
            names, decoder = healed, healing.DecoderAfter(decoder, healed.text)
        stop_set = set(stops)
        generate = self._sampler.generate if names is None else functools.partial(constraint.generate, self._sampler,
                                                                                    trie=names)
        for token in generate(prompt_ids, max_new_tokens=max_new_tokens, sampling=sampling,
                              stop_ids=stops, cancel=cancel, stats=result.stats):
            if not result.ids:
                result.ttft_ms = (time.perf_counter() - started) * 1e3
            result.ids.append(token)
            if token in stop_set:
                result.stats.finish_reason = "stop"
                break
            piece = decoder.push(token)
            if piece:
                result.text += piece
                yield piece
        tail = decoder.flush()
        if tail:
            result.text += tail
            yield tail
        result.total_ms = (time.perf_counter() - started) * 1e3
        process.release_freed_memory()

    def chat(self, turns, *, system: str | None = None, max_new_tokens: int = 128,
             sampling: SamplingParams = SamplingParams(), cancel: CancelToken | None = None) -> Generation:
        """An instruction model's next turn after `turns`: Gemma's template from ids (backends/chat.py)."""
        return self.generate(chat_prompt(self.tokenizer, turns, system=system), max_new_tokens=max_new_tokens,
                             sampling=sampling, cancel=cancel, truncate=True)

    def complete(self, prefix: str, suffix: str = "", *, mode: str = "auto", layout: str = "psm",
                 path: str | None = None, context_files: Sequence[fim.ContextFile] = (),
                 max_new_tokens: int | None = None, sampling: SamplingParams = SamplingParams(),
                 cancel: CancelToken | None = None, allowed_names: Sequence[str] = (),
                 namespace: Collection[str] | None = None, check: bool = True,
                 rank_by_suffix: bool = False) -> "Completion":
        """Complete the code between `prefix` and `suffix` (the cursor sits between them).

        Iterating the result gives the whole suggestion so far, each time it changes. Models
        with FIM pieces see both sides; others continue the prefix, and the suffix is used to
        stop and trim. A prompt that does not fit the context loses what is farthest from the
        cursor (see fim.build_prompt). Generation stops as soon as the suggestion is complete
        for its mode (the end of the line, or of the block). `allowed_names`: the suggestion begins
        with one of them (constraint.py). `check`: it passes backends/candidates.py, or the next best
        that does is shown, or nothing (alternatives.py). `rank_by_suffix` (a model without FIM, with
        `check`): the likeliest of several passing suggestions followed by the code after the cursor.
        """
        resolved = fim.resolve_mode(mode, prefix, suffix)
        if max_new_tokens is None:
            max_new_tokens = 48 if resolved == "line" else 160
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        try:
            prompt_ids = fim.build_prompt(self.tokenizer, prefix, suffix, layout=layout, path=path,
                                          context_files=context_files,
                                          max_tokens=self.context_len - max_new_tokens)
        except ValueError as e:
            raise PromptError(str(e)) from None
        names = constraint.NameTrie(self.tokenizer, allowed_names) if any(allowed_names) else None
        healed = None
        if names is None and not self.has_fim:
            prompt_ids, healed = healing.heal(self.tokenizer, prompt_ids)
        result = CompletionResult(prompt_ids=prompt_ids, ids=[], text="", mode=resolved,
                                  layout=layout if self.has_fim else "prefix-only")
        stops = stop_ids(self.tokenizer, COMPLETION_STOPS)

        def start(stop: CancelToken) -> Generation:
            raw = GenerationResult(prompt_ids=prompt_ids, ids=[], text="")
            return Generation(self._stream(prompt_ids, max_new_tokens, sampling, stops, stop, raw, names, healed), raw)

        new_shape = functools.partial(suggestion_shape, prefix, suffix, resolved)
        stream = shaped_stream(start, new_shape(), result, cancel)
        if check:
            stream = alternatives.checked(self, stream, result, prompt_ids, prefix, suffix, new_shape, max_new_tokens,
                                          stops, cancel, namespace, tuple(n for n in allowed_names if n), healed,
                                          rank_by_suffix=rank_by_suffix and not self.has_fim)
        return Completion(stream, result)

    def complete_text(self, prompt: str | Sequence[int], **kwargs) -> GenerationResult:
        """Generate to the end and return the result (no streaming)."""
        return self.generate(prompt, **kwargs).wait()

    def score(self, texts: Sequence[str]) -> list[float]:
        """Each text's log-likelihood after the prefix all texts share, in one scoring pass (scoring.py)."""
        from .scoring import score_texts
        return score_texts(self._sampler, [self.tokenize(t) for t in texts], self.context_len)

    def forward_logits(self, ids: Sequence[int]) -> np.ndarray:
        return self._sampler.forward_logits(ids)

    def reset_cache(self) -> None:
        self._sampler.reset()
