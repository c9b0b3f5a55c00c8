PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench bench-race clean

$(BIN)/staystream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/staystream

run: install
	$(BIN)/staystream serve --seed-sample

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks.run

# staystream --store postgresql:// against the Go daemon (../shared/anchors/go-ingest), same PostgreSQL
bench-race: install
	$(BIN)/python -m benchmarks.race_go

clean:
	rm -rf $(VENV) var
