# clusterfeeds: `make run` and `make test` are the whole set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

.PHONY: install run test lint typecheck pytest demo bench bench-large bench-deps system-deps fuzz clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## The daemon on the shipped sources.toml, embedded SQLite, serving on 127.0.0.1:8080.
run: install
	$(BIN)/aggregator --config sources.toml run

## Debian packages the tests start for real (PostgreSQL, Chromium); installed when root with apt.
system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check aggregator tests bench scripts demo
	$(BIN)/ruff format --check aggregator tests bench scripts demo

typecheck: install
	$(BIN)/mypy

pytest: install system-deps
	$(BIN)/pytest -q

## Everything CI checks: lint, types, the whole test suite (with the independent feed checks).
test: lint typecheck pytest

## An offline demo: bundled example sites served on loopback, the daemon on http://127.0.0.1:8080/.
demo: install
	$(BIN)/python -m demo.run

## Benchmarks (never part of `make test`): small and medium workloads against their floors.
## newsboat, the benchmark's peer (installed when root with apt).
bench-deps:
	bash scripts/bench-deps.sh

bench: install bench-deps
	$(BIN)/python -m bench.run --workloads small,medium

bench-large: install bench-deps
	$(BIN)/python -m bench.run --workloads large

## Bounded fuzzing of every parser entry point.
fuzz: install
	$(BIN)/python -m tests.fuzz.run --seconds 60

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache data feeds/*.xml feeds/*.atom feeds/*.json feeds/*.ics
