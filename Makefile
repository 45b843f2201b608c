# Every target creates .venv on first use and reinstalls only when
# pyproject.toml changes, so a second run is fast.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
REPORT ?= skpapers-report
comma := ,

.PHONY: demo test lint format docs bench clean

demo: $(VENV)/.installed-plot-data
	$(BIN)/skpapers reproduce --quick --out $(REPORT)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(VENV)/.installed-docs
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_nmf.py
	$(BIN)/python benchmarks/bench_bn.py
	$(BIN)/python benchmarks/bench_rml.py
	$(BIN)/python benchmarks/bench_maskrcnn.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[$(subst -,$(comma),$*)]"
	touch $@

clean:
	rm -rf $(VENV) docs/_build docs/generated docs/auto_examples $(REPORT)
