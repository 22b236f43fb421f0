# semst: the two commands of the README, plus developer conveniences.
#   make demo   create .venv if missing, install semst, run the built-in demo, say where the results are
#   make test   create .venv if missing, install semst with the dev extras, run the test suite
#
# torch is installed first and pinned (TORCH), so that pip never swaps in a multi-GB CUDA build on a
# CPU-only machine. On a GPU machine pick your build, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_OUT ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test test-all quality style help-docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install --quiet $(TORCH)
	touch $@

$(VENV)/.installed-demo: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[demo,tensorboard]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[dev]"
	# A real CycleGAN checkpoint for the interop tests. --no-deps: vintagify's own requirements (torchvision,
	# an unpinned torch) would replace the pinned CPU torch; semst reads its weights file, never imports it.
	$(PIP) install --quiet --no-deps vintagify==0.1.2
	# Reference FID/KID implementations for the exact-value tests of semst.evaluation (fid, kid, inception).
	# --no-deps for the same reason: both require torchvision; the tests import only modules that do not.
	$(PIP) install --quiet --no-deps torch-fidelity==0.4.0 torchmetrics==1.9.0
	touch $@

demo: $(VENV)/.installed-demo
	$(VENV)/bin/semst demo --out $(DEMO_OUT)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

quality: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

style: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

help-docs: $(VENV)/.installed-dev
	$(PY) -m semst.cli.helpdoc cli > docs/cli.md
	$(PY) -m semst.cli.helpdoc config > docs/configuration.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
