# jupyter-codegemma — every target does its own set-up into .venv.
#   make lab     JupyterLab on notebooks/, with the default model installed
#   make test    every test suite
#   make demo    a headless demo with timings
#   make bench   the runtime benchmark

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup lab test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Reinstall when the package's requirements change. pip's cache makes this quick the second time.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[test,lab]"
	@# Assemble and convert the default model once (later loads read the converted weights).
	$(BIN)/codegemma info
	touch $(STAMP)

setup: $(STAMP)

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

test: setup
	$(BIN)/python -m pytest

# A real kernel started with jupyter_client: completions over the comm as JupyterLab sends them, one %%codegemma cell.
demo: setup
	$(BIN)/codegemma kernel demo

bench: setup
	$(BIN)/python bench/runtime.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
