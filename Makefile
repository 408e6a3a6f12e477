# The two entry points README gives: `make pipeline` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
# torch is pinned so a CPU-only machine takes the CPU wheel, not several GB of CUDA packages
TORCH  ?= torch==2.13.0
SCALE  ?= quick
CORES  ?= all
BIN     = $(VENV)/bin

.PHONY: setup pipeline report test test-slow lint bench budget clean-smoke slurm-check report-check data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $@

pipeline: setup
	$(BIN)/snakemake --cores $(CORES) --config scale=$(SCALE)
	$(MAKE) --no-print-directory report

# Snakemake's HTML report of the results already there (trains nothing; `make pipeline` first)
report: setup
	@test -d results/$(SCALE) || { echo "no results/$(SCALE): run 'make pipeline SCALE=$(SCALE)' first" >&2; exit 1; }
	$(BIN)/snakemake --config scale=$(SCALE) --report results/$(SCALE)/report.html
	@echo "wrote results/$(SCALE)/report.html"

clean-smoke:
	rm -rf results/smoke figures/smoke

test: setup
	$(BIN)/pytest -q

# the fault-injection pipeline tests (SIGKILL mid-run, truncated run.json): CI runs them too
test-slow: setup
	$(BIN)/pytest -q -m slow

lint: setup
	$(BIN)/ruff check repro tests bench
	$(BIN)/snakemake --lint

bench: setup
	$(BIN)/python bench/bench_engine.py

# per-claim kernels / host ops / syncs per step on the meta device and the predicted seconds on
# one H100 -> bench/out/budget.csv; fails when a step syncs or the record exceeds 480 s (issue 15)
budget: setup
	$(BIN)/python bench/budget.py

# A real single-node SLURM (root, Debian): bring it up, run the smoke pipeline with
# --profile profiles/slurm (every claim a SLURM job), check the verdicts, tear it down.
slurm-check: setup
	VENV=$(VENV) bash profiles/slurm/local-cluster.sh all

# Snakemake's HTML report of a smoke run in headless Chromium: screenshots (PNG) and text checks
report-check: setup
	VENV=$(VENV) bash report/check_html.sh

# Fashion-MNIST's four IDX files into data/ from Debian's dataset-fashion-mnist, SHA-256 checked
data: setup
	$(BIN)/python -m repro.data fetch
