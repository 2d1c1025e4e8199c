"""The "CodeGemma (JAX)" kernelspec: the shipped file, `codegemma kernel install`, and a kernel started from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def test_shipped_kernel_json_preloads_the_extension():
    spec = json.loads((ROOT / "kernel" / "kernel.json").read_text())
    assert spec["display_name"] == "CodeGemma (JAX)" and spec["language"] == "python"
    assert spec["argv"][:3] == ["python", "-m", "ipykernel_launcher"] and "{connection_file}" in spec["argv"]
    assert "--IPKernelApp.extensions=jupyter_codegemma" in spec["argv"]
    for size in (32, 64):
        png = (ROOT / "kernel" / f"logo-{size}x{size}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == size
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"share/jupyter/kernels/codegemma/kernel.json"' in pyproject


@pytest.fixture
def jupyter_env(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    env.pop("JUPYTER_PATH", None)
    return env


@pytest.mark.slow
def test_install_user_then_listed_and_a_kernel_answers_status(jupyter_env, tmp_path):
    run = lambda *args: subprocess.run(args, env=jupyter_env, capture_output=True, text=True, timeout=60)  # noqa: E731
    done = run(str(BIN / "codegemma"), "kernel", "install", "--user", "--name", "codegemma-test",
               "--display-name", "CodeGemma (test)", "--env", "JAX_PLATFORMS=cpu", "--env", "CODEGEMMA_TEST=1")
    assert done.returncode == 0, done.stderr
    listed = run(str(BIN / "jupyter"), "kernelspec", "list", "--json")
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert "codegemma-test" in specs
    spec = specs["codegemma-test"]
    assert spec["resource_dir"].startswith(str(tmp_path / "data"))
    assert spec["spec"]["display_name"] == "CodeGemma (test)"
    assert Path(spec["spec"]["argv"][0]).parent == BIN  # this environment's Python
    assert spec["spec"]["env"] == {"JAX_PLATFORMS": "cpu", "CODEGEMMA_TEST": "1"}
    assert sorted(p.name for p in Path(spec["resource_dir"]).iterdir()) == [
        "kernel.json", "logo-32x32.png", "logo-64x64.png"]

    from jupyter_client.kernelspec import KernelSpecManager

    from jupyter_codegemma.cli.kernel_client import KernelSession

    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "data" / "kernels")])
    with KernelSession("codegemma-test", kernel_spec_manager=ksm) as ks:  # no %load_ext anywhere
        comm_id = ks.open_comm()
        status = ks.status(comm_id)
        assert status["type"] == "status" and status["state"] in ("loading", "ready")
        reply, outputs = ks.execute("import os; print(os.environ['CODEGEMMA_TEST'], 'codegemma' in get_ipython().magics_manager.magics['cell'])")
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert text.split() == ["1", "True"]


def test_install_rejects_a_bad_env(jupyter_env):
    done = subprocess.run([str(BIN / "codegemma"), "kernel", "install", "--user", "--env", "NOEQUALS"],
                          env=jupyter_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "KEY=VALUE" in done.stderr
