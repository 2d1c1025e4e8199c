"""Prefill and decode: jitted steps over a fixed-size KV cache, and the token loop around them.

The model never sees strings and the sampler never sees text: this module maps prompt ids to
generated ids. Static shapes keep the number of compiled programs small:

- a prompt is prefilled in chunks whose lengths are padded up to `PREFILL_BUCKETS`;
- each step attends over a power-of-two prefix of the cache (`kv_len`), so a short prompt does
  not pay for a long cache; steps whose attention the native kernel reads from the cache (it reads
  only the keys each row sees) take the whole cache, one program for every length;
- decoding feeds one token at a time; its logits are computed for that position only.

The cache survives between calls together with the ids it holds, so a prompt that extends the
previous one is only prefilled from the first token that differs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..base import CancelToken, SamplingParams, StepStats
from . import process
from .config import GemmaConfig
from .kv_cache import Cache, init_cache
from .compile_queue import CompileQueue
from .programs import Programs
from .steps import (PREFILL_BUCKETS, SamplerShape, bucket, decode_step, full_forward, kv_bucket, prefill_step,
                    read_id, recent_window, verify_step)
from .speculative import VERIFY_LEN, greedy_with_drafts

if TYPE_CHECKING:
    from .model_spec import Model

# The KV cache holds one position more than a prompt and its completion may use, so that attention's
# longest view (cache_len) is a slice of it, never all of it. Over all of it, XLA copied the updated
# (donated) cache four times per global layer and decode step to keep it apart from what attention
# reads: 24 copies of 4 MB per step at 4 096 positions, ~16 ms; with the spare position it is one slice.
SPARE_POSITIONS = 1
_GREEDY = SamplerShape(True, None, False)  # the shape the warm-up compiles (completions use it)


class Sampler:
    """Owns the compiled steps and the KV cache of one model (batch size 1, one thread at a time)."""

    def __init__(self, model: Model, params, cache_len: int, cache_dtype=jnp.float32,
                 prefill_buckets: Sequence[int] = PREFILL_BUCKETS,
                 place_cache: Callable[[Cache], Cache] | None = None, speculative: bool = False,
                 prefill_model: Model | None = None, prefill_params=None, programs: Programs | None = None):
        """`place_cache` puts a fresh KV cache onto devices (e.g. sharded over a mesh, see sharding.py).

        `prefill_model`/`prefill_params`, when given, run every prompt chunk (many positions per
        pass, bound by arithmetic) while `model`/`params` decode (one position, bound by reading
        the weights): on CPU the fastest weights differ between the two (see Engine). Both write
        the same cache.

        `programs`, when given, saves each traced step for later processes (programs.py)."""
        self.model = model
        self._programs = programs
        self.prefill_model = prefill_model or model
        if self.prefill_model.layer_period != model.layer_period:
            raise ValueError("the prefill and decode models must lay out the cache alike (the same layer_period)")
        self.prefill_params = prefill_params if prefill_params is not None else params
        # A fresh cache is put on the device explicitly ("committed", like every step's output):
        # jit compiles separately for uncommitted arguments, so a fresh cache would otherwise
        # cost each program a second compilation at its second call.
        self._place_cache = place_cache or (lambda cache: jax.device_put(cache, jax.devices()[0]))
        # Greedy decoding checks prompt-lookup drafts (speculative.py): same ids, fewer passes.
        self.speculative = speculative
        # The key greedy steps are given, and ignore: made once, and of zeros in the keys' shape, not by
        # jax.random.PRNGKey (a program compiled at every load: 0.06-0.07 s of it). Every other argument
        # of a step goes to it as a numpy value, for the same reason.
        key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
        self.greedy_key = jax.device_put(np.zeros(key.shape, key.dtype))
        self.prefill_buckets = tuple(sorted(prefill_buckets))
        self.params = params
        self.config: GemmaConfig = model.config
        self.cache_len = cache_len
        self.cache_dtype = cache_dtype
        # Query rows per KV head up to which each model's steps attend on the native kernel (0: never).
        self._native_rows = {"decode": self._native_attention_rows(model, params),
                             "prefill": self._native_attention_rows(self.prefill_model, self.prefill_params)}
        self._cache: Cache | None = None
        self._cached_ids: list[int] = []  # ids whose keys and values are in the cache, in order
        self._lock = threading.Lock()
        self._compiles = CompileQueue(busy=self._lock.locked)  # what precompile prepares next
        # What precompile lowers with: the cache's shapes, dtypes and placement (no request holds it yet).
        self._cache_shapes: Cache = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), self._ensure_cache())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The sampler to oneself: its lock (one request at a time uses the cache), and glibc's heap set
        for the model's scratch memory while it is held (process.model_heap)."""
        with self._lock, process.model_heap():
            yield

    # --- cache bookkeeping -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the cached prompt (the next call prefills from scratch)."""
        self._cache = None
        self._cached_ids = []

    def _ensure_cache(self) -> Cache:
        """The sampler's KV cache, a new empty one if it has none."""
        if self._cache is None:
            self._cache = self._place_cache(self.new_cache(self.cache_len + SPARE_POSITIONS))
            self._cached_ids = []
        return self._cache

    def new_cache(self, length: int) -> Cache:
        """An empty KV cache of `length` positions for this sampler's models (not yet placed)."""
        return init_cache(self.config, 1, length, self.cache_dtype, period=self.model.layer_period)

    def _native_attention_rows(self, model: Model, params) -> int:
        """How many query rows per KV head `model`'s steps may have for the native attention to read
        the cache (native.attention_rows), 0 where it never does."""
        from . import native

        int8 = any(getattr(a, "dtype", None) == jnp.int8 for a in jax.tree.leaves(params))
        return native.attention_rows(int8_weights=int8, dtype=model.dtype, cache_dtype=self.cache_dtype,
                                     head_dim=self.config.head_dim)

    def kv_len(self, positions: int, end: int, *, prefill: bool = False) -> int:
        """The view of the cache a step of `positions` positions ending before `end` attends over: the
        shortest power-of-two prefix that holds them (kv_bucket); the whole cache where the native
        attention reads it (a decode step, a draft check, the shortest prompt chunk of the int8 model:
        it reads only the keys each row sees, so the view costs nothing, and one program serves every
        position instead of one per view length)."""
        rows = positions * (self.config.num_heads // self.config.num_kv_heads)
        if rows <= self._native_rows["prefill" if prefill else "decode"]:
            return self.cache_len
        return kv_bucket(end, self.cache_len)

    def _take_cache(self) -> Cache:
        cache, self._cache = self._ensure_cache(), None  # donated to the next step: never reuse the old handle
        return cache

    @staticmethod
    def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
        n = min(len(a), len(b))
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i

    # --- the token loop --------------------------------------------------------------------------

    def prefill(self, prompt_ids: Sequence[int], sampling: SamplingParams = SamplingParams(),
                stats: StepStats | None = None):
        """Prefill the cache with prompt_ids; returns (first token on device, its logits [1, V])."""
        n = len(prompt_ids)
        if n == 0:
            raise ValueError("the prompt is empty: give at least one token")
        if n > self.cache_len:
            raise ValueError(f"the prompt has {n} tokens but the KV cache holds {self.cache_len}")
        shape = SamplerShape.of(sampling)
        base_key = None if shape.greedy else jax.random.PRNGKey(sampling.seed)
        temperature = np.float32(max(sampling.temperature, 1e-6))
        top_p = np.float32(sampling.top_p if sampling.top_p is not None else 1.0)

        # Reuse the cached prefix; always recompute at least the last token, whose logits we need.
        cache = self._take_cache()  # a fresh cache (after a failure) holds no ids
        reused = min(self._common_prefix(self._cached_ids, prompt_ids), n - 1)
        self._cached_ids = []  # until the prefill completes, nothing in the cache is trusted
        if shape == _GREEDY:
            self._announce(reused, n)
        token = logits = None
        for start, chunk, padded, kv_len in self._chunks(reused, n):
            tokens = np.zeros((1, padded), np.int32)
            tokens[0, :chunk] = prompt_ids[start:start + chunk]
            key = self.greedy_key if shape.greedy else jax.random.fold_in(base_key, start + chunk)
            # The penalty's arguments exist only when it is on (steps.py): the default programs are unchanged.
            penalty = (recent_window(prompt_ids[:start + chunk], shape.penalty_window)[None],
                       np.float32(sampling.repetition_penalty)) if shape.penalty_window else ()
            # Every prompt position goes through the prefill weights, however short the chunk: with
            # int8 decode weights, prefilling a few positions in int8 would be cheaper, but the keys and
            # values (and the first token) would then depend on where the cached prefix ended, so the
            # same prompt could get a different suggestion cold and warm.
            token, logits, cache = self._run(
                prefill_step, self.prefill_model, self.prefill_params, tokens, cache, np.int32(start),
                np.int32(chunk - 1), key, temperature, top_p, *penalty, kv_len=kv_len, shape=shape)
        self._cache = cache
        self._cached_ids = list(prompt_ids)
        if stats is not None:
            stats.prompt_tokens, stats.reused_tokens = n, reused
        return token, logits

    def _chunks(self, start: int, n: int) -> Iterator[tuple[int, int, int, int]]:
        """(start, length, padded length, kv_len) of each chunk that prefills positions start..n-1."""
        while start < n:
            chunk = min(n - start, self.prefill_buckets[-1])
            # Near the end of the cache the padding must fit too: use an exact-length chunk there.
            padded = min(bucket(chunk, self.prefill_buckets), self.cache_len - start)
            yield start, chunk, padded, self.kv_len(padded, start + padded, prefill=True)
            start += chunk

    def _announce(self, reused: int, n: int) -> None:
        """Tell the warm-up which programs this request runs after its first: its other prompt chunks,
        then decoding over the view the prompt ends in — compiled beside the first chunk's run instead
        of after it. The first it compiles itself, if no one has.

        Not what it only may run (draft checks: where a draft is found; the smallest chunk: the next
        keystroke's request): on two cores, lowering and compiling those beside a short request took
        the cores and the interpreter from it (a first completion of one token 0.56-0.68 -> 0.45-0.60
        s without them; one that checks drafts no slower). The warm-up prepares them once it is over."""
        plan = [("prefill", padded, kv_len) for _, _, padded, kv_len in self._chunks(reused, n)]
        plan.append(("decode", 1, self.kv_len(1, n + 1)))
        self._compiles.claim(plan[0])
        self._compiles.want(plan[1:])

    def generate(self, prompt_ids: Sequence[int], *, max_new_tokens: int,
                 sampling: SamplingParams = SamplingParams(), stop_ids: Sequence[int] = (),
                 cancel: CancelToken | None = None, stats: StepStats | None = None,
                 on_logits: Callable[[jax.Array], None] | None = None) -> Iterator[int]:
        """Yield generated ids one at a time (a stop id is yielded, then the loop ends).

        The next decode step is dispatched before the current token is read back, so the host's
        work (streaming, stop checks) overlaps the device's. Cancellation is checked between
        steps: at most the one step already in flight is wasted.
        """
        stats = stats if stats is not None else StepStats()
        if max_new_tokens < 1:
            stats.finish_reason = "length"
            return
        with self.locked():
            yield from self._generate_locked(prompt_ids, max_new_tokens, sampling, frozenset(stop_ids),
                                             cancel, stats, on_logits)

    def _generate_locked(self, prompt_ids, max_new_tokens, sampling, stop_ids, cancel, stats, on_logits):
        shape = SamplerShape.of(sampling)
        base_key = self.greedy_key if shape.greedy else jax.random.PRNGKey(sampling.seed)
        temperature = np.float32(max(sampling.temperature, 1e-6))
        top_p = np.float32(sampling.top_p if sampling.top_p is not None else 1.0)
        if cancel is not None and cancel.is_set():
            stats.finish_reason = "cancelled"
            return
        token, logits = self.prefill(prompt_ids, sampling, stats)
        position = len(prompt_ids)  # where the pending token's keys and values will be written
        stats.finish_reason = "length"
        if self.speculative and shape.greedy and on_logits is None:
            yield from greedy_with_drafts(self, prompt_ids, read_id(token), max_new_tokens, stop_ids, cancel, stats,
                                          shape, sampling.repetition_penalty)
            return
        # With the penalty, the window of recent ids lives on the device: each decode step adds the
        # token it is fed and returns the window, so steps are still dispatched before reading back.
        if on_logits is not None:
            shape = dataclasses.replace(shape, logits=True)  # the decode steps return them
        recent = penalty = None
        if shape.penalty_window:
            recent = recent_window(prompt_ids, shape.penalty_window)[None]
            penalty = np.float32(sampling.repetition_penalty)
        try:
            for step in range(max_new_tokens):
                pending = None
                if step + 1 < max_new_tokens and position < self.cache_len:
                    cache = self._take_cache()
                    # Greedy picks ignore the key: no per-step fold_in (a dispatched computation on the host's cores).
                    key = base_key if shape.greedy else jax.random.fold_in(base_key, position + 1)
                    extra = (recent, penalty) if shape.penalty_window else ()
                    pending = self._run(decode_step, self.model, self.params, token, cache, np.int32(position), key,
                                        temperature, top_p, *extra, kv_len=self.kv_len(1, position + 1),
                                        shape=shape)
                    self._cache = pending[2]
                    if shape.penalty_window:
                        recent = pending[3]
                if on_logits is not None:
                    on_logits(logits)
                token_id = read_id(token)
                if pending is not None:
                    self._cached_ids.append(token_id)
                stats.new_tokens += 1
                yield token_id
                if token_id in stop_ids:
                    stats.finish_reason = "stop"
                    return
                if cancel is not None and cancel.is_set():
                    stats.finish_reason = "cancelled"
                    return
                if pending is None:
                    if step + 1 < max_new_tokens:
                        stats.finish_reason = "context"
                    return
                token, logits = pending[0], pending[1]
                position += 1
        except GeneratorExit:
            # The consumer stopped reading (a stop id, a shaped suggestion that is complete): the cache
            # holds exactly `_cached_ids`, so the next prompt can reuse it.
            raise
        except BaseException:
            # A step that failed (or a KeyboardInterrupt) may have consumed the donated cache.
            self.reset()
            raise

    # --- compiled steps ----------------------------------------------------------------------------

    def _run(self, step, model, params, *args, **statics):
        """Run a jitted step (one of the module-level `_*_step`s), through `programs` when set."""
        if self._programs is None:
            return step(model, params, *args, **statics)
        return self._programs.get(step, model, params, args, statics)(params, *args)

    def _lower(self, step, model, params, *args, **statics):
        if self._programs is None:
            return step.lower(model, params, *args, **statics)
        return self._programs.get(step, model, params, args, statics).lower(params, *args)

    def short_prompt_programs(self) -> list[tuple[str, int, int]]:
        """(step, positions, kv_len) of what a first, short request runs, in the order it runs them: a
        prompt of up to 32 positions (one chunk), decoding, and (greedy) draft checks, over the shortest
        view."""
        programs = [("prefill", b, self.kv_len(b, b, prefill=True))
                    for b in self.prefill_buckets if b <= max(32, self.prefill_buckets[0])]
        programs.append(("decode", 1, self.kv_len(1, 1)))
        if self.speculative:
            programs.append(("verify", VERIFY_LEN, self.kv_len(VERIFY_LEN, VERIFY_LEN)))
        return programs

    def warm_up_programs(self) -> list[tuple[str, int, int]]:
        """(step, positions, kv_len) of the programs a typing session needs first, in order:
        a short prompt; then a long one (prefilled in the largest chunks, each attending over
        a longer view of the cache) and the keystrokes that extend it. Each compiled program
        holds tens of MB, so the others are compiled when a request first needs them."""
        largest = self.prefill_buckets[-1]
        # The chunks a keystroke adds to a cached prompt: a word or two, or a few more once typed through.
        small = self.prefill_buckets[:2]
        medium = bucket(64, self.prefill_buckets)
        programs = self.short_prompt_programs() + [("prefill", medium, kv_bucket(1, self.cache_len))]
        kv = kv_bucket(largest, self.cache_len)
        while True:
            programs.append(("prefill", min(largest, kv), kv))
            if kv >= self.cache_len:
                break
            kv = kv_bucket(2 * kv, self.cache_len)
        programs += [("prefill", b, self.cache_len) for b in small] + [("decode", 1, self.cache_len)]
        if self.speculative:
            programs += [("verify", VERIFY_LEN, self.cache_len)]
        return list(dict.fromkeys(programs))

    def precompile(self, stop: CancelToken | None = None, programs: Sequence[tuple[str, int, int]] | None = None,
                   workers: int = 2, yield_to_requests: bool = False) -> int:
        """Compile (or read from the persistent compilation cache) `programs` (default
        `warm_up_programs()`), skipping those compiled before, and first those a running request
        announced (compile_queue.py). With `yield_to_requests` (the background warm-up) the rest
        waits while a request runs. Lowering reads only the cache's shapes, so it never waits for a
        request; a request waits for a program it needs that is being compiled here
        (programs.Program) rather than compiling it a second time. Compilations run on `workers`
        threads (XLA releases the GIL): loading a cached program is mostly waiting, so two load in
        about the time of one. Returns how many were compiled; stops early when `stop` is set."""
        scalar, key, f32 = jnp.int32(0), self.greedy_key, jnp.float32(1)
        pending = list(programs if programs is not None else self.warm_up_programs())
        compiling = []
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="codegemma-compile") as pool:
            while (program := self._compiles.next(pending, stop, yield_to_requests)) is not None:
                step, positions, kv_len = program
                tokens = jnp.zeros((1, positions), jnp.int32)
                # Lowering needs only the cache's shapes, dtypes and placement (the compiled step is kept
                # in its Program and serves the real calls), so it does not wait for a request that holds
                # the cache.
                cache = self._cache_shapes
                if step == "decode":
                    lowered = self._lower(decode_step, self.model, self.params, tokens[0], cache, scalar, key, f32,
                                          f32, kv_len=kv_len, shape=_GREEDY)
                elif step == "verify":
                    lowered = self._lower(verify_step, self.model, self.params, tokens, cache, scalar, kv_len=kv_len)
                else:
                    lowered = self._lower(prefill_step, self.prefill_model, self.prefill_params, tokens, cache,
                                          scalar, scalar, key, f32, f32, kv_len=kv_len, shape=_GREEDY)
                compiling.append(pool.submit(lowered.compile))
        for future in compiling:
            future.result()  # raises what a compilation raised
        return len(compiling)

    def forward_logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits at every position of `ids` in one full pass (no cache reuse): [len(ids), V].

        For tests and notebooks, not for generation: it computes the head at every position.
        """
        n = len(ids)
        with self.locked():
            cache = self._place_cache(self.new_cache(max(n, 1)))
            hidden, _ = full_forward(self.prefill_model, self.prefill_params, jnp.asarray([list(ids)], jnp.int32),
                                      cache)
            return np.asarray(hidden[0])
