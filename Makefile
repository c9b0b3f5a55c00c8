PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install system run lint test fuzz bench bench-race bench-scaled bench-overload clean

$(BIN)/staystream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/staystream

# system packages the tests use (promtool, chromium), from Debian when missing
system:
	sh scripts/setup-system.sh

run: install
	$(BIN)/staystream serve --seed-sample

# ruff (lint + import order) over everything, mypy --strict over the package (pyproject.toml)
lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy

# test files in 2 processes (each file's module fixtures stay in one): most tests wait on real servers
test: install system lint
	$(BIN)/pytest -n 2 --dist loadfile

# hypothesis-drawn event bodies, OTA/Expedia/iCal documents and searches (5 x 16,000), then
# schemathesis over every /openapi.json operation (4,000 cases each): counts printed, fails on any 5xx
fuzz: install
	$(BIN)/python tests/fuzz.py --examples 16000 --openapi-examples 4000

# everything: the embedded service (issues 2-4), the web pages (issue 14), then PostgreSQL against the Go daemon and the
# scaled mode (issue 5); each part also runs alone (below, and benchmarks.run <scenario>)
bench: install
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.web_bench
	$(BIN)/python -m benchmarks.race_go
	$(BIN)/python -m benchmarks.scaled_bench

# staystream --store postgresql:// against the Go daemon (../shared/anchors/go-ingest), same PostgreSQL
bench-race: install
	$(BIN)/python -m benchmarks.race_go

# scaled mode (3 NATS servers, PostgreSQL, applier, 1-2 ingest nodes): throughput, latency, sync cost;
# then a watch's alert latency across three nodes against one embedded node
bench-scaled: install
	$(BIN)/python -m benchmarks.scaled_bench
	$(BIN)/python -m benchmarks.watches_scaled

# 10x a credential's write rate for 60 s with idle, half-sent and stalled sockets (docs/security.md)
bench-overload: install
	$(BIN)/python -m benchmarks.overload

clean:
	rm -rf $(VENV) var
