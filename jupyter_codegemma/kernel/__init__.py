"""Everything that runs inside IPython: the extension's wiring (extension.py), the `CodeGemma` settings,
the engine worker that owns the backend (worker.py), the comm the labextension talks to, the magics
and their prompts, the conversation commands (conversation/), and the kernelspec installer.

Importing it is cheap: the backend loads on the worker thread at first use.
"""
