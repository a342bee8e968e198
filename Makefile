# Two commands do the whole set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Label Studio (the server people label in) has Django pins of its own: it gets a virtual environment of its
# own, and the server tests start it from there. Its database is migrated once here into a template the
# tests copy: migrating a fresh one costs minutes on 2 cores, starting from the copy seconds.
LS_VENV ?= .venv-labelstudio
LS_VERSION ?= 1.23.2
LS_TEMPLATE := $(LS_VENV)/template/label_studio.sqlite3

.PHONY: install labelstudio demo test lint bench-smoke clean

$(BIN)/loopline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

install: $(BIN)/loopline

$(LS_TEMPLATE):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q "label-studio==$(LS_VERSION)"
	rm -rf $(LS_VENV)/template.partial && mkdir -p $(LS_VENV)/template.partial/home
	env -u PORT -u HOST HOME="$(abspath $(LS_VENV))/template.partial/home" LATEST_VERSION_CHECK=false \
	  COLLECT_ANALYTICS=false SENTRY_DSN= $(LS_VENV)/bin/label-studio version --data-dir $(LS_VENV)/template.partial/data >/dev/null
	mkdir -p $(dir $@) && mv $(LS_VENV)/template.partial/data/label_studio.sqlite3 $@
	rm -rf $(LS_VENV)/template.partial

labelstudio: $(LS_TEMPLATE)  ## Label Studio in $(LS_VENV) with a migrated template database (server tests)

demo: install  ## install, then run the demo on the embedded default (SQLite MLflow, ephemeral Prefect)
	$(BIN)/loopline demo

test: install  ## lint and type-check, then every test: unit, integration, servers, benchmark smoke, one-shot CLI
	$(BIN)/ruff check src flows tests benchmarks
	$(BIN)/mypy src flows
	$(BIN)/pytest -n 2 --dist loadgroup --durations=15  # two workers on 2 cores; groups: tests/conftest.py

lint: install
	$(BIN)/ruff check src flows tests benchmarks
	$(BIN)/ruff format --check src flows tests benchmarks
	$(BIN)/mypy src flows

clean:
	rm -rf .loopline
