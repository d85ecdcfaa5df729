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

# The project's main job on the built-in default: train configs/default.py (tiny Plücker DiT +
# tracking head + full objective on the synthetic dataset, built on first use) into $(DEMO_OUT),
# write a preview of the data it trained on, then use the checkpoint: generate a novel view of a
# test scene, probe which layers' attention carries correspondence, evaluate on the test split.
demo: $(RUNTIME_STAMP)
	$(PY) -m mvtrack_jax.train --config=configs/default.py --workdir=$(DEMO_OUT)
	$(PY) -m mvtrack_jax.data.preview --split train --index 0 --out $(DEMO_OUT)/data_preview
	$(PY) -m mvtrack_jax.generate --checkpoint $(DEMO_OUT) --reference dataset:test:0 --trajectory arc_left --out $(DEMO_OUT)/generate
	$(PY) -m mvtrack_jax.probe --checkpoint $(DEMO_OUT) --split test --out $(DEMO_OUT)/probe
	$(PY) -m mvtrack_jax.evaluate --checkpoint $(DEMO_OUT) --split test --out $(DEMO_OUT)/evaluate

# The whole default test suite on both cores (slow-marked tests are excluded; see test-all).
# XLA compiles are single-threaded, so two pytest workers halve the wall time; work stealing keeps
# one worker from finishing a long queue alone (7 min 18 s → 6 min 04 s on 2026-11-21).
PYTEST_WORKERS ?= 2
test: $(DEV_STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not slow" $(PYTEST_ARGS) tests

test-all: $(DEV_STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS) tests

# Speed benchmarks print figures (README "Performance" records them); nothing is asserted.
bench: $(RUNTIME_STAMP)
	$(PY) -m benchmarks.data_bench
	$(PY) -m benchmarks.dit_bench
	$(PY) -m mvtrack_jax.bench --config=configs/default.py --baseline=configs/default_diffusion_only.py

clean:
	rm -rf $(VENV) out .pytest_cache
