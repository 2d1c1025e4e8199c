"""Saved steps (programs.py): a second process loads what the first traced, and gets the same
tokens; files that cannot be read are written again."""

from __future__ import annotations

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax._src.dispatch import JAXPR_TO_MLIR_MODULE_EVENT

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local import quantize
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.programs import SUFFIX, Programs
from jupyter_codegemma.backends.local.sampler import Sampler

CONFIG = configs.tiny_gemma3()
PARAMS = init_params(CONFIG, seed=5)
PROMPT = [2] + [int(i) for i in np.random.RandomState(6).randint(3, CONFIG.vocab_size, size=30)]


def _sampler(programs: Programs | None, params=PARAMS, speculative: bool = False) -> Sampler:
    return Sampler(Transformer(CONFIG), params, 128, prefill_buckets=(16, 32), speculative=speculative,
                   programs=programs)


def _generate(sampler: Sampler) -> list[int]:
    first = list(sampler.generate(PROMPT, max_new_tokens=10))
    # A prompt that extends the cached one: a prefill chunk at an offset, then decoding.
    again = list(sampler.generate(PROMPT + first[:3], max_new_tokens=10))
    return first + again


def test_saved_steps_give_the_same_tokens_and_are_loaded_by_the_next_process(tmp_path):
    expected = _generate(_sampler(None))
    first = Programs(tmp_path)
    assert _generate(_sampler(first)) == expected
    assert first.exported >= 2 and first.loaded == 0  # a prefill and a decode step at least
    saved = sorted(p.name for p in tmp_path.glob(f"*{SUFFIX}"))
    assert len(saved) == first.exported

    # A new Programs (as in a new process) reads them instead of tracing the model.
    second = Programs(tmp_path)
    assert _generate(_sampler(second)) == expected
    assert second.exported == 0 and second.loaded == first.exported
    assert sorted(p.name for p in tmp_path.glob(f"*{SUFFIX}")) == saved


def test_greedy_draft_checks_and_int8_weights_go_through_saved_steps(tmp_path):
    q = jax.tree.map(jnp.asarray, quantize.quantize_int8(jax.tree.map(np.asarray, PARAMS)))
    expected = _generate(_sampler(None, q, speculative=True))
    programs = Programs(tmp_path)
    assert _generate(_sampler(programs, q, speculative=True)) == expected
    assert any(p.name.startswith("verify_step") for p in tmp_path.glob(f"*{SUFFIX}"))
    assert _generate(_sampler(Programs(tmp_path), q, speculative=True)) == expected


def test_another_model_or_shape_gets_its_own_program(tmp_path):
    programs = Programs(tmp_path)
    list(_sampler(programs).generate(PROMPT, max_new_tokens=2))
    before = set(tmp_path.glob(f"*{SUFFIX}"))
    other = init_params(CONFIG, seed=9)  # same shapes: the same programs serve it
    list(_sampler(Programs(tmp_path), other).generate(PROMPT, max_new_tokens=2))
    assert set(tmp_path.glob(f"*{SUFFIX}")) == before
    bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), PARAMS)  # other dtypes: other programs
    list(Sampler(Transformer(CONFIG, dtype=jnp.bfloat16), bf16, 128, prefill_buckets=(16, 32),
                 cache_dtype=jnp.bfloat16, programs=Programs(tmp_path)).generate(PROMPT, max_new_tokens=2))
    assert set(tmp_path.glob(f"*{SUFFIX}")) > before


def test_an_unreadable_file_is_written_again(tmp_path):
    expected = list(_sampler(Programs(tmp_path)).generate(PROMPT, max_new_tokens=6))
    for path in tmp_path.glob(f"*{SUFFIX}"):
        path.write_bytes(b"not a program")
    programs = Programs(tmp_path)
    assert list(_sampler(programs).generate(PROMPT, max_new_tokens=6)) == expected
    assert programs.loaded == 0 and programs.exported >= 2
    assert all(p.read_bytes() != b"not a program" for p in tmp_path.glob(f"*{SUFFIX}"))


