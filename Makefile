# One task runner. `make install` builds .venv; `make test` runs everything CI runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck importlint unit bench bench-dynamo clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ritornello dev examples/app.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

importlint: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck importlint unit

bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python benchmarks/ingress.py --runs 3

# DynamoDB requests and request units per journaled step, priced (moto on loopback).
bench-dynamo: $(STAMP)
	$(BIN)/python benchmarks/dynamo_cost.py --invocations 50

clean:
	rm -rf $(VENV) .ritornello .pytest_cache .mypy_cache .ruff_cache
