# The two commands (see README): `make run` and `make test`. Both set up everything first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint unit stages integration bench clean chromium kcat soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)  ## local broker (unless KAFKA_BOOTSTRAP_SERVERS), one worker, sample traffic
	$(BIN)/clarion demo

# Two pytest processes (pytest-xdist), whole modules each, sharing one broker: the
# integration tests mostly wait on the broker, windows and workers, not on the CPU.
test: lint chromium kcat $(STAMP)  ## lint, types, unit and integration tests (starts its own broker)
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: chromium $(STAMP)
	$(BIN)/pytest tests/unit

stages: $(STAMP)  ## each stage's agent in-process: memory tables, no broker (seconds)
	$(BIN)/pytest tests/stages

integration: chromium kcat $(STAMP)
	$(BIN)/pytest -m integration

# The kill -9, outage and rebalance tests (pytest -m soak, listed in tests/integration/conftest.py)
# SOAK_RUNS times in a row at full size (CLARION_DRILL_SCALE=full; `make test` runs them quick),
# each test beside one busy loop per core (CLARION_SOAK_HOG=1). Per
# run: pass or fail and the figures the tests print; whole logs in var/soak/.
SOAK_RUNS ?= 5
SOAK_FIGURES := crash: lost|outage: |rebalance: [0-9]+ deliveries|failover: |kill -9 mid-window:|three workers|like windows|came back|cpu hog:|[0-9]+ (passed|failed|skipped)
soak: $(STAMP)  ## the crash/outage/rebalance tests SOAK_RUNS (5) times beside a CPU hog
	@mkdir -p var/soak; passed=0; \
	for i in $$(seq 1 $(SOAK_RUNS)); do \
	  log=var/soak/run-$$i.log; \
	  if CLARION_SOAK_HOG=1 CLARION_DRILL_SCALE=full $(BIN)/pytest -m soak tests/integration -s -p no:cacheprovider \
	    --basetemp=var/soak/run-$$i \
	    >$$log 2>&1; then verdict=pass; passed=$$((passed + 1)); else verdict=FAIL; fi; \
	  echo "soak run $$i/$(SOAK_RUNS): $$verdict (log: $$log)"; \
	  grep -aE '$(SOAK_FIGURES)' $$log | sed 's/^/    /'; \
	done; \
	echo "soak: $$passed of $(SOAK_RUNS) runs passed"; test $$passed -eq $(SOAK_RUNS)

bench: $(STAMP)  ## the benchmarks; figures go in benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.latency
	$(BIN)/python -m benchmarks.burst
	$(BIN)/python -m benchmarks.aggregation
	$(BIN)/python -m benchmarks.delivery
	$(BIN)/python -m benchmarks.gateway
	$(BIN)/python -m benchmarks.fanout
	$(BIN)/python -m benchmarks.email_batch
	$(BIN)/python -m benchmarks.idle

# The inbox page's browser test drives Debian's chromium through Playwright (never a
# Playwright browser download). Installed once if missing; without apt-get (or root) it says
# how to install it, and that test skips.
CLARION_CHROMIUM ?= /usr/bin/chromium
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n) env DEBIAN_FRONTEND=noninteractive apt-get -q
chromium:
	@if [ -x "$(CLARION_CHROMIUM)" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && \
	  { $(APT) install -y chromium || { $(APT) update && $(APT) install -y chromium; }; }; then :; \
	else echo "chromium: not installed and apt-get could not install it. Install Chromium" \
	  "(Debian/Ubuntu: sudo apt-get install chromium) and set CLARION_CHROMIUM to its path;" \
	  "until then the inbox page's browser tests skip."; fi

# Tests produce as a foreign client with Debian's kcat (librdkafka's CLI, its CRC32 default
# partitioner; tests/integration/kcat.py). Installed once if missing, like chromium; without
# it those tests skip.
kcat:
	@if command -v kcat >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && \
	  { $(APT) install -y kcat || { $(APT) update && $(APT) install -y kcat; }; }; then :; \
	else echo "kcat: not installed and apt-get could not install it. Install kcat" \
	  "(Debian/Ubuntu: sudo apt-get install kcat) or set CLARION_KCAT to its path;" \
	  "until then the tests that produce with kcat skip."; fi

clean:
	rm -rf $(VENV) var