def test_a_read_only_directory_costs_only_the_saving(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory would be")
    programs = Programs(blocked / "programs")
    assert list(_sampler(programs).generate(PROMPT, max_new_tokens=6)) == \
        list(_sampler(None).generate(PROMPT, max_new_tokens=6))


def test_the_warm_up_compiles_each_program_once_for_the_calls(tmp_path):
    sampler = _sampler(Programs(tmp_path))
    sampler.precompile(programs=sampler.short_prompt_programs(), workers=1)
    expected = list(_sampler(None).generate(PROMPT[:12], max_new_tokens=5))
    # A short prompt runs only the precompiled steps: none is lowered again (small helpers may be).
    assert _steps_lowered_while(lambda: list(sampler.generate(PROMPT[:12], max_new_tokens=5)), expected) == []


def _steps_lowered_while(run, expected) -> list[str]:
    """Run `run` (asserting it returns `expected`); the saved steps lowered meanwhile (a saved step is
    jit(call))."""
    lowered = []

    def listen(event, seconds, **kwargs):
        if event == JAXPR_TO_MLIR_MODULE_EVENT:
            lowered.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        assert run() == expected
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return [name for name in lowered if "call" in str(name)]


def test_the_warm_up_compiles_what_a_running_request_needs_next_and_waits_with_the_rest(tmp_path):
    sampler = Sampler(Transformer(CONFIG), PARAMS, 2048, prefill_buckets=(16, 32), programs=Programs(tmp_path))
    expected = list(_sampler(None).generate(PROMPT[:20], max_new_tokens=5))
    # A 20-token prompt runs one 32-position chunk, then decode steps, over the 1 024-position view;
    # the warm-up's list also holds a chunk over the 2 048-position view, which it does not need.
    chunk, decode, unneeded = ("prefill", 32, 1024), ("decode", 1, 1024), ("prefill", 32, 2048)
    assert {chunk, decode, unneeded} <= set(sampler.warm_up_programs())
    with sampler._lock:  # a request runs (Sampler.generate holds the lock throughout)
        warm_up = threading.Thread(target=sampler.precompile, kwargs={"yield_to_requests": True})
        warm_up.start()
        sampler.prefill(PROMPT[:20])  # announces the decode step; compiles its own chunk
        for _ in range(300):
            if sampler._compiles.claimed(decode):
                break
            time.sleep(0.02)
        assert sampler._compiles.claimed(decode) and sampler._compiles.claimed(chunk)
        assert not sampler._compiles.claimed(unneeded) and warm_up.is_alive()
    warm_up.join(120)
    assert not warm_up.is_alive() and sampler._compiles.claimed(unneeded)
    sampler.reset()
    # Programs lowered from the cache's shapes serve the real calls: none is lowered again.
    assert _steps_lowered_while(lambda: list(sampler.generate(PROMPT[:20], max_new_tokens=5)), expected) == []


def test_a_compiled_program_lets_its_jitted_function_go_and_makes_it_again_when_needed(tmp_path):
    """Once a step's executable is kept, nothing holds its jitted function (JAX's tracing cache keeps
    the traced program while that function lives); one made again later (a call the executable does
    not take) is let go the same way, and the steps give the same tokens."""
    import gc
    import weakref

    programs = Programs(tmp_path)
    sampler = _sampler(programs)
    sampler.precompile(programs=sampler.short_prompt_programs(), workers=1)
    kept = list(programs._steps.values())
    assert kept and all(p._compiled is not None and p._jitted is None for p in kept)
    program = kept[0]
    jitted = weakref.ref(program._jitted_step())  # made again, as a mismatched call would
    assert program._jitted is not None
    program._keep(program._compiled)
    gc.collect()
    assert jitted() is None
    assert list(sampler.generate(PROMPT[:12], max_new_tokens=5)) == list(_sampler(None).generate(PROMPT[:12], max_new_tokens=5))


# In a fresh process: a sampler's steps saved (first run) and loaded (second run), then whether JAX
# set up its LAPACK kernels (importing SciPy's linear algebra) on the way.
_STEPS_IN_A_FRESH_PROCESS = r"""
import sys
from pathlib import Path
import numpy as np
from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.model_spec import TransformerSpec
from jupyter_codegemma.backends.local.programs import Programs
from jupyter_codegemma.backends.local.sampler import Sampler
config = configs.tiny_gemma3()
saved = Path(sys.argv[1]) / "params.npz"
if saved.exists():  # the next process: the tree as arrays, no Flax needed to make it
    params = {}
    for path, array in np.load(saved).items():
        *parents, leaf = path.split("/")
        node = params
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = array
else:
    from jupyter_codegemma.backends.local.model import init_params
    params = init_params(config, seed=5)
    flat = {}
    def walk(node, prefix):
        for name, value in node.items():
            walk(value, prefix + name + "/") if isinstance(value, dict) else flat.__setitem__(prefix + name, np.asarray(value))
    walk(params, "")
    np.savez(saved, **flat)
programs = Programs(sys.argv[1])
sampler = Sampler(TransformerSpec(config), params, 128, prefill_buckets=(16, 32), programs=programs)
tokens = list(sampler.generate([2, 5, 6, 7], max_new_tokens=4))
print(tokens, programs.loaded, "scipy.linalg" in sys.modules, "flax" in sys.modules)
"""

# A user's own exported function that calls LAPACK, loaded in a process that has set up our steps.
_USERS_LAPACK_EXPORT = r"""
import sys
import jax, numpy as np
from jupyter_codegemma.backends.local.programs import Programs
Programs(sys.argv[1])
exported = jax.export.deserialize(bytearray(open(sys.argv[2], "rb").read()))
a = np.array([[4.0, 1.0], [2.0, 3.0]], np.float32)
print(np.allclose(np.asarray(exported.call(a)), np.linalg.inv(a), atol=1e-5))
"""


def _python(*args: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=300,
                          check=True).stdout.strip()


def test_a_process_that_loads_saved_steps_imports_neither_flax_nor_scipy(tmp_path):
    """A warm kernel runs its steps from the saved programs: tracing them (Flax, model_spec.py) and
    setting up LAPACK for them (SciPy) are both skipped."""
    saved = _python(_STEPS_IN_A_FRESH_PROCESS, str(tmp_path)).split()
    loaded = _python(_STEPS_IN_A_FRESH_PROCESS, str(tmp_path)).split()
    assert saved[:-3] == loaded[:-3]  # the same tokens
    assert saved[-3:] == ["0", "False", "True"]  # traced and saved: Flax, but no LAPACK
    assert int(loaded[-3]) > 0 and loaded[-2:] == ["False", "False"]


def test_a_users_exported_lapack_call_still_sets_lapack_up(tmp_path):
    blob = jax.export.export(jax.jit(jnp.linalg.inv))(jax.ShapeDtypeStruct((2, 2), jnp.float32)).serialize()
    (tmp_path / "inv.bin").write_bytes(blob)
    assert _python(_USERS_LAPACK_EXPORT, str(tmp_path), str(tmp_path / "inv.bin")) == "True"
