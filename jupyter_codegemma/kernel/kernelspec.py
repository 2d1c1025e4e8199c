"""The "CodeGemma (JAX)" kernelspec: ipykernel with `jupyter_codegemma` pre-loaded.

The spec lives in `kernel/` (kernel.json + logos). The wheel installs it as
`share/jupyter/kernels/codegemma` and also carries a copy inside the package, from which
`codegemma kernel install` writes variants (another name, environment variables such as
`JAX_PLATFORMS=tpu`), pointing at this environment's Python.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

DEFAULT_NAME = "codegemma"
DEFAULT_DISPLAY_NAME = "CodeGemma (JAX)"


def spec_dir() -> Path:
    """Where kernel.json and the logos are: in the wheel's package copy, or a source checkout's kernel/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "spec", here.parent.parent / "kernel",
                      Path(sys.prefix) / "share" / "jupyter" / "kernels" / DEFAULT_NAME):
        if (candidate / "kernel.json").is_file():
            return candidate
    raise FileNotFoundError("the CodeGemma kernelspec (kernel.json) is missing from this installation")


def kernel_json(*, display_name: str = DEFAULT_DISPLAY_NAME, env: dict[str, str] | None = None,
                python: str | None = None) -> dict:
    spec = json.loads((spec_dir() / "kernel.json").read_text(encoding="utf-8"))
    spec["argv"][0] = python or sys.executable
    spec["display_name"] = display_name
    if env:
        spec["env"] = {**spec.get("env", {}), **env}
    return spec


def install(*, name: str = DEFAULT_NAME, display_name: str = DEFAULT_DISPLAY_NAME, env: dict[str, str] | None = None,
            user: bool = False, prefix: str | None = None) -> str:
    """Write the kernelspec with jupyter_client; returns the directory it went to.

    Neither `user` nor `prefix`: this environment (sys.prefix), where the wheel installs the default spec.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / name
        target.mkdir()
        for logo in spec_dir().glob("logo-*.png"):
            shutil.copy(logo, target / logo.name)
        spec = kernel_json(display_name=display_name, env=env)
        (target / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        return KernelSpecManager().install_kernel_spec(str(target), kernel_name=name, user=user, prefix=prefix)


def parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env expects KEY=VALUE, got {item!r}")
        env[key.strip()] = value
    return env
