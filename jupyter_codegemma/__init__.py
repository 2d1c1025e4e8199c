"""jupyter-codegemma: CodeGemma code models inside Jupyter, on a JAX runtime in the kernel.

Importing this package is cheap: JAX and the model load on first use.

    %load_ext jupyter_codegemma      # the %%codegemma magics and the editor's completion service
"""

from ._version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def _jupyter_labextension_paths() -> list[dict]:
    """Where JupyterLab finds the prebuilt extension (labextension/ builds it into the package)."""
    return [{"src": "labextension", "dest": "jupyter-codegemma"}]


def load_ipython_extension(ip) -> None:
    from .kernel.extension import load

    load(ip)


def unload_ipython_extension(ip) -> None:
    from .kernel.extension import unload

    unload(ip)
