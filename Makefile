# One task runner. `make install` builds .venv; `make test` runs everything CI runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# npm packages of the Restate TypeScript SDK test app (tests/restate/ts); npm ci writes this file.
TS_DEPS := tests/restate/ts/node_modules/.package-lock.json
# ... and of the AWS durable execution SDK for JavaScript test app (tests/aws_durable_node).
DURABLE_NODE_DEPS := tests/aws_durable_node/node_modules/.package-lock.json

.PHONY: install run test lint typecheck importlint unit sim chaos scaleout aws-conformance durable-cluster tail-crash bench bench-compare bench-dynamo bench-lambda-cost bench-durable-fold bench-import clean system-deps

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(MAKE) -s system-deps
	touch $(STAMP)

# Debian packages the tests drive: headless Chromium for the UI test (tests/ui) and wrk for the
# benchmark smoke test. Best effort: without apt (or root) it says so and goes on; those tests
# then skip locally and fail in CI.
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	  command -v wrk >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -q && \
	   apt-get install -y -q --no-install-recommends chromium chromium-driver wrk) || \
	  echo "note: could not install chromium, chromium-driver and wrk; tests/ui and the bench smoke test need them"

# The Restate TypeScript SDK for tests/restate/test_ts_request_response.py, as pinned by its
# package-lock.json. Best effort: without npm it says so and goes on; those tests then skip
# locally and fail in CI.
$(TS_DEPS): tests/restate/ts/package-lock.json
	@command -v npm >/dev/null && \
	  npm ci --prefix tests/restate/ts --no-audit --no-fund --loglevel=error && touch $@ || \
	  echo "note: could not install tests/restate/ts's npm packages (node and npm needed); tests/restate/test_ts_request_response.py needs them"

$(DURABLE_NODE_DEPS): tests/aws_durable_node/package-lock.json
	@command -v npm >/dev/null && \
	  npm ci --prefix tests/aws_durable_node --no-audit --no-fund --loglevel=error && touch $@ || \
	  echo "note: could not install tests/aws_durable_node's npm packages (node and npm needed); tests/integration/test_aws_durable_node.py needs them"

install: $(STAMP) $(TS_DEPS) $(DURABLE_NODE_DEPS)

run: $(STAMP)
	$(BIN)/ritornello dev examples/app.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

importlint: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) $(TS_DEPS) $(DURABLE_NODE_DEPS)
	$(BIN)/pytest -q

test: lint typecheck importlint unit

# The reliability suite at full strength: 300 kill -9's of the orchestrator (12 in `make test`),
# the three-orchestrator takeover test on DynamoDB (moto; `make test` has the two-orchestrator
# one of tests/store/test_dynamodb_takeover.py), and a named limit across three orchestrators
# with its owner killed, at 1,000 invocations (100 in `make test`), and leases keeping time for
# 20 s under full load (`make lease-soak`: ten minutes) and a kill -9 in a three-orchestrator
# cluster re-running only what it interrupted.
chaos: $(STAMP) scaleout
	RITORNELLO_CHAOS_KILLS=300 $(BIN)/pytest tests/chaos -q -p no:randomly
	RITORNELLO_LIMITS_INVOCATIONS=1000 $(BIN)/pytest tests/integration/test_limits_cluster.py -q
	RITORNELLO_LEASE_TEST=1 RITORNELLO_CLUSTER_KILL=1 $(BIN)/pytest tests/integration/test_cluster.py -q -k "leases_keep_time or kill_9_in_a_cluster"

# AWS's durable-execution conformance requirements (vendored with their Python handlers) against
# `ritornello serve` + `ritornello lambda-emulator`, every suite (a few minutes; `make test` runs
# a fast subset). docs/aws-durable.md reports what passes and why the rest fails.
aws-conformance: $(STAMP)
	RITORNELLO_AWS_CONFORMANCE=all $(BIN)/pytest tests/aws_conformance -q

# AWS durable functions on two orchestrators (moto's DynamoDB), checkpoints forwarded to the
# leader: every test, the round-robin balancer and the no-secret cluster too (~40 s; `make
# test` runs the rest).
durable-cluster: $(STAMP)
	RITORNELLO_DURABLE_CLUSTER=all $(BIN)/pytest tests/integration/test_aws_durable_cluster.py -q

# Three orchestrators on one DynamoDB table (moto), one paused, one killed (~1 min).
# The orchestrator dies at four commits around a journal tail's move into a chunk (DynamoDB;
# one of them in `make test`).
tail-crash: $(STAMP)
	RITORNELLO_TAIL_CRASHES=all $(BIN)/pytest tests/store/test_dynamodb_tail_crash.py -q

scaleout: $(STAMP)
	RITORNELLO_SCALEOUT=1 $(BIN)/pytest tests/integration/test_scaleout.py -q -s

# Leases under full load for ten minutes (three orchestrators on moto, wrk on every ingress):
# no lapse, and each renewal's lateness, round trip and margin (docs/orchestrator.md). SOAK_S=N.
SOAK_S ?= 600
lease-soak: $(STAMP)
	$(BIN)/python -m tests.integration._soak --seconds $(SOAK_S)

# The deterministic simulation over many seeds (docs/simulation.md); SEEDS=A-B picks a range.
SEEDS ?= 0-50000
sim: $(STAMP)
	RITORNELLO_SIM_SEEDS=$(SEEDS) $(BIN)/pytest tests/sim/test_simulation.py::test_seeds -q -s --timeout=0

# The benchmark suite (docs/performance.md): seven workloads, one table, targets. ~20 min.
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS='--workloads greet,ten --duration 5'.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --runs 3 $(BENCH_ARGS)

# Two versions side by side (docs/performance.md, "Comparing two versions"): BASE's src/ and this
# tree's, the workloads alternating between them (ABBA). ~8 min at the defaults.
BASE ?= main
WORKLOADS ?= greet,ten,counter
RUNS ?= 3
bench-compare: $(STAMP)
	$(BIN)/python benchmarks/compare.py --base $(BASE) --workloads $(WORKLOADS) --runs $(RUNS) $(BENCH_ARGS)

# DynamoDB requests and request units per journaled step, priced (moto on loopback).
bench-dynamo: $(STAMP)
	$(BIN)/python benchmarks/dynamo_cost.py --invocations 50

# A step on the Lambda path, all told (Lambda requests and duration, DynamoDB units), for
# Ritornello's SDK and AWS's durable SDK, priced beside Step Functions and Lambda durable functions.
bench-lambda-cost: $(STAMP)
	$(BIN)/python benchmarks/lambda_cost.py --invocations 20

# An AWS durable function's checkpoints as its execution grows (100, 1,000, 4,000 operations):
# ms per checkpoint, main's src/ and this tree's side by side (docs/aws-durable.md). ~2 min.
bench-durable-fold: $(STAMP)
	$(BIN)/python benchmarks/durable_fold.py $(BENCH_ARGS)

# Ritornello and the Restate server 1.7 (npm, into /tmp/restate-server on first use) with the
# same restate-sdk endpoint, greet and ten, in a loopback-only network namespace (root). ~8 min.
# BENCH_ARGS passes options, e.g. make bench-restate BENCH_ARGS='--seconds 10 --clients 1,64'.
bench-restate: $(STAMP)
	$(BIN)/python benchmarks/restate_compare.py $(BENCH_ARGS)

bench-import: $(STAMP)
	$(BIN)/python benchmarks/import_time.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .ritornello .pytest_cache .mypy_cache .ruff_cache
