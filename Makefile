# ECE — two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast bench bench-quick loadtest lint browser-deps vendor-charts clean

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 13), f"Python 3.13 needed, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

run: $(STAMP)
	$(VENV)/bin/ece serve

# Debian's Chromium for the browser test (Playwright's own browser download is not used).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: lint browser-deps
	node --test tests/js/
	$(PY) -m pytest -q

test-fast: $(TEST_STAMP)
	node --test tests/js/
	$(PY) -m pytest -q -m "not browser and not slow"

bench: $(TEST_STAMP)
	$(PY) -m loadtests.bench $(BENCH_ARGS)

bench-quick: $(TEST_STAMP)
	$(PY) -m loadtests.bench --quick

LOCUST_HOST ?= http://127.0.0.1:8080
LOCUST_USERS ?= 50
LOCUST_TIME ?= 60s
loadtest: $(TEST_STAMP)
	$(VENV)/bin/locust -f loadtests/locustfile.py --headless --host $(LOCUST_HOST) \
	  -u $(LOCUST_USERS) -r 10 -t $(LOCUST_TIME) --only-summary \
	  --html loadtests/results/locust.html --csv loadtests/results/locust

# ruff everywhere; mypy strictly on market/, storage/ and actors/ (see pyproject.toml).
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# TradingView's lightweight-charts (Apache-2.0), vendored for the web UI's charts: its
# standalone ES module (no imports, no bundler), licence, typings (the API of the pinned
# version) and VERSION. `make vendor-charts` refreshes it from npm; bump CHARTS_VERSION to
# upgrade. No node_modules anywhere: the package is packed into a temp dir and copied.
CHARTS_VERSION := 5.2.1
CHARTS_DIR := gateway/static/vendor/lightweight-charts
vendor-charts:
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  (cd "$$tmp" && npm pack --silent lightweight-charts@$(CHARTS_VERSION) >/dev/null && tar xzf lightweight-charts-$(CHARTS_VERSION).tgz); \
	  mkdir -p $(CHARTS_DIR); \
	  cp "$$tmp/package/dist/lightweight-charts.standalone.production.mjs" "$$tmp/package/dist/typings.d.ts" \
	     "$$tmp/package/LICENSE" $(CHARTS_DIR)/; \
	  echo "lightweight-charts $(CHARTS_VERSION)" > $(CHARTS_DIR)/VERSION; \
	  echo "vendored lightweight-charts $(CHARTS_VERSION) into $(CHARTS_DIR)"

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .hypothesis
