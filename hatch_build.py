"""The wheel's build hook: compiles the native CPU kernels into the wheel, so that an installed
wheel runs them without a compiler on the user's machine.

The recipe (sources, flags, the g++ command) is `jupyter_codegemma/backends/local/native/build.py`,
loaded here by path: importing the package would import jax and the rest of the runtime. The
library lands in the wheel as `.../native/prebuilt/codegemma_kernels.so` with its stamp; the
runtime uses it when the stamp matches the sources the wheel also carries.

Only standard wheel builds on x86-64 Linux with g++ get the library; elsewhere (and for editable
installs) the build goes on without it, and the runtime falls back to g++ on first use, or to XLA.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NATIVE = Path("jupyter_codegemma", "backends", "local", "native")


def _load_recipe(root: Path):
    spec = importlib.util.spec_from_file_location("_codegemma_native_build", root / NATIVE / "build.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def _why_not_here(compiler: str) -> str:
    """Why this machine builds no kernels into the wheel ("" when it does)."""
    if not sys.platform.startswith("linux") or platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the kernels are for x86-64 Linux, this is {sys.platform} on {platform.machine()}"
    if shutil.which(compiler) is None:
        return f"{compiler} is not on PATH"
    return ""


class NativeKernelsHook(BuildHookInterface):
    PLUGIN_NAME = "native-kernels"

    def initialize(self, version: str, build_data: dict) -> None:
        # Editable installs run from the checkout, where the runtime's g++ fallback builds the kernels.
        if self.target_name != "wheel" or version == "editable":
            return
        recipe = _load_recipe(Path(self.root))
        why_not = _why_not_here(recipe.COMPILER)
        if why_not:
            print(f"jupyter-codegemma: no prebuilt native kernels in this wheel ({why_not}); "
                  "installations build them with g++ on first use, or run int8 on XLA")
            return
        import jax  # a build requirement: the XLA FFI headers
        import jaxlib

        self._scratch = tempfile.mkdtemp(prefix="codegemma-kernels-")
        library = recipe.compile_library(Path(self._scratch) / recipe.LIBRARY_NAME, jax.ffi.include_dir())
        stamp = recipe.write_stamp(library, jaxlib.__version__)
        inside = NATIVE / recipe.PREBUILT_DIR
        for path in (library, stamp):
            build_data["force_include"][str(path)] = (inside / path.name).as_posix()
        build_data["pure_python"] = False
        # The library does not use Python's C API (ctypes loads it), so one wheel serves every
        # Python 3 on this platform: py3-none-<platform> rather than the interpreter's own tag.
        build_data["tag"] = f"py3-none-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"
        print(f"jupyter-codegemma: native kernels compiled into the wheel (jaxlib {jaxlib.__version__})")

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
