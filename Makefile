# dialback — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help run test test-unit lint fmt docs system-deps clean venv
.PHONY: bench bench-quick

help: ## Show the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP) ## Create .venv and install dialback with its dev tools (once)

run: $(STAMP) ## Start dialback on the embedded default (SQLite in ./var, no Redis, demo tenant)
	DIALBACK_DEMO=true $(VENV)/bin/dialback serve

system-deps: ## Install missing Debian packages the tests need (as root), or say which
	@scripts/ensure-system-deps.sh

test: $(STAMP) system-deps ## Run the whole test suite against throwaway PostgreSQL and Redis servers
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Run the fast unit tier (no servers, seconds)
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check src tests testbed bench
	$(VENV)/bin/ruff format --check src tests testbed bench
	$(VENV)/bin/mypy

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format src tests testbed bench
	$(VENV)/bin/ruff check --fix src tests testbed bench

bench: $(STAMP) system-deps ## Benchmark suite (~8-10 min, needs wrk): bench/results/latest.json + docs/performance.md
	@bench/ensure-wrk.sh
	$(PY) -m bench --write-docs

bench-quick: $(STAMP) system-deps ## Quick benchmark (< 2 min; 100k rows instead of 1M), same outputs
	@bench/ensure-wrk.sh
	$(PY) -m bench --quick --write-docs

docs: $(STAMP) ## Regenerate docs/metrics.md from the metric catalogue
	$(PY) -m dialback.observability.docs docs/metrics.md

clean: ## Remove the virtualenv, caches and the embedded database
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
