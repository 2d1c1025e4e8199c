"""The wheel carries the native kernels: built from this checkout (hatch_build.py compiles them),
installed into a fresh virtual environment, and run there with no compiler on PATH.

The fresh environment sees this one's packages (jax, numpy, ...) through a .pth file naming this
environment's site-packages: a plain path line, so this environment's own .pth files (its editable
install of jupyter_codegemma) are not processed and the package imported is the wheel's. The .pth
file is written after the wheel is installed: before, pip would see this environment's
jupyter_codegemma as installed there and uninstall it.

Skipped where the wheel cannot carry kernels (not x86-64 Linux, or no g++ to build them) or they
cannot run (no AVX2 and FMA), and where hatchling is missing (the build runs without isolation,
from this environment: `make setup` installs it with the test extras)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jupyter_codegemma.backends.local import native as kernels
from jupyter_codegemma.backends.local.native import build as recipe
from test_int8 import _block_formula, _cpu_flags

ROOT = Path(__file__).parents[1]
PREBUILT = f"jupyter_codegemma/backends/local/native/{recipe.PREBUILT_DIR}"

X86_64_LINUX = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")

pytestmark = [
    pytest.mark.skipif(not X86_64_LINUX, reason="the wheel carries native kernels on x86-64 Linux only"),
    pytest.mark.skipif(shutil.which(recipe.COMPILER) is None, reason=f"no {recipe.COMPILER} to build them with"),
    pytest.mark.skipif(not {"avx2", "fma"} <= _cpu_flags(), reason="this CPU runs none of the kernels (no AVX2 and FMA)"),
]

# Runs in the fresh environment: loads the kernels, multiplies, and says what it used.
CHILD = """
import json, sys
import numpy as np
from jupyter_codegemma.backends.local import native

enabled = native.enable_native()
rng = np.random.RandomState(7)
q, scale = native.quantize_rows(rng.randn(1001, 640).astype(np.float32))
x = rng.randn(5, 640).astype(np.float32)
np.savez(sys.argv[1], x=x, q=q, scale=scale, native=np.asarray(native.int8_matmul(x, q, scale)),
         xla=np.asarray(native.int8_matmul(x, q, scale, isa="xla")))
print(json.dumps({"enabled": enabled, "isa": native.isa_class(), "from": native.kernels_from(),
                  "why": native.native_unavailable_reason(), "package": native.__file__}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel built from this checkout and installed into a fresh environment: its paths."""
    pytest.importorskip("hatchling", reason="the wheel is built without isolation: hatchling must be installed here")
    tmp = tmp_path_factory.mktemp("wheel_kernels")
    # No isolation and no index: this environment's jax gives the FFI headers, nothing is downloaded.
    # The built JupyterLab extension is used as is (skip-if-exists), so no Node runs.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("jupyter_codegemma-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "uninstall" not in installed.stdout.lower()  # this environment's own install is untouched
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "main_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return {"wheel": wheel, "venv": venv, "python": python, "package": site / "jupyter_codegemma", "tmp": tmp}


def _run_without_a_compiler(installed: dict, name: str) -> tuple[dict, dict]:
    """The child in the fresh environment, with an empty PATH and an empty cache: its report and arrays."""
    scratch = installed["tmp"] / name
    (scratch / "bin").mkdir(parents=True)  # the whole PATH: nothing in it, so no g++, cc or c++
    (scratch / "cache").mkdir()
    # Without the switches that take kernels away (make bench's ISA=avx2 sets one).
    dropped = {"PATH", "PYTHONPATH", "PYTHONHOME", "CODEGEMMA_NATIVE_KERNELS", *kernels.SWITCHES.values()}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(PATH=str(scratch / "bin"), CODEGEMMA_CACHE_DIR=str(scratch / "cache"), JAX_PLATFORMS="cpu")
    # -I and a working directory outside the checkout: nothing puts /work/main's package on sys.path.
    child = subprocess.run([str(installed["python"]), "-I", "-c", CHILD, str(scratch / "out.npz")], cwd=scratch,
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert not any((scratch / "cache").rglob("*.so")), "the child compiled kernels of its own"
    with np.load(scratch / "out.npz") as arrays:
        return report, dict(arrays)


def test_the_wheel_carries_the_kernels_and_is_tagged_for_its_platform(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = set(wheel.namelist())
        (metadata,) = (n for n in names if n.endswith(".dist-info/WHEEL"))
        tags = wheel.read(metadata).decode()
    assert {f"{PREBUILT}/{recipe.LIBRARY_NAME}", f"{PREBUILT}/{recipe.STAMP_NAME}"} <= names
    assert "Root-Is-Purelib: false" in tags
    assert installed["wheel"].name.endswith(f"-py3-none-{sysconfig.get_platform().replace('-', '_')}.whl")
    stamp = json.loads((installed["package"] / "backends/local/native/prebuilt" / recipe.STAMP_NAME).read_text())
    assert stamp["source_key"] == recipe.source_key() and stamp["jaxlib"]


def test_the_installed_wheel_runs_its_kernels_without_a_compiler(installed):
    report, arrays = _run_without_a_compiler(installed, "from_wheel")
    assert report["enabled"], report["why"]
    assert report["isa"] != "xla" and report["from"] == "wheel", report
    package = Path(report["package"]).resolve()
    assert package.is_relative_to(installed["venv"].resolve()) and not package.is_relative_to(ROOT.resolve())
    # The kernel's product: the int8 block formula up to summation order, and the XLA fallback up to
    # the kernels' rounding of the activations to int8 (as tests/test_int8.py compares them).
    expected = _block_formula(arrays["x"], arrays["q"], arrays["scale"])
    np.testing.assert_allclose(arrays["native"], expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    assert np.abs(arrays["native"] - arrays["xla"]).max() <= 0.02 * np.abs(arrays["xla"]).max()


def test_kernels_from_other_sources_are_passed_over_with_the_reason(installed):
    """A stamp that does not match the sources beside it (edited after the build): the library is
    not used, and with no g++ either, int8 runs on XLA and the reason says both."""
    stamp = installed["package"] / "backends/local/native/prebuilt" / recipe.STAMP_NAME
    original = stamp.read_text()
    stamp.write_text(json.dumps({**json.loads(original), "source_key": "0" * 16}))
    try:
        report, arrays = _run_without_a_compiler(installed, "other_sources")
    finally:
        stamp.write_text(original)
    assert not report["enabled"] and report["isa"] == "xla" and report["from"] == "none"
    assert "built from other sources" in report["why"] and "g++ is not on PATH" in report["why"], report["why"]
    np.testing.assert_array_equal(arrays["native"], arrays["xla"])
