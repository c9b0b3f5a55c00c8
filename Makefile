PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean

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

clean:
	rm -rf $(VENV) var
