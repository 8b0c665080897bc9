# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test pytest lit bench bench-quick fuzz clean
BENCH_STAMP := $(VENV)/.installed-bench

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

# Benchmarks against jax.vmap: writes bench/results/latest.md and PNG plots.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --quick --name quick

# Thousands of generated programs against jax.vmap (with the per-family tally:
# op families, compositions, options, dtypes, sizes; two host devices so that
# mesh= is exercised) and thousands of mutated CLI inputs, split into shards
# run FUZZ_JOBS at a time (tests/fuzz_all.py); prints the merged tally, the
# CLI summaries, the wall and CPU time.
GEN_EXAMPLES ?= 5000
CLI_INPUTS ?= 5000
FUZZ_JOBS ?= 2
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_all.py $(GEN_EXAMPLES) $(CLI_INPUTS) $(FUZZ_JOBS)

clean:
	rm -rf $(VENV) build dist *.egg-info lit_tests/Output
