# Two commands matter: `make run` (set up and serve on the embedded SQLite default)
# and `make test` (set up, lint, type-check and run the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUF_VERSION := 1.75.0

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck buflint pytest proto proto-check bench clean

help:
	@echo "make run     set up .venv and serve on SQLite at 127.0.0.1:50051"
	@echo "make test    set up .venv with dev tools; ruff, mypy, buf lint, pytest"
	@echo "make proto   regenerate client/accolade/v1, the Connect handlers and the blocking client"
	@echo "make bench   run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.server-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	@touch $@ $(VENV)/.server-installed

# A server to try things with: unless you configure it (ACCOLADE_TRACK_EVENT_TYPES or
# ACCOLADE_CONFIG_FILE), it tracks every event type so that examples/ run as they are.
run: $(VENV)/.server-installed
	@if [ -z "$$ACCOLADE_TRACK_EVENT_TYPES$$ACCOLADE_CONFIG_FILE" ]; then \
	  echo 'make run: tracking every event type (ACCOLADE_TRACK_EVENT_TYPES=["*"])'; \
	  export ACCOLADE_TRACK_EVENT_TYPES='["*"]'; \
	fi; exec $(BIN)/accolade serve

test: $(VENV)/.dev-installed lint typecheck buflint pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

# buf comes from the npm registry; skipped (with a message) where npm is absent.
buflint:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -x .tools/node_modules/.bin/buf ] || npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION) >/dev/null; \
	  .tools/node_modules/.bin/buf lint && echo "buf lint: ok"; \
	else echo "buf lint: skipped (npm not found)"; fi

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

proto: $(VENV)/.dev-installed
	$(BIN)/python tools/gen_protos.py
	$(BIN)/python tools/unasync.py

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache build *.egg-info
