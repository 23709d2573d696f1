# The two commands (see README): `make run` and `make test`. Both set up everything first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)  ## local broker (unless KAFKA_BOOTSTRAP_SERVERS), one worker, sample traffic
	$(BIN)/clarion demo

test: lint $(STAMP)  ## lint, types, unit and integration tests (starts its own broker)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest -m integration

bench: $(STAMP)  ## the benchmarks; figures go in benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.latency
	$(BIN)/python -m benchmarks.burst
	$(BIN)/python -m benchmarks.aggregation
	$(BIN)/python -m benchmarks.delivery

clean:
	rm -rf $(VENV) var
