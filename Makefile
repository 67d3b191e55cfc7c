# Two commands do all the set-up on a fresh machine:
#   make demo   -- create .venv, install, meta-train MAML on sinusoids (no data needed)
#   make test   -- create .venv, install, run the test suite
# TORCH_SPEC pins the torch build pip installs when the venv has none; the default takes
# a CPU wheel where one is provided locally. Override it, e.g. TORCH_SPEC='torch>=2.8'.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test test-slow lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python scripts/train_supervised.py --preset sinusoid-demo --k-shot 5 --out-dir $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -n auto

test-slow: install
	$(BIN)/python -m pytest -n auto -m slow

lint: install
	$(BIN)/ruff check metarl envs supervised scripts tests
	$(BIN)/mypy
