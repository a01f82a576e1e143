# cirno-im — the two set-up commands are `make up` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up cluster test lint typecheck layers pytest venv openapi proto bench bench-profile bench-quick clean

$(STAMP): pyproject.toml
	@echo "make: creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "make: installing cirno-im and its dev tools into $(VENV) (the first time takes a minute or two)"
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@echo "make: $(VENV) is ready"
	touch $(STAMP)

venv: $(STAMP)

## Run the all-in-one (control plane, one logic node, one gateway) on the embedded default.
up: venv
	$(BIN)/cirno up

## Run the scale-out recipe (docs/operations.md): a 3-master Redis Cluster, the MySQL at
## CIRNO_MYSQL_URL (default mysql://root@127.0.0.1:3306/cirno), a control plane, 3 logic
## nodes and 2 gateways. CLUSTER_ARGS='--ws-ports 9000,9002 ...' changes ports.
cluster: venv
	$(BIN)/cirno cluster $(CLUSTER_ARGS)

## Lint, type-check, check the layering and run the whole test suite.
test: venv lint typecheck layers pytest

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy .

## The import contracts in pyproject.toml ([tool.importlinter]): which package may import which.
layers: venv
	$(BIN)/lint-imports --no-cache

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

## Regenerate openapi/openapi.json and the protobuf modules (tests fail when they drift).
openapi: venv
	$(BIN)/python -m control_plane.openapi

proto: venv
	$(BIN)/python -m data_plane.wire.generate

## Benchmarks (docs/benchmarks.md): 1:1 and group chat, idle connections, logins and a
## new device's catch-up on the bare relay baseline, the all-in-one (SQLite) and MySQL +
## Redis, first unpinned, then pinned (server on one core, load generator on the other);
## JSON in bench/results/, tables from `python -m bench.report`. Needs MySQL and Redis on
## localhost (CIRNO_BENCH_MYSQL_URL, CIRNO_BENCH_REDIS_URL) or BENCH_ARGS='--targets relay,sqlite'.
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.run --pinned $(BENCH_ARGS)
	$(BIN)/python -m bench.report

## Where each server process spends its CPU at saturation (py-spy, pinned): 1:1 chat and
## logins on the all-in-one; summaries and raw stacks in bench/results/profile/.
bench-profile: venv
	$(BIN)/python -m bench.profile --workload chat
	$(BIN)/python -m bench.profile --workload logins

bench-quick: venv
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)
	$(BIN)/python -m bench.run --quick --pinned $(BENCH_ARGS)
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .hypothesis
