# dialback — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
# Stamp files: an install step runs again only when pyproject.toml changes. `run` needs the
# runtime only; every development target needs the dev tools as well (which include it).
DEPS_HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(DEPS_HASH)
STAMP := $(VENV)/.installed-dev-$(DEPS_HASH)
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check
PYTEST_ARGS ?=
# `make test` runs the suite on this many worker processes (each starts its own servers; a module
# stays on one worker, so its module-scoped fixtures are built once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: help run test test-unit lint fmt docs system-deps clean venv
.PHONY: bench bench-quick bench-edge chaos soak ui-screenshots
# `make chaos` / `make soak` parameters (shorter runs: e.g. `make chaos KILLS=3 CALLBACKS=1000`,
# `make soak DURATION=120`); SOAK_RATE=0 measures the maximum first and soaks at half of it;
# FAULTS=kill,postgres narrows the campaign to some faults; NOTE="..." labels the figures.
KILLS ?= 12
CALLBACKS ?= 10000
CHAOS_RATE ?= 50
DOWN ?= 10
DURATION ?= 1800
SOAK_RATE ?= 0

help: ## Show the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(RUN_STAMP): pyproject.toml
	@scripts/ensure-python.sh $(VENV)
	$(PIP_INSTALL) -e .
	@rm -f $(VENV)/.installed-run-* && touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh $(VENV)
	$(PIP_INSTALL) -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(RUN_STAMP) $(STAMP)

venv: $(STAMP) ## Create .venv and install dialback with its dev tools (once)

run: $(RUN_STAMP) ## Start dialback on the embedded default (SQLite in ./var, no Redis, demo tenant; runtime only)
	DIALBACK_DEMO=true $(VENV)/bin/dialback serve

system-deps: ## Install missing Debian packages the tests need (as root), or say which
	@scripts/ensure-system-deps.sh

test: $(STAMP) system-deps ## Run the whole test suite against throwaway PostgreSQL and Redis servers
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test-unit: $(STAMP) ## The fast unit tier only (seconds; no servers, no system packages)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check src tests testbed bench
	$(VENV)/bin/ruff format --check src tests testbed bench
	$(VENV)/bin/mypy

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format src tests testbed bench
	$(VENV)/bin/ruff check --fix src tests testbed bench

bench: $(STAMP) system-deps ## Benchmark suite (~30-40 min with 10 M rows of history, needs wrk): bench/results/latest.json + docs/performance.md
	@bench/ensure-wrk.sh
	$(PY) -m bench --write-docs

bench-quick: $(STAMP) system-deps ## Quick benchmark (< 3 min; 100k rows instead of 1M), same outputs
	@bench/ensure-wrk.sh
	$(PY) -m bench --quick --write-docs

bench-edge: $(STAMP) system-deps ## HTTP servers side by side (~3 min, wrk): limits + creates/s, bench/results/edge.json
	@bench/ensure-wrk.sh
	$(PIP_INSTALL) granian==2.8.9 hypercorn==0.18.0
	$(PY) -m bench.edge

chaos: $(STAMP) system-deps ## Long fault campaign (>= 10 kills, >= 10,000 callbacks, each fault; ~8 min): docs/reliability.md
	$(PY) -m testbed.chaos chaos --kills $(KILLS) --callbacks $(CALLBACKS) --rate $(CHAOS_RATE) --down $(DOWN) $(if $(FAULTS),--faults $(FAULTS)) --docs docs/reliability.md $(if $(NOTE),--note "$(NOTE)")

soak: $(STAMP) system-deps ## Soak at half the measured maximum create rate (DURATION=1800 s): RSS, p99, errors + plot in docs/reliability.md
	$(PY) -m testbed.chaos soak --duration $(DURATION) --rate $(SOAK_RATE) --docs docs/reliability.md $(if $(NOTE),--note "$(NOTE)")

docs: $(STAMP) ## Regenerate docs/metrics.md (metric catalogue) and the role matrix of docs/security.md
	$(PY) -m dialback.observability.docs docs/metrics.md
	$(PY) -m dialback.access_docs docs/security.md

ui-screenshots: $(STAMP) system-deps ## Run the browser tests and copy their screenshots into docs/ui/ (docs/ui.md)
	$(VENV)/bin/pytest -q tests/ui
	@mkdir -p docs/ui
	@for f in $$(grep -o 'ui/[a-z0-9-]*\.png' docs/ui.md | sort -u); do \
	  cp test-artifacts/screenshots/$$(basename $$f) docs/$$f || exit 1; done
	@echo "copied the screenshots docs/ui.md shows into docs/ui/"

clean: ## Remove the virtualenv, caches and the embedded database
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
