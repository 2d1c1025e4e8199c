"""Hostile and broken checkpoint files (issue 19, item 5): each ends in one CheckpointError line that
names the file and what is wrong, without a multi-GB allocation or a hang.

Every case starts from a valid tiny checkpoint written by the test writers (GGUF, Hugging Face
safetensors, Kaggle orbax) and breaks it: bytes patched at offsets taken from the valid file,
headers written by hand with struct, metadata rewritten, arrays deleted from the OCDBT database.
All cases load in one child process (start-up, mostly importing JAX, would dominate one process
per case), which records for each: the outcome, the seconds it took and how far its resident
memory peaked above where it started (the kernel's peak counter is reset before each case). The
child runs the hostile cases under an address-space limit a few GiB above what the valid loads
left it at, and a per-case alarm, so a regression fails here instead of swapping or hanging.

Without the GGUF header scan, `gguf.GGUFReader` loops for ever on an array claiming 2**50
elements (reads past its memory map come back empty); the `hang` case below is that file.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

PEAK_LIMIT_MB = 300  # resident memory a case may add at its peak (a valid tiny load adds ~10 MB)
ORBAX_SECONDS = 20.0  # orbax opens a tensorstore database first: about a second
CASE_ALARM_SECONDS = 60
ADDRESS_SPACE_MARGIN = 3 << 30  # over the child's address space after the valid loads
CHILD_TIMEOUT = 600

ORBAX_MODULE = "jupyter_codegemma.backends.local.checkpoints.orbax_checks"


# The cases: what each breaks, and what the message must say.
from hostile_files import (BIG, MDATA, Case, delete_from_ocdbt, first_tensor, gguf_case, gguf_string,
                           gguf_with_array, gguf_written, hf_case, kaggle_case, metadata_with_unwritten_array,
                           patched, random_bytes, safetensors_parts, st_rewrite, tokenizer_boundary, write_bytes,
                           write_valid)

CASES = [
    # --- GGUF: counts, lengths, shapes and offsets past what the file holds
    Case("gguf-tensor-count", gguf_case(lambda g: patched(g.data, 8, "Q", 2**60)),
         ("the header claims 1152921504606846976 tensors", "truncated or corrupt")),
    Case("gguf-kv-count", gguf_case(lambda g: patched(g.data, 16, "Q", 2**60)),
         ("the header claims 1152921504606846976 metadata entries",)),
    Case("gguf-key-length", gguf_case(lambda g: patched(g.data, g.key_offset("general.architecture"), "Q", BIG)),
         ("the key of metadata entry 0", f"claims {BIG} bytes")),
    Case("gguf-string-value-length", gguf_case(lambda g: patched(g.data, g.kv["general.architecture"], "Q", BIG)),
         ("the string value of general.architecture", f"claims {BIG} bytes")),
    Case("gguf-string-array-length", gguf_case(lambda g: patched(g.data, g.kv["tokenizer.ggml.tokens"] + 4, "Q", BIG)),
         ("'tokenizer.ggml.tokens'", f"claims an array of {BIG} string elements")),
    Case("gguf-number-array-length", gguf_case(lambda g: patched(g.data, g.kv["tokenizer.ggml.scores"] + 4, "Q", BIG)),
         ("'tokenizer.ggml.scores'", f"claims an array of {BIG} float32 elements")),
    Case("gguf-array-element-length",
         gguf_case(lambda g: patched(g.data, g.kv["tokenizer.ggml.tokens"] + 12, "Q", BIG)),
         ("element 0 of tokenizer.ggml.tokens", f"claims {BIG} bytes")),
    Case("gguf-hang", gguf_case(lambda g: gguf_with_array(0, BIG, bytes(100))),  # GGUFReader loops for ever
         (f"claims an array of {BIG} uint8 elements",)),
    Case("gguf-array-over-cap", gguf_case(lambda g: gguf_with_array(0, 2**21, bytes(2**21))),
         ("claims an array of 2097152 elements", "more than the 1048576 this loader accepts")),
    Case("gguf-nested-array", gguf_case(lambda g: gguf_with_array(9, 1, struct.pack("<IQ", 0, 0))),
         ("is an array of arrays",)),
    Case("gguf-shape-overflow",
         gguf_case(lambda g: patched(patched(g.data, g.dims_offset("token_embd.weight"), "Q", 2**40),
                                     g.dims_offset("token_embd.weight") + 8, "Q", 2**40)),
         ("tensor token_embd.weight has shape 1099511627776x1099511627776", "overflows")),
    Case("gguf-shape-beyond-file",
         gguf_case(lambda g: patched(g.data, g.dims_offset("token_embd.weight") + 8, "Q", 2**30)),
         ("tensor token_embd.weight (64x1073741824, F32) needs 274877906944 bytes", "the file ends at byte")),
    Case("gguf-dimension-count", gguf_case(lambda g: patched(g.data, g.tensor_info["token_embd.weight"], "I", 1000)),
         ("tensor token_embd.weight claims 1000 dimensions",)),
    Case("gguf-data-offset",
         gguf_case(lambda g: patched(g.data, g.type_offset("blk.0.attn_q.weight") + 4, "Q", 2**40)),
         ("tensor blk.0.attn_q.weight has data offset 1099511627776", "beyond the end of the file")),
    Case("gguf-unknown-type", gguf_case(lambda g: patched(g.data, g.type_offset("token_embd.weight"), "I", 99)),
         ("tensor token_embd.weight has unknown ggml type 99",)),
    Case("gguf-truncated-data", gguf_case(lambda g: g.data[:-100]), ("the file ends at byte", "truncated")),
    Case("gguf-truncated-header", gguf_case(lambda g: g.data[:5000]), ("tokenizer.ggml.tokens", "truncated")),
    Case("gguf-wrong-magic", gguf_case(lambda g: b"GGML" + g.data[4:]), ("expected a GGUF file",)),
    Case("gguf-version-1", gguf_case(lambda g: patched(g.data, 4, "I", 1)),
         ("GGUF version 1 is not supported", "versions 2 and 3")),
    Case("gguf-version-99", gguf_case(lambda g: patched(g.data, 4, "I", 99)), ("GGUF version 99 is not supported",)),
    Case("gguf-duplicate-key",  # general.type and general.name have the same length
         gguf_case(lambda g: g.data.replace(gguf_string(b"general.type"), gguf_string(b"general.name"), 1)),
         ("metadata key 'general.name' appears twice",)),
    Case("gguf-alignment", gguf_written(metadata_overrides={"general.alignment": 3}),
         ("general.alignment is 3, not a power of two",)),
    Case("gguf-block-count", gguf_written(metadata_overrides={"gemma.block_count": 2**31}),
         ("gemma.block_count is 2147483648, but the file holds only 20 tensors",)),
    Case("gguf-head-count-zero", gguf_written(metadata_overrides={"gemma.attention.head_count": 0}),
         ("gemma.attention.head_count is 0; it must be positive",)),
    # --- tokenizer.model that is not a SentencePiece model
    Case("tokenizer-random", hf_case("tokenizer.model", lambda b, v: random_bytes(5000)),
         ("not a valid tokenizer.model", "not a SentencePiece model")),
    Case("tokenizer-empty", hf_case("tokenizer.model", lambda b, v: b""),
         ("not a valid tokenizer.model", "it has no pieces")),
    Case("tokenizer-text", hf_case("tokenizer.model", lambda b, v: b"this is a text file, not a model\n" * 40),
         ("not a valid tokenizer.model", "not a SentencePiece model")),
    Case("tokenizer-truncated-half", hf_case("tokenizer.model", lambda b, v: b[: len(b) // 2]),
         ("not a valid tokenizer.model", "not a SentencePiece model")),
    Case("tokenizer-truncated-after-pieces",  # still parses: every field but the pieces is gone
         hf_case("tokenizer.model", lambda b, v: b[: tokenizer_boundary(b, 300)]),
         ("not a valid tokenizer.model", "truncated", "no trainer_spec")),
    Case("tokenizer-truncated-end", hf_case("tokenizer.model", lambda b, v: b[:-10]),
         ("not a valid tokenizer.model", "not a SentencePiece model")),
    Case("tokenizer-huge", hf_case("tokenizer.model", sparse_size=300 << 20),
         ("not a valid tokenizer.model", "too many for a SentencePiece model")),
    # --- safetensors headers
    Case("safetensors-header-length-beyond-file",
         hf_case("model.safetensors", lambda b, v: patched(b, 0, "Q", len(b))),
         ("the header claims", "only", "follow its length")),
    Case("safetensors-header-length-huge", hf_case("model.safetensors", lambda b, v: patched(b, 0, "Q", 2**60)),
         (f"the header claims {2**60} bytes",)),
    Case("safetensors-header-not-json", hf_case("model.safetensors", lambda b, v: b[:8] + b"X" + b[9:]),
         ("the header is not JSON",)),
    Case("safetensors-header-list",
         hf_case("model.safetensors", lambda b, v: b[:8] + b"[]" + b" " * (struct.unpack_from("<Q", b)[0] - 2)
                 + safetensors_parts(b)[1]),
         ("the header is a JSON list, not an object",)),
    Case("safetensors-offsets-beyond-data",
         hf_case("model.safetensors", st_rewrite(lambda h: h[first_tensor(h)].update(data_offsets=[0, 10**12]))),
         ("data_offsets [0, 1000000000000], outside the file's", "bytes of data")),
    Case("safetensors-offsets-reversed",
         hf_case("model.safetensors", st_rewrite(lambda h: h[first_tensor(h)].update(
             data_offsets=h[first_tensor(h)]["data_offsets"][::-1]))),
         ("outside the file's",)),
    Case("safetensors-offsets-disagree-with-shape",
         hf_case("model.safetensors", st_rewrite(lambda h: h[first_tensor(h)].update(
             shape=[2 * d for d in h[first_tensor(h)]["shape"]]))),
         ("in the header has shape", "but data_offsets")),
    Case("safetensors-entry-not-object", hf_case("model.safetensors", st_rewrite(lambda h: h.update(x=5))),
         ("tensor 'x' in the header is described by a JSON int",)),
    Case("safetensors-truncated", hf_case("model.safetensors", lambda b, v: b[:-1000]),
         ("outside the file's", "truncated")),
    Case("config-layer-count",
         hf_case("config.json", lambda b, v: json.dumps({**json.loads(b), "num_hidden_layers": 10**12}).encode()),
         ("num_hidden_layers is 1000000000000, not a plausible layer count",)),
    # --- orbax (Kaggle): arrays listed but absent, corrupt metadata
    Case("orbax-array-never-written", kaggle_case(metadata_with_unwritten_array),
         ("parameter transformer/layer_0/attn/bogus/w is listed in _METADATA", "data is missing"),
         seconds=ORBAX_SECONDS),
    Case("orbax-array-deleted",
         kaggle_case(lambda d: delete_from_ocdbt(d, "transformer/layer_1/mlp/linear.w/", "transformer/layer_1/mlp/linear.w0")),
         ("parameter transformer/layer_1/mlp/linear/w is listed in _METADATA", "data is missing"),
         seconds=ORBAX_SECONDS),
    Case("orbax-array-chunks-deleted",
         kaggle_case(lambda d: delete_from_ocdbt(d, "transformer/final_norm.scale/0", "transformer/final_norm.scale/1")),
         ("parameter transformer/final_norm/scale is listed in _METADATA", "data is missing"),
         seconds=ORBAX_SECONDS),
    Case("orbax-metadata-random", kaggle_case(write_bytes(MDATA, random_bytes(4000, seed=1))),
         ("tree metadata is not JSON", "corrupt"), seconds=ORBAX_SECONDS),
    Case("orbax-metadata-truncated", kaggle_case(write_bytes(MDATA, lambda b: b[: len(b) // 2])),
         ("tree metadata is not JSON",), seconds=ORBAX_SECONDS),
    Case("orbax-metadata-empty-object", kaggle_case(write_bytes(MDATA, b"{}")),
         ("tree metadata has no tree_metadata object",), seconds=ORBAX_SECONDS),
    Case("orbax-metadata-bad-entry", kaggle_case(write_bytes(MDATA, b'{"tree_metadata": {"x": 1}}')),
         ("tree metadata has a malformed entry",), seconds=ORBAX_SECONDS),
    Case("orbax-manifest-random", kaggle_case(write_bytes("manifest.ocdbt", random_bytes(115, seed=2), named=False)),
         ("the OCDBT database", "cannot be read", "corrupt"), seconds=ORBAX_SECONDS),
    Case("orbax-declared-size", kaggle_case(lambda d: None), ("the arrays' metadata declare", "bytes on disk"),
         seconds=ORBAX_SECONDS, patch={ORBAX_MODULE: {"DECLARED_SIZE_FACTOR": 0, "DECLARED_SIZE_SLACK": 1000}}),
]

CONTROLS = ("gguf", "hf", "kaggle")  # the valid files load in the child, first


# ------------------------------------------------------------------------------------- the child


def _child(spec_path: str) -> None:
    """Load every path in the spec; write {id: outcome} as JSON next to it."""
    import gc
    import importlib
    import resource
    import signal
    import time
    import traceback

    for module in ("numpy", "jax", "gguf", "sentencepiece", "orbax.checkpoint", "tensorstore"):
        importlib.import_module(module)  # everything a load imports, before memory is measured

    from jupyter_codegemma.backends.errors import CheckpointError
    from jupyter_codegemma.backends.local.checkpoints import WeightsCache, load_checkpoint

    spec = json.loads(Path(spec_path).read_text())

    def status(field_name: str) -> int:  # kB
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        raise KeyError(field_name)

    def reset_peak() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM, the peak resident set size
            return True
        except OSError:
            return False

    class Timeout(BaseException):  # not caught by a loader's "except Exception"
        pass

    def alarm(signum, frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, alarm)

    def run(case: dict) -> dict:
        saved = {}
        for module, values in case.get("patch", {}).items():
            mod = importlib.import_module(module)
            for name, value in values.items():
                saved[(mod, name)] = getattr(mod, name)
                setattr(mod, name, value)
        gc.collect()
        rss_before = status("VmRSS")
        exact = reset_peak()
        peak_before = 0 if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        signal.alarm(CASE_ALARM_SECONDS)
        try:
            checkpoint = load_checkpoint(case["path"], cache=WeightsCache(case["cache"]))
            out = {"outcome": "loaded", "format": checkpoint.format}
            del checkpoint
        except CheckpointError as e:
            out = {"outcome": "CheckpointError", "message": str(e), "path": e.path,
                   "chained": e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__)}
        except Timeout:
            out = {"outcome": "timeout", "message": f"no answer in {CASE_ALARM_SECONDS} s"}
        except BaseException as e:  # noqa: BLE001 (a MemoryError under the limit, anything unexpected)
            out = {"outcome": type(e).__name__, "message": "".join(traceback.format_exception(e))[-3000:]}
        finally:
            signal.alarm(0)
            for (mod, name), value in saved.items():
                setattr(mod, name, value)
        out["seconds"] = time.perf_counter() - start
        if exact:
            out["peak_mb"] = (status("VmHWM") - rss_before) / 1024
        else:  # the peak since the process started: an upper bound only when it grew
            out["peak_mb"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(peak_before, rss_before)) / 1024
        out["exact_peak"] = exact
        return out

    results = {}
    for case in spec["controls"]:
        results[case["id"]] = run(case)
    # The valid loads have started orbax's and tensorstore's threads (each reserves address space):
    # from here on an allocation of a few GiB fails instead of succeeding.
    limit = status("VmSize") * 1024 + spec["address_space_margin"]
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    results["address_space_limit_mb"] = limit >> 20
    for case in spec["cases"]:
        results[case["id"]] = run(case)
    Path(spec["results"]).write_text(json.dumps(results, indent=1))


# ------------------------------------------------------------------------------------- fixtures and tests


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Write the valid files and every hostile case, then load them all in one child process."""
    import jupyter_codegemma

    root = tmp_path_factory.mktemp("hostile")
    valid = write_valid(root)
    cases, expected = [], {}
    for case in CASES:
        path, named = case.build(valid, case.id)
        cases.append({"id": case.id, "path": str(path), "cache": str(root / "caches" / case.id), "patch": case.patch})
        expected[case.id] = named
    controls = [{"id": f"valid-{name}", "path": str(getattr(valid, name)), "cache": str(root / "caches" / name)}
                for name in CONTROLS]
    spec_path = root / "spec.json"
    results_path = root / "results.json"
    spec_path.write_text(json.dumps({"controls": controls, "cases": cases, "results": str(results_path),
                                     "address_space_margin": ADDRESS_SPACE_MARGIN}))
    package_root = str(Path(jupyter_codegemma.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, __file__, str(spec_path)], env=env, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT, check=False)
    assert proc.returncode == 0 and results_path.is_file(), proc.stderr[-5000:]
    results = json.loads(results_path.read_text())
    return results, expected, proc.stderr


