# mvtrack_jax: every target installs what it needs into .venv/ (Python 3.11) first, so a fresh
# clone on a fresh machine needs nothing but python3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=
DEMO_OUT ?= out/demo

.PHONY: demo test test-all bench venv clean

# (Re)create the venv when it is missing or was made by another Python than 3.11.
$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"need Python 3.11, got {sys.version}"'
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "stale .venv (not Python 3.11): recreating"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

venv: $(DEV_STAMP)

# The project's main job on the built-in default dataset.
demo: $(RUNTIME_STAMP)
	$(PY) -m mvtrack_jax.data.preview --split train --index 0 --out $(DEMO_OUT)

# The whole default test suite (slow-marked tests are excluded; see test-all).
test: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

test-all: $(DEV_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

bench: $(RUNTIME_STAMP)
	$(PY) -m benchmarks.data_bench

clean:
	rm -rf $(VENV) out .pytest_cache
