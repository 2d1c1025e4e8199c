"""jupyter-codegemma: CodeGemma code models inside Jupyter, on a JAX runtime in the kernel.

Importing this package is cheap: JAX and the model load on first use.
"""

from ._version import __version__

__all__ = ["__version__"]
