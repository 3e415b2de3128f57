# OneScreen — `make run` starts the dashboard on the embedded database, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help deps install run run-ha seed seed-full test test-unit test-integration lint format bench bench-ingest bench-wall bench-load db-start db-stop db-status clean

help:
	@echo "make run    — install, start the embedded PostGIS, seed the demo city, serve on :8050"
	@echo "make run-ha — the same on the HA database (2 Patroni nodes, etcd, HAProxy), 2 ingest workers, 2 web servers"
	@echo "make test   — install and run the whole test suite (real PostGIS, started by the tests)"
	@echo "make lint   — ruff (style, docstrings, complexity) and mypy (strict for data/, ingest/)"
	@echo "make bench  — bench/platform.py (seed-scale figures; takes ~15 minutes)"

deps:
	./scripts/install-system-deps.sh

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: deps $(STAMP)

run: install
	$(PY) cli.py db upgrade
	$(PY) cli.py seed --scale demo --if-empty
	$(PY) cli.py serve

# no single point of failure on one machine: `python cli.py db crash-leader` (with
# ONESCREEN_HA=true) kills the leading node and the replica takes over while the city runs on
run-ha: export ONESCREEN_HA = true
run-ha: export ONESCREEN_INGEST_WORKERS = 2
run-ha: export ONESCREEN_WEB_INSTANCES = 2
run-ha: install
	$(PY) cli.py db upgrade
	$(PY) cli.py seed --scale demo --if-empty
	$(PY) cli.py serve

# the demo city into an empty database (a seeded one is left as it is; seed-full replaces it)
seed: install
	$(PY) cli.py seed --scale demo --if-empty

seed-full: install
	$(PY) cli.py seed --scale seed --reset

test: install
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

# ruff (style, docstrings, complexity), then mypy over the packages [tool.mypy] lists
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m bench.platform

bench-ingest: install
	$(PY) -m bench.ingest --scale seed

# 0.5 s refreshes: at 0.25 s a 2-core machine cannot answer in time and the rotation stalls
bench-wall: install
	$(PY) -m bench.wall_soak --cycles 2000 --refresh 0.5

# 10 → 200 viewers through Dash's callback endpoint, simulator at 10× (seeds the seed-scale city once)
bench-load: install
	$(PY) -m bench.load --reuse

db-start: $(STAMP)
	$(PY) cli.py db start

db-stop: $(STAMP)
	$(PY) cli.py db stop

db-status: $(STAMP)
	$(PY) cli.py db status

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
