"""The wheel, as README's `python -m pip install jupyter_codegemma-*.whl` installs it: built from this
checkout, installed (without its dependencies) into a scratch virtual environment, and holding what an
installation needs besides the code: the kernelspec, the JupyterLab extension and the HumanEval data with
its licence.

Never `pip install --prefix DIR` from the test environment here: pip then uninstalls the package from the
environment it runs in (the editable install of `make setup`) before installing into DIR."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_wheel_installs_the_kernelspec_the_extension_and_the_eval_data(tmp_path):
    # The build runs the package's build hook; a prebuilt extension (as after `make setup`) is used as is.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path / "dist")],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list((tmp_path / "dist").glob("jupyter_codegemma-*.whl"))
    assert len(wheels) == 1
    prefix = tmp_path / "venv"  # a bare environment of its own; pip --python installs into it from outside
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    installed = subprocess.run(["bash", "-c", f"{sys.executable} -m pip --python {prefix / 'bin' / 'python'} install "
                                "--no-deps jupyter_codegemma-*.whl"], cwd=tmp_path / "dist", capture_output=True,
                               text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "uninstall" not in installed.stdout.lower()  # the test environment's own install is untouched
    share = prefix / "share" / "jupyter"
    assert (share / "kernels" / "codegemma" / "kernel.json").is_file()
    assert (share / "labextensions" / "jupyter-codegemma" / "package.json").is_file()
    package = next(prefix.glob("lib/python*/site-packages/jupyter_codegemma"))
    data = package / "evaluation" / "data"
    assert sorted(p.name for p in data.glob("*.jsonl.gz")) == [
        "HumanEval-MultiLineInfilling.jsonl.gz", "HumanEval-RandomSpanInfillingLight.jsonl.gz",
        "HumanEval-SingleLineInfilling.jsonl.gz"]
    assert "MIT License" in (data / "LICENSE").read_text()
    assert (package / "kernel" / "spec" / "kernel.json").is_file()  # the copy `codegemma kernel install` writes from
    # The native kernels' sources: the check of the prebuilt library beside them (and of the wheel's
    # platform tag) is tests/test_wheel_kernels.py; g++ builds from the sources where it is missing.
    from jupyter_codegemma.backends.local import native as kernels, programs

    shipped = {p.name for p in (package / "backends" / "local" / "native").iterdir()}
    assert {p.name for p in (*kernels._SOURCES, *kernels._HEADERS)} <= shipped
    assert all((package / "backends" / "local" / source).is_file() for source in programs._SOURCES)
    from importlib.metadata import distribution

    assert Path(distribution("jupyter-codegemma").locate_file("")).resolve() != prefix.resolve()
