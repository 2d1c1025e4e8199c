"""The sampler's compiled steps, saved once so that a new process does not trace the model again.

Tracing the model into a program runs every layer's Python code: ~0.4 s per program for
Gemma 3 270M, and a completion needs three (a prompt chunk, a decode step, a draft check) —
most of a warm kernel's start-up. With `jax.export`, a traced step is serialized into the
cache directory the first time; a later process deserializes it (milliseconds), and XLA's
persistent compilation cache supplies the machine code.

A saved program is found by a digest of everything that shapes it: the step and its static
arguments, the shapes and dtypes of all its arguments, the model (its config and dtype), this
runtime's source files, the JAX version and which native kernels are registered. A file that
cannot be read is written again; a step that cannot be exported runs as a plain jitted step.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import jax

from . import native

SUFFIX = ".jaxexport"
# Every step takes (model, params, tokens, cache, ...) and donates the cache: once the static
# model is bound, the cache is dynamic argument 2.
_CACHE_ARG = 2
_SOURCES = ("model.py", "model_spec.py", "attention.py", "layer_stacks.py", "kv_cache.py", "sampler.py", "steps.py", "programs.py", "native/__init__.py")  # and the kernels' own sources


def _runtime_fingerprint() -> bytes:
    import jaxlib

    here = Path(__file__).parent
    digest = hashlib.sha256(f"{jax.__version__} {jaxlib.__version__} {jax.default_backend()}".encode())
    for path in (*(here / name for name in _SOURCES), *native._SOURCES, *native._HEADERS):
        digest.update(path.read_bytes())
    # Which kernels a program calls is decided while tracing (native.int8_matmul).
    digest.update(f"native={native.native_enabled()} isa={native.isa_class()}".encode())
    return digest.digest()


def _signature(tree) -> str:
    leaves, structure = jax.tree.flatten(tree)
    return f"{structure}|" + ",".join(f"{getattr(a, 'dtype', type(a).__name__)}{tuple(getattr(a, 'shape', ()))}"
                                     for a in leaves)


_lowering = threading.local()  # .step: this thread lowers one of our steps


@contextlib.contextmanager
def _lowering_a_step():
    _lowering.step = True
    try:
        yield
    finally:
        _lowering.step = False


def _skip_lapack_set_up_for_steps() -> None:
    """Lowering a deserialized program first sets up JAX's LAPACK kernels on the CPU, whether or not
    the program calls them; that imports SciPy's linear algebra (0.25 s of one core, ~10 MB), the
    largest part of a warm kernel's first completion after the import of JAX. The model's steps call
    no LAPACK, so while one of them is lowered that set-up is skipped; every other lowering (the
    user's exported functions) still does it. JAX's private hook: where it is missing or renamed, this
    does nothing and the set-up runs as before."""
    try:
        from jax._src.export import _export
    except ImportError:
        return
    set_up = getattr(_export, "_ensure_backends_initialized", None)
    if set_up is None or getattr(set_up, "skips_codegemma_steps", False):
        return

    def set_up_unless_a_step(platforms):
        if not getattr(_lowering, "step", False):
            set_up(platforms)

    set_up_unless_a_step.skips_codegemma_steps = True
    _export._ensure_backends_initialized = set_up_unless_a_step


class Programs:
    """Jitted steps by (step, model, static arguments, token shape), each exported to
    `directory` on first use and loaded from there by later processes."""

    def __init__(self, directory: str | os.PathLike):
        _skip_lapack_set_up_for_steps()
        self.directory = Path(directory)
        self.loaded = 0  # programs read from the directory
        self.exported = 0  # programs traced and written
        self._steps: dict[tuple, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._fingerprint: bytes | None = None

    def get(self, step, model, params, args: tuple, statics: dict) -> "Program":
        """The step with `model` and `statics` bound: call it as fn(params, *args)."""
        key = (step.__name__, model, id(params), tuple(sorted(statics.items())), getattr(args[0], "shape", None))
        with self._lock:
            fn = self._steps.get(key)
            if fn is None:
                fn = self._steps[key] = Program(self._load_or_export(step, model, params, args, statics))
            return fn

    def _load_or_export(self, step, model, params, args, statics) -> Callable[[], Callable[..., Any]]:
        """What makes the step's jitted function (see Program)."""
        if self._fingerprint is None:
            self._fingerprint = _runtime_fingerprint()
        digest = hashlib.sha256(self._fingerprint)
        digest.update(f"{step.__name__}|{model!r}|{sorted(statics.items())!r}|".encode())
        digest.update(_signature((params, args)).encode())
        path = self.directory / f"{step.__name__}-{digest.hexdigest()[:24]}{SUFFIX}"
        exported = self._read(path)
        if exported is None:
            try:
                checks = [jax.export.DisabledSafetyCheck.custom_call(t) for t in native.FFI_TARGETS]
                exported = jax.export.export(step, disabled_checks=checks)(model, params, *args, **statics)
                blob = exported.serialize()
            except Exception:  # noqa: BLE001 - an unexportable step still runs, traced as before
                return lambda: jax.jit(functools.partial(step, model, **statics), donate_argnums=(_CACHE_ARG,))
            self._write(path, blob)
            self.exported += 1
        else:
            self.loaded += 1
        return lambda: jax.jit(exported.call, donate_argnums=(_CACHE_ARG,))

    @staticmethod
    def _read(path: Path):
        try:
            return jax.export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # noqa: BLE001 - missing, truncated or from another JAX: export it again
            return None

    def _write(self, path: Path, blob: bytes) -> None:
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # atomic: another process never reads half a file
        except OSError:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)  # a read-only or full cache directory only costs start-up time next time


