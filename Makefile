# The two commands a new user needs: `make run` (the whole pipeline on the embedded simulator)
# and `make test` (the whole test suite). Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run run-window test lint lock dashboard docs soak bench scale-out clean

install: $(STAMP)

# The three pinned sets, where each runs: the runtime (the Airflow image), the dashboard (its own image) and
# the dev tools; a developer runs everything, so all three. The sets agree on every version they share.
LOCKS := requirements.txt requirements-dashboard.txt requirements-dev.txt

# Re-installs whenever a lock file changes; uv comes pinned from the registry like everything else.
$(STAMP): $(LOCKS) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt -r requirements-dashboard.txt -r requirements-dev.txt
	# The project's own package, editable: `letsjobit` imports from any directory, and its provider entry
	# point registers the `letsjobit` connection type with Airflow.
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

run: install
	$(BIN)/python -m letsjobit.devtools.run

# After `make run`, on the same LETSJOBIT_DATA_DIR: one scheduled-style window run (the DAG's default
# look-back and look-ahead around the latest daily interval) and what it changed in the lake.
run-window: install
	$(BIN)/python -m letsjobit.devtools.run --window

test: install
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Recompile the pinned sets after editing requirements*.in. In this order: the dashboard set is constrained
# to the runtime lock, the dev set to both.
lock: install
	$(BIN)/uv pip compile requirements.in -p 3.11 -q --no-header -o requirements.txt
	$(BIN)/uv pip compile requirements-dashboard.in -p 3.11 -q --no-header -o requirements-dashboard.txt
	$(BIN)/uv pip compile requirements-dev.in -p 3.11 -q --no-header -o requirements-dev.txt

# The KPI dashboard over the warehouse: http://127.0.0.1:8501. DASHBOARD_ADDRESS=0.0.0.0 serves the network,
# which it refuses without a sign-in (.streamlit/secrets.toml [auth], or DASHBOARD_ARGS=--behind-auth-proxy).
DASHBOARD_ADDRESS ?= 127.0.0.1
DASHBOARD_PORT ?= 8501
DASHBOARD_ARGS ?=
dashboard: install
	$(BIN)/python -m letsjobit.dashboard --address $(DASHBOARD_ADDRESS) --port $(DASHBOARD_PORT) $(DASHBOARD_ARGS)

# dbt's documentation of the warehouse (every model, column, test, the lineage graph) as one HTML file that
# opens from disk: $(LETSJOBIT_DATA_DIR)/docs/warehouse.html (data/docs/ by default).
docs: install
	$(BIN)/python -m letsjobit.warehouse.build docs

clean:
	rm -rf .airflow data .pytest_cache

# The pipeline on CeleryExecutor with PostgreSQL and Redis (installed from apt if missing), two workers.
.PHONY: distributed
distributed: install
	$(BIN)/python -m letsjobit.devtools.distributed $(DISTRIBUTED_ARGS)

# The pipeline on two "hosts" of this machine: two workers with separate data dirs, the lake on a local
# S3-compatible server (moto), the key's budget in Redis; a full refresh then a window run through the
# REST API, checked against the simulator's truth. Last line: SCALE-OUT PASS|FAIL with the figures.
SCALE_OUT_ARGS ?=
scale-out: install
	$(BIN)/python -m letsjobit.devtools.scale_out $(SCALE_OUT_ARGS)

# The long reliability soak: the fuzz tests with many more examples, then 12 DAG runs through faults,
# drift, SIGKILLs and concurrent readers, checked against the simulator's truth (~10 min). The table it
# prints is also written to tests/output/soak.md; SOAK_ARGS="--runs 24 --kills 8" for a longer one.
SOAK_ARGS ?=
soak: install
	LETSJOBIT_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest tests/reliability -m "not airflow" -n 2 -q
	$(BIN)/python -m tests.reliability.soak --table-out tests/output/soak.md $(SOAK_ARGS)

# Benchmarks (scripts that print figures; not tests): extraction vs dlt, flattening 1M visits, the
# warehouse build at 1M and 10M visits. About 30 minutes in all on 2 cores; BENCH_QUICK=1 for a smaller run.
bench: install
	$(BIN)/python bench/bench_extract.py $(if $(BENCH_QUICK),--quick,)
	$(BIN)/python bench/bench_flatten.py --visits $(if $(BENCH_QUICK),100000,1000000)
	$(BIN)/python bench/bench_warehouse.py --visits $(if $(BENCH_QUICK),100000,1000000 10000000)
