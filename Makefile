# jupyter-codegemma — every target does its own set-up into .venv.
#   make lab     JupyterLab on notebooks/, with the default model installed
#   make test    every test suite
#   make fuzz    the kernel's comm fuzzed with 10 000 generated messages (hypothesis)
#   make demo    a headless demo with timings
#   make bench   keystroke-to-suggestion latency and speed, against llama.cpp (ISA=avx2: as on an AVX2-only laptop)
#   make docs    the documentation site (MkDocs) into build/site
#   make llama-cpp   llama-cpp-python (reference engine, test server), built once into ~/.cache

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup llama-cpp lab test fuzz demo bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# The JupyterLab extension's sources: the install builds it (jlpm, through the package's build hook).
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/src/*/*.ts labextension/schema/*.json labextension/style/*) \
                  labextension/package.json labextension/yarn.lock

# Reinstall when the package's requirements or the extension's sources change. pip's cache makes this
# quick the second time. The old extension build goes first, so the install rebuilds it from the sources.
$(STAMP): pyproject.toml $(LABEXT_SOURCES) | $(BIN)/python
	rm -rf jupyter_codegemma/labextension
	$(BIN)/python -m pip install -e ".[test,lab]"
	@# Bytecode for the package, as pip writes it for what it installs; an editable install has none,
	@# and an environment with PYTHONDONTWRITEBYTECODE never writes it: every kernel start would compile ours.
	$(BIN)/python -m compileall -q jupyter_codegemma > /dev/null
	@# An editable install does not write the wheel's shared data: install the "CodeGemma (JAX)"
	@# kernelspec (the one the notebooks name) into the venv explicitly.
	$(BIN)/codegemma kernel install
	@# Assemble and convert the default model once (later loads read the converted weights).
	$(BIN)/codegemma info
	touch $(STAMP)

# Debian's chromium for the browser tests (tests/test_labextension.py): Playwright cannot download one here.
CHROMIUM := /usr/bin/chromium
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

setup: $(STAMP) $(CHROMIUM)

# llama-cpp-python: the reference engine (bench/) and the shared server of the remote-backend tests.
# Built from source once into a cache outside the repo (a clean venv reinstalls from there in seconds).
# Without -mno-amx-* its native build emits AMX instructions, which CPUs that have AMX but do not let
# programs use it (this project's development machines) refuse: the first evaluation dies with a
# segmentation fault. --no-cache-dir keeps pip from reusing a wheel built without the flags.
LLAMA_CPP_VERSION := 0.3.36
WHEELS    ?= $(HOME)/.cache/jupyter-codegemma/wheels
LLAMA_CPP := $(VENV)/.llama_cpp
NO_AMX    := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_WHEEL = $(firstword $(wildcard $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl))

$(LLAMA_CPP): | $(STAMP)
	@if [ -z "$(LLAMA_WHEEL)" ]; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) from source once (a few minutes) into $(WHEELS)"; \
	  CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" $(BIN)/python -m pip wheel --no-cache-dir --no-deps \
	    -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION) || exit 1; \
	fi
	$(BIN)/python -m pip install "$$(ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -n 1)[server]"
	touch $(LLAMA_CPP)

llama-cpp: $(LLAMA_CPP)

# The same llama-cpp-python for an AVX2-only CPU (no AVX-512, no AMX; `make bench ISA=avx2`), built once
# into its own wheel folder and installed beside the default one, into a folder bench/latency.py's
# processes find first (PYTHONPATH).
LLAMA_AVX2_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                    -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF \
                    -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_AVX2_DIR   := $(VENV)/llama_cpp_avx2
LLAMA_AVX2_WHEEL  = $(firstword $(wildcard $(WHEELS)/avx2/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl))

$(LLAMA_AVX2_DIR): | $(LLAMA_CPP)
	@if [ -z "$(LLAMA_AVX2_WHEEL)" ]; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) for AVX2 from source once (a few minutes) into $(WHEELS)/avx2"; \
	  CMAKE_ARGS="$(LLAMA_AVX2_CMAKE)" $(BIN)/python -m pip wheel --no-cache-dir --no-deps \
	    -w $(WHEELS)/avx2 llama-cpp-python==$(LLAMA_CPP_VERSION) || exit 1; \
	fi
	$(BIN)/python -m pip install --no-deps --target $(LLAMA_AVX2_DIR) \
	  "$$(ls $(WHEELS)/avx2/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -n 1)"

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

# The documentation site: docs/ and the notebooks (not executed); --strict turns a broken link or anchor,
# or a page missing from the nav, into an error (mkdocs.yml's validation settings).
MKDOCS_BUILD := $(BIN)/mkdocs build --strict --site-dir build/site

test: setup $(LLAMA_CPP)
	$(MKDOCS_BUILD)
	$(BIN)/python -m pytest
	@# Every notebook, top to bottom on the default model, on the "CodeGemma (JAX)" kernel (nbval).
	$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks/

# The comm fuzz test (tests/test_comm_fuzz.py) at full volume: make test runs it with 1 000 messages.
fuzz: setup
	CODEGEMMA_FUZZ_MESSAGES=10000 $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_comm_fuzz.py

# A real kernel started with jupyter_client: completions over the comm as JupyterLab sends them, one %%codegemma cell.
demo: setup
	$(BIN)/codegemma kernel demo

docs: $(STAMP)
	$(MKDOCS_BUILD)

# Keystroke to suggestion and the speed figures, against llama.cpp on the same file (bench/latency.py).
# ISA=avx2 emulates an AVX2-only laptop on this machine, both engines side by side in one run: our
# kernels restricted to AVX2 (CODEGEMMA_AVX512=0, which also turns AMX off), XLA limited to AVX2,
# and llama-cpp-python built without AVX-512.
ISA ?=
ifeq ($(ISA),avx2)
BENCH_DEPS := $(LLAMA_AVX2_DIR)
BENCH_ENV  := CODEGEMMA_AVX512=0 XLA_FLAGS=--xla_cpu_max_isa=AVX2 PYTHONPATH=$(abspath $(LLAMA_AVX2_DIR))
else ifneq ($(ISA),)
$(error ISA must be avx2 or empty (the machine's own), got $(ISA))
endif

bench: setup $(LLAMA_CPP) $(BENCH_DEPS)
	$(BENCH_ENV) $(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info jupyter_codegemma/labextension labextension/lib \
	  labextension/node_modules labextension/tsconfig.tsbuildinfo
