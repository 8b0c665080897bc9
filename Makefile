# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test pytest lit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m stablehlo_batch.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/lit -q lit_tests

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2

lit: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/lit -v lit_tests

clean:
	rm -rf $(VENV) build *.egg-info lit_tests/Output
