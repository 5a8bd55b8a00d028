# Two commands do all the set-up: `make serve` and `make test`. Both create .venv, install the
# pinned packages, and fetch + verify the models; each step is skipped when already done.

ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
STAMP = $(VENV)/.installed-$(EXTRAS)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup models browser servers clients test lint serve bench bench-halo bench-memory bench-load constraints clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "alphacut needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# Verifies what is present (no network) and fetches only what is missing or corrupt.
models: setup
	$(BIN)/alphacut models install

# Debian's Chromium, for the web page's end-to-end tests (no browser download).
browser:
	@scripts/install-chromium

# Debian's PostgreSQL and Redis, for the shared-storage tests (started by the tests).
servers:
	@scripts/install-servers

# remove.bg's npm client (pinned by its package-lock.json), for the compatibility tests.
clients:
	@scripts/install-node-clients

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: models browser servers clients lint
	$(BIN)/pytest

# A whole fleet on this machine (PostgreSQL, S3 (moto), Redis with a password, 2 workers, 2 API
# replicas on loopback; state in $(FLEET_DIR), a folder of its own: scripts/fleet refuses an
# empty one, the checkout and any folder it did not make, and `down` removes only what its
# state.json lists), and the fleet test suites run against it. `make test` already runs them
# against a fleet of Redis and workers it starts itself; this adds the shared database and
# bucket of scripts/fleet (about 2 minutes): run it before a release.
FLEET_DIR ?= var/fleet

fleet-up: models servers
	ALPHACUT_FLEET_DIR='$(FLEET_DIR)' scripts/fleet up

fleet-down:
	ALPHACUT_FLEET_DIR='$(FLEET_DIR)' scripts/fleet down

test-fleet: models servers
	@ALPHACUT_FLEET_DIR='$(FLEET_DIR)' scripts/fleet up
	@ALPHACUT_TEST_FLEET='$(FLEET_DIR)/state.json' $(BIN)/pytest tests/fleet/test_script_fleet.py \
		tests/fleet/test_api_on_fleet.py tests/fleet/test_removebg_on_fleet.py \
		tests/fleet/test_broker_auth.py tests/backends/test_stalls.py; status=$$?; \
		ALPHACUT_FLEET_DIR='$(FLEET_DIR)' scripts/fleet down; exit $$status

# Starts the HTTP service on http://127.0.0.1:8000 (state in ./var; on the first start it
# creates an API key and prints it with a ready-to-paste curl example).
serve: models
	$(BIN)/alphacut serve $(SERVE_ARGS)

bench:
	@$(MAKE) --no-print-directory models EXTRAS=dev,bench
	$(BIN)/python bench/engine.py

# How much of the old background stays in soft edges, with and without refine=edges.
bench-halo: models
	$(BIN)/python bench/halo.py

# Peak memory and time per pixel of every operation and removal (the service's cost estimates).
bench-memory: models
	$(BIN)/python bench/memory.py

# The service under load (about 15 minutes): throughput, latency percentiles, RSS.
bench-load: models
	$(BIN)/python bench/load.py

# alphacut against rembg 2.0.86 side by side (HTTP, folders, one photo, start-up, RSS): issue
# 14's targets table (about 20 minutes; COMPARE_ARGS=--quick: about 2).
.PHONY: bench-compare
bench-compare:
	@$(MAKE) --no-print-directory models EXTRAS=dev,bench
	$(BIN)/python bench/compare.py $(COMPARE_ARGS)

# Re-pin every transitive dependency after changing pyproject.toml.
constraints: | $(BIN)/python
	$(PIP) install -e '.[dev,bench]'
	{ echo "# Every package version the project installs, direct and transitive (pip install -c)."; \
	  echo "# Regenerate: make constraints (after changing pyproject.toml)."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vi '^alphacut'; } > constraints.txt

# This checkout's venv and tool caches, wherever make runs from; a VENV= given on the command
# line is removed only if it is a virtual environment (it holds pyvenv.cfg), never a folder
# that merely has that name.
clean:
	@cd '$(ROOT)' && if [ -f '$(VENV)/pyvenv.cfg' ] && [ ! -L '$(VENV)' ]; then rm -rf -- '$(VENV)'; \
		else echo "$(VENV) left alone: not a virtual environment (no pyvenv.cfg) or a link"; fi
	cd '$(ROOT)' && rm -rf -- .mypy_cache .ruff_cache .pytest_cache
