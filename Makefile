# Two commands do the whole set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test lint bench-smoke clean

$(BIN)/loopline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

install: $(BIN)/loopline

demo: install  ## install, then run the demo on the embedded default (SQLite MLflow, ephemeral Prefect)
	$(BIN)/loopline demo

test: install  ## lint and type-check, then unit + integration + server tests, then the one-shot CLI tests
	$(BIN)/ruff check src flows tests benchmarks
	$(BIN)/mypy src flows
	$(BIN)/pytest --ignore=tests/cli --durations=10
	$(BIN)/pytest tests/cli -n 2 --dist loadgroup --durations=10  # each test runs commands as processes: two at a time on 2 cores

lint: install
	$(BIN)/ruff check src flows tests benchmarks
	$(BIN)/ruff format --check src flows tests benchmarks
	$(BIN)/mypy src flows

clean:
	rm -rf .loopline
