# Two commands: `make benchmark` (default benchmark end to end) and `make test`.
# Both create .venv with the pinned stack on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: benchmark test test-slurm lint clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (found " + sys.version.split()[0] + "); run: make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, from its exact pin: a range admitting a newer torch pulls GBs of CUDA wheels.
	$(BIN)/pip install --quiet -c constraints.txt torch
	# scib from source: its wheel's LISI helper needs a newer glibc than many clusters have.
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt --no-binary scib
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# A method that fails does not stop the others; a second pass then builds the tables with
# the failed methods shown as failed (their failure records), instead of retrying them.
benchmark: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --keep-going || { \
	  echo "Some jobs failed (see above); building the tables with those methods marked as failed."; \
	  $(BIN)/snakemake --cores $(CORES) --keep-going --config report_failures=True; }
	@echo "Report: $(CURDIR)/results/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest

# Root only: installs Debian's slurm-wlm and munge when missing, starts a single-node SLURM
# (pids, logs, spool under a temporary folder), runs the tiny config through
# `--executor slurm --profile profiles/slurm` and through profiles/local, checks every job
# COMPLETED and the score tables equal, and stops the daemons by their pids (tests/slurm/run.sh;
# each step has its own limit, SLURM_TIMEOUT is the last resort).
SLURM_TIMEOUT ?= 3300
test-slurm: $(STAMP)
	timeout -s KILL $(SLURM_TIMEOUT) bash tests/slurm/run.sh

# ruff and snakefmt (settings in pyproject.toml) and Snakemake's own lint; `make test` runs the
# same (tests/workflow/test_lint.py, and test_workflow.py for snakemake --lint).
lint: $(STAMP)
	$(BIN)/ruff check genex_core workflow_scripts tests benchmarks
	$(BIN)/ruff format --check genex_core workflow_scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results/* .snakemake
