# Two entry points (README): `make quickstart` and `make test`. Both create
# .venv/ on first use and reinstall only when setup.py changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(PY) launch.py --config=configs/quickstart.py --workdir=runs/quickstart

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV)
