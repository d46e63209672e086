# Everything a user or CI runs. Go is the only requirement for build, demo
# and bench; the system tests also want ffmpeg/ffprobe and GStreamer
# (.ci/run installs them).
GO      ?= go
BIN     := bin
TOOLS   := $(notdir $(wildcard cmd/*))
PKGS    := ./...

.PHONY: all build install test test-short bench bench-scale demo fuzz lint fmt clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

# The tools into $(go env GOPATH)/bin (or $GOBIN): put that on PATH.
install:
	$(GO) install ./cmd/...

# The whole suite: unit, in-process integration and multi-process system
# tests with real players, under the race detector.
test:
	$(GO) test -race -count=1 -timeout 14m $(PKGS)

# Unit and in-process tests only (skips the multi-process system tests).
test-short:
	$(GO) test -short -count=1 $(PKGS)

# Benchmarks: a JSON and table report of the relay's cost against a floor
# measured in the same run, the overlay's join and recovery (per recovery
# policy) and handover. BENCHTIME scales how long each timed case runs;
# BENCH=case,case runs only those (see bench/*.go for the names).
BENCHTIME ?= 5s
BENCH ?=
export OCM_BENCH_POLICIES ?= repair,drop,reconnect,gradual
bench: build
	$(GO) run ./bench -bin $(BIN) -duration $(BENCHTIME) -run "$(BENCH)"

# One ocm-server loaded with SCALE_RELAYS relays of one stream over real TCP
# (64, then 1,024 joining at a time): joins/s, candidate latency, memory
# and CPU per relay, tree API time, repair of a relay with 1,000
# descendants; then the tree-quality simulator (SCALE_SIM_RELAYS in process:
# depth, stretch, cross-region edges, recovery per policy) and the islands
# model (SCALE_ISLANDS regional servers of 10,000 relays each). Writes
# bench/scale.json, bench/scale.md and bench/scale.svg; see
# go run ./bench/scale --help (--sim-only: the simulator alone, seconds).
SCALE_RELAYS ?= 10000
SCALE_BATCH  ?= 64,1024
SCALE_SIM_RELAYS ?= 10000
SCALE_ISLANDS    ?= 100
bench-scale: build
	$(GO) run ./bench/scale --bin $(BIN) --relays $(SCALE_RELAYS) --batch $(SCALE_BATCH) \
		--sim-relays $(SCALE_SIM_RELAYS) --islands $(SCALE_ISLANDS) \
		--out bench/scale.json --md bench/scale.md --svg bench/scale.svg

# The paper's trial on the built-in test stream (scripts/demo.sh --help):
# runs until Ctrl-C, or DEMO_SECONDS from a script; DEMO_BASE_PORT moves
# every port.
demo: build
	./scripts/demo.sh

# Every fuzz target (each func FuzzX in a _test.go file: the parsers of
# what comes from the network or stdin), one after another for FUZZTIME
# each; go test fuzzes one target at a time. A crasher is written to the
# package's testdata/fuzz/FuzzX/ and the run stops there.
FUZZTIME ?= 60s
fuzz:
	@git grep -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' | \
	while IFS=: read -r file decl; do \
		fn=$$(echo "$$decl" | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); \
		pkg=./$$(dirname "$$file"); \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" || exit 1; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) .bench
