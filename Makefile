# Two commands on a fresh machine: `make run` (set up, then the whole pipeline) and
# `make test` (set up, then the test suite). Everything installs from pyproject.toml pinned by
# constraints.txt; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# No network at run time: the encoder loads from site-packages, telemetry stays off.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export FEAST_USAGE := False
export DVC_NO_ANALYTICS := 1
PYTEST_ARGS ?=

SERVE_PORT ?= 8000

.PHONY: setup run test test-fast lint feast-plan airflow serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(VENV)/bin/pip install --quiet --constraint constraints.txt --editable ".[dev,bench]"
	touch $@

run: setup
	dvc repro
	@echo
	@sed -n '/^| task/,$$p' reports/metrics.md | sed '/^## Every metric/,$$d'
	@echo
	@echo "Metrics:       reports/metrics.md (every metric; dvc metrics show)"
	@echo "Data docs:     reports/data_docs/index.html"
	@echo "Model:         models/challenger/"
	@echo "Plots:         dvc plots show  ->  dvc_plots/index.html (curves, comparison)"

# The suite on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time (module
# fixtures and the order within a file stay as written). Most of the slow tests' time is spent
# waiting on Airflow, DVC and uvicorn child processes, so two workers on two cores overlap it.
TEST_WORKERS ?= 2

test: setup
	bash scripts/ensure_test_deps.sh
	pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: setup
	pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	ruff check .
	ruff format --check .

feast-plan: setup
	mtlrec feast-plan --repo feature_repo

# The Airflow UI for this checkout on http://localhost:8080 (AIRFLOW_PORT=... to move it):
# api-server, scheduler, dag-processor and triggerer; see scripts/airflow.sh.
airflow: setup
	bash scripts/airflow.sh

# The production model behind POST /rank on http://localhost:$(SERVE_PORT) (after `make run`).
serve: setup
	mtlrec serve --port $(SERVE_PORT)

clean:
	rm -rf data models metrics reports dvc_plots .dvc/tmp .dvc/cache
