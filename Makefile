# Two commands: `make run` and `make test`. Both bootstrap .venv from a fresh clone.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH ?=

.PHONY: run test bench chaos lint typecheck format check-migrations venv clean

$(STAMP): requirements.txt
	@test -x $(PY) || { base=$$(scripts/find-python) && echo "creating $(VENV) with $$base" && $$base -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m tradingsite.stack run

# The type check runs first, so CI (`.ci/run` calls `make test`) fails on a type error too.
test: $(STAMP)
	$(VENV)/bin/mypy
	DJANGO_SETTINGS_MODULE=tradingsite.settings.test $(PY) -m tradingsite.stack exec --redis-db 1 -- \
		$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	DJANGO_SETTINGS_MODULE=tradingsite.settings.test $(PY) -m tradingsite.stack exec --redis-db 2 -- \
		$(PY) -m bench $(BENCH)

# The reliability (chaos) test at scale: CHAOS_SCALE=5 replays 5 × the candles and signals of the form
# `make test` runs, with over 500 injected faults (docs/processes.md#reliability).
CHAOS_SCALE ?= 5
chaos: $(STAMP)
	CHAOS_SCALE=$(CHAOS_SCALE) DJANGO_SETTINGS_MODULE=tradingsite.settings.test $(PY) -m tradingsite.stack exec \
		--redis-db 3 -- $(PY) -m pytest -s $(PYTEST_ARGS) positions/tests/test_reliability.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# mypy with django-stubs (configured in pyproject.toml); needs no database or Redis, cache in .mypy_cache
typecheck: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .ruff_cache .mypy_cache
