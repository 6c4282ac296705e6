# lambdalake — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
# Fuzz targets run for FUZZTIME each in `make test` (.ci/fuzz): one line per
# target, ./package:FuzzName. A listed target that does not exist fails `make fuzz`.
FUZZ_TARGETS := \
	./schemas:FuzzDecode \
	./schemas:FuzzParseTimestamp \
	./schemas:FuzzParseDimValue \
	./schemas:FuzzParseDecimal \
	./schemas:FuzzSumRule \
	./speed:FuzzDims \
	./speed:FuzzSplitField \
	./internal/hll:FuzzUnmarshal \
	./batch/views:FuzzParseState \
	./serving:FuzzParseQuery
FUZZTIME ?= 5s
# niceness of the fuzz build beside the tests in `make test`: 0 shares the CPU
# evenly (best on a machine other work also loads); raise it on a dedicated
# machine to give the tests priority
FUZZ_NICE ?= 0
export GO FUZZTIME
TEST_TIMEOUT ?= 18m
BENCHES := decode speed compact recompute serve serve-lag mixed

.PHONY: run test test-go unit up down lint fuzz fuzz-build duckdb chromium bench $(addprefix bench-,$(BENCHES)) bench-chart peer build clean

## run: everything embedded (Kafka, Redis, lake folder) on the production code paths
run:
	$(GO) run ./cmd/lambdalake dev

## test: start the local stack, then every test (integration included) and the fuzz targets.
## The fuzz binaries (instrumented builds, minutes on a fresh machine) are built
## beside vet and the tests, on the CPU the tests leave idle waiting on Kafka,
## Redis and S3; the targets run after the tests, so they do not load them.
test: up duckdb chromium
	$(MAKE) -j2 test-go fuzz-build
	.ci/fuzz run $(FUZZ_TARGETS)

## test-go: go vet, then every Go test (integration included)
test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -p 2 -timeout $(TEST_TIMEOUT) ./...

## duckdb: DuckDB from PyPI in .venv-duckdb, for the batch interop test only (not a runtime dependency)
DUCKDB_VERSION := 2.0.0
duckdb: .venv-duckdb/.duckdb-$(DUCKDB_VERSION)

.venv-duckdb/.duckdb-$(DUCKDB_VERSION):
	python3 -m venv .venv-duckdb
	echo '*' > .venv-duckdb/.gitignore
	.venv-duckdb/bin/pip install -q duckdb==$(DUCKDB_VERSION)
	touch $@

## chromium: Debian's headless Chromium, for the dashboard test
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## unit: the fast tests only (no local stack)
unit:
	$(GO) test -short ./...

## fuzz: one instrumented build per package, then every target for FUZZTIME
fuzz:
	.ci/fuzz all $(FUZZ_TARGETS)

# fuzz-build: the build half, quiet, for `make test` to run beside the tests
fuzz-build:
	@mkdir -p bin
	@nice -n $(FUZZ_NICE) .ci/fuzz build $(FUZZ_TARGETS) >bin/fuzz-build.log 2>&1 || { cat bin/fuzz-build.log; exit 1; }
	@cat bin/fuzz-build.log

## up / down: the local stack of DESIGN §6 (LocalStack S3, Apache Kafka, Redis)
up:
	localstack/up

down:
	localstack/down

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/lambdalake ./cmd/lambdalake

## bench: every benchmark against the local stack; bench-NAME runs one (BENCH_FLAGS: flags for it)
bench: $(addprefix bench-,$(BENCHES))

## peer: the Kafka Streams peer of bench-speed (Java 17, Maven Central); offline once fetched
PEER_DIR := bench/peer
PEER_SRC := $(PEER_DIR)/pom.xml $(shell find $(PEER_DIR)/src -name '*.java' 2>/dev/null)
peer: $(PEER_DIR)/target/.built

$(PEER_DIR)/target/.built: $(PEER_SRC)
	cd $(PEER_DIR) && { mvn -o -q -B -ntp clean package >/dev/null 2>&1 || mvn -q -B -ntp clean package; }
	touch $@

bench-decode:
	$(GO) run ./bench/decode $(BENCH_FLAGS)

## bench-speed: the single Redis with the peers, then the Redis Cluster (one shard per partition; its line last; its keys are left to expire, to inspect their spread)
bench-speed: up peer
	$(GO) run ./bench/speed $(BENCH_FLAGS)
	$(GO) run ./bench/speed -redis cluster -peer=false -keep-redis $(BENCH_FLAGS)

bench-compact: up duckdb
	$(GO) run ./bench/compact $(BENCH_FLAGS)

bench-recompute: duckdb
	$(GO) run ./bench/recompute $(BENCH_FLAGS)

bench-serve: up duckdb
	$(GO) run ./bench/serve $(BENCH_FLAGS)

## bench-serve-lag: bench-serve with the batch side six hours behind
bench-serve-lag: up duckdb
	$(GO) run ./bench/serve -mode lag $(BENCH_FLAGS)

bench-mixed: up
	$(GO) run ./bench/mixed $(BENCH_FLAGS)

## bench-chart: docs/bench.png (ours vs the peers) from the summary lines in docs/bench-results.txt
MATPLOTLIB_VERSION := 3.11.2
bench-chart: .venv-chart/.matplotlib-$(MATPLOTLIB_VERSION)
	.venv-chart/bin/python bench/chart/chart.py docs/bench-results.txt docs/bench.png

.venv-chart/.matplotlib-$(MATPLOTLIB_VERSION):
	python3 -m venv .venv-chart
	echo '*' > .venv-chart/.gitignore
	.venv-chart/bin/pip install -q matplotlib==$(MATPLOTLIB_VERSION)
	touch $@

clean:
	rm -rf bin .lake