class Program:
    """One loaded step, compiled once: by the warm-up (`lower(...).compile()`) or by its first call.

    A jitted function does not keep what `jit(f).lower(...).compile()` returns: its first call lowers
    the step again (~0.4 s for Gemma 3 270M) and looks the machine code up in XLA's cache again (~0.5
    s). So the compiled executable is kept here and called directly; a call whose arguments differ
    from those it was compiled for (a type, a shape) goes through the jitted function as before.
    A call that comes while the warm-up compiles the step waits for that compilation: a second one
    would take as long and share the same cores.

    The jitted function is made when needed and let go once the executable is kept: as long as it
    lives, JAX's tracing cache (weakly keyed on it) holds its traced program. For Gemma 3 270M's 13
    warm-up programs that was 16 MB: RSS after the warm-up 869 -> 853 MB, peak 958 -> 942 MB."""

    def __init__(self, make_jitted: Callable[[], Callable[..., Any]]):
        self._make_jitted = make_jitted
        self._jitted: Callable[..., Any] | None = None
        self._compiled: Callable[..., Any] | None = None
        self._compiling: threading.Event | None = None  # set when a compilation in progress ends
        self._lock = threading.Lock()

    def _jitted_step(self) -> Callable[..., Any]:
        with self._lock:
            if self._jitted is None:
                self._jitted = self._make_jitted()
            return self._jitted

    def lower(self, params, *args) -> "_Lowered":
        with _lowering_a_step():
            return _Lowered(self, self._jitted_step().lower(params, *args))

    def _keep(self, compiled) -> None:
        with self._lock:
            if self._compiled is None:
                self._compiled = compiled
            if self._compiled is not _MISMATCH:
                self._jitted = None  # calls go to the executable (see the class's docstring)

    def __call__(self, params, *args):
        compiled = self._compiled
        compiling = self._compiling
        if compiled is None and compiling is not None:
            compiling.wait()
            compiled = self._compiled  # None if that compilation failed: this call compiles and raises
        if compiled is None:
            lowered = self.lower(params, *args)
            compiled = lowered.compile()
        if compiled is not _MISMATCH:
            try:
                return compiled(params, *args)
            except TypeError:  # checked before it runs (nothing donated): the calls differ from the warm-up's
                self._compiled = _MISMATCH
        with _lowering_a_step():  # traced and lowered in the call
            return self._jitted_step()(params, *args)


_MISMATCH = object()  # a Program whose calls go through the jitted function


class _Lowered:
    """A Program's lowered step; compiling it keeps the executable in the Program. From its lowering
    to the end of its compilation, calls of the Program wait for it (the warm-up queues compilations
    on a pool: a call may come before this one starts)."""

    def __init__(self, program: Program, lowered):
        self._program, self._lowered = program, lowered
        self._done = threading.Event()
        with program._lock:
            if program._compiling is None:
                program._compiling = self._done

    def compile(self):
        program = self._program
        try:
            with program._lock:
                other = program._compiling if program._compiling is not self._done else None
            if other is not None:  # lowered twice (a request and the warm-up): compile once
                other.wait()
            if program._compiled is not None and program._compiled is not _MISMATCH:
                return program._compiled
            compiled = self._lowered.compile()
            self._lowered = None  # its lowering (the step's MLIR module) is not needed again
            program._keep(compiled)
            return compiled
        finally:
            self._done.set()
            with program._lock:
                if program._compiling is self._done:
                    program._compiling = None