@pytest.mark.parametrize("name", CONTROLS)
def test_valid_files_load(outcomes, name):
    """The untouched tiny checkpoints load in the child: what the hostile cases are compared with."""
    result = outcomes[0][f"valid-{name}"]
    assert result["outcome"] == "loaded", result
    assert result["peak_mb"] < PEAK_LIMIT_MB, result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_file(outcomes, case):
    results, expected, _ = outcomes
    result = results[case.id]
    assert result["outcome"] == "CheckpointError", result
    message = result["message"]
    named = str(expected[case.id])
    assert result["path"] == named, (result["path"], named)
    assert message.startswith(f"cannot load model from {named}: "), message
    assert "\n" not in message and len(message) < 600, message  # one line, no traceback needed
    assert not result["chained"], "the error chains another exception (a traceback would show it)"
    for phrase in case.phrases:
        assert phrase in message, (phrase, message)
    assert result["seconds"] < case.seconds, result
    assert result["peak_mb"] < PEAK_LIMIT_MB, result


def test_no_stray_tracebacks(outcomes):
    """Nothing the loads printed is a traceback (orbax/tensorstore print some from their threads
    when a read fails inside them; the checks before orbax reads keep these cases out of it)."""
    assert "Traceback (most recent call last)" not in outcomes[2], outcomes[2][-3000:]


def test_orbax_error_lines_drop_the_tensorstore_spec():
    from jupyter_codegemma.backends.local.checkpoints.orbax_checks import one_line as _one_line

    error = ValueError('NOT_FOUND: Error opening "zarr" driver: Metadata at "a.w/.zarray" does not exist '
                       '[tensorstore_spec=\'{"context":{"cache_pool":{}},"driver":"zarr","shape":[2, 3]}\']\n'
                       '[source locations=\'tensorstore/driver/zarr/driver.cc:100\']')
    assert _one_line(error) == 'ValueError: NOT_FOUND: Error opening "zarr" driver: Metadata at "a.w/.zarray" does not exist'


if __name__ == "__main__":
    _child(sys.argv[1])
