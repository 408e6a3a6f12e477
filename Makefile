# The two entry points README gives: `make pipeline` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
# torch is pinned so a CPU-only machine takes the CPU wheel, not several GB of CUDA packages
TORCH  ?= torch==2.13.0
SCALE  ?= quick
CORES  ?= all
BIN     = $(VENV)/bin

.PHONY: setup pipeline report test lint bench clean-smoke data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $@

pipeline: setup
	$(BIN)/snakemake --cores $(CORES) --config scale=$(SCALE)
	$(BIN)/snakemake --config scale=$(SCALE) --report results/$(SCALE)/report.html

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check repro tests bench
	$(BIN)/snakemake --lint

bench: setup
	$(BIN)/python bench/bench_engine.py

data: setup
	$(BIN)/python -m repro.data fetch
