# Two commands matter: `make run` (set up and serve on the embedded SQLite default)
# and `make test` (set up, lint, type-check and run the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUF_VERSION := 1.75.0
# The console's htmx, vendored in server/accolade_server/console/static (see VENDORED.md there).
HTMX_VERSION ?= 4.0.1
CONSOLE_STATIC := server/accolade_server/console/static

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck buflint pytest proto proto-check bench vendor clean

help:
	@echo "make run     set up .venv and serve on SQLite at 127.0.0.1:50051"
	@echo "make test    set up .venv with dev tools; ruff, mypy, buf lint, pytest (PYTEST_WORKERS=2)"
	@echo "make proto   regenerate client/accolade/v1, the Connect handlers and the blocking client"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make vendor  refresh the console's vendored htmx from npm (HTMX_VERSION=$(HTMX_VERSION))"

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

# Two pytest runs: everything but tests/faults on PYTEST_WORKERS xdist workers (each with its
# own PostgreSQL schema, SQLite file, ports and temporary directory; worksteal keeps both busy
# to the end, where whole files on one worker left a long tail), then tests/faults alone and
# serially, since it restarts PostgreSQL under every other test.
PYTEST_WORKERS ?= 2
pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal --ignore=tests/faults $(PYTEST_ARGS)
	$(BIN)/pytest -n 0 tests/faults $(PYTEST_ARGS)

proto: $(VENV)/.dev-installed
	$(BIN)/python tools/gen_protos.py
	$(BIN)/python tools/unasync.py

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

# Needs npm only here: the server ships the copied file and never needs Node.
vendor:
	rm -rf .tools/htmx && mkdir -p .tools/htmx
	cd .tools/htmx && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null && tar xzf htmx.org-$(HTMX_VERSION).tgz
	cp .tools/htmx/package/dist/htmx.min.js $(CONSOLE_STATIC)/htmx.min.js
	cp .tools/htmx/package/LICENSE $(CONSOLE_STATIC)/htmx.LICENSE
	@echo "htmx $(HTMX_VERSION): sha256 $$(sha256sum $(CONSOLE_STATIC)/htmx.min.js | cut -c1-64); update $(CONSOLE_STATIC)/VENDORED.md"

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache build *.egg-info
