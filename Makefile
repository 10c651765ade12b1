# ECE — two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast bench bench-quick loadtest lint browser-deps clean

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

bench: $(STAMP)
	$(PY) -m loadtests.bench $(BENCH_ARGS)

bench-quick: $(STAMP)
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

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .hypothesis
