# Sluice — build, test and run.
#
#   make run       build and start a one-node cluster (data in ./data)
#   make test      everything CI checks: generated code, lint, vet, race tests
#   make build     the binary at bin/sluice
#   make generate  regenerate gen/ from proto/
#   make bench     benchmarks
#   make soak      long randomized storage runs (not part of make test)
#   make chaos     long multi-process fault runs (not part of make test; root for iptables)
#   make failover-time, make idle-cpu   failover and idle-cost measurements
#   make cluster   build and start three local nodes (cluster-stop, cluster-status)

GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
GRPCURL   := $(GO) tool -modfile=tools/go.mod grpcurl
PKGS      := ./...
BENCHTIME ?= 2s

.PHONY: all build run test generate gen-check lint vet proto-lint proto-breaking unit bench soak chaos failover-time idle-cpu fuzz cluster cluster-stop cluster-status tools clean

all: build

build:
	$(GO) build -o bin/sluice ./cmd/sluice

run: build
	./bin/sluice server

tools:
	$(BUF) --version >/dev/null

generate: tools
	rm -rf gen/sluice
	$(BUF) generate

# CI fails when gen/ is not what the protos generate.
gen-check: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked generated files: run 'make generate' and commit"; exit 1; }

proto-lint: tools
	$(BUF) lint
	$(BUF) format -d --exit-code

# Breaking-change check: the API must stay compatible with the first published v1 (the
# commit that introduced buf.yaml) and with the previous commit.
proto-breaking: tools
	@first=$$(git log --diff-filter=A --format=%H -- buf.yaml | tail -n 1); \
	for ref in $$first $$(git rev-parse -q --verify HEAD~1); do \
		if [ -n "$$ref" ] && [ "$$ref" != "$$(git rev-parse HEAD)" ] && git cat-file -e $$ref:buf.yaml 2>/dev/null; then \
			echo "buf breaking against $$ref"; $(BUF) breaking --against ".git#ref=$$ref" || exit 1; \
		fi; \
	done

vet:
	$(GO) vet $(PKGS)
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed"; exit 1; }

lint: proto-lint proto-breaking vet

# A package that fails is rerun once and reported FLAKY if it then passes (scripts/test.sh).
unit:
	GO=$(GO) ./scripts/test.sh $(PKGS)

test: gen-check lint unit

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./storage/... ./replication/...

soak:
	STORAGE_SOAK=1 $(GO) test -count=1 -timeout 60m -run TestRandomizedAgainstModel ./storage/

chaos: build
	./scripts/chaos-setup.sh
	SLUICE_CHAOS=1 SLUICE_CHAOS_BINARY=$(CURDIR)/bin/sluice $(GO) test -count=1 -timeout 60m -v ./test/chaos/

# Time from SIGKILL of a partition leader to the first produce accepted by its successor.
failover-time:
	$(GO) test -count=1 -timeout 20m -v -run TestFailoverTime ./test/chaos/

# CPU and memory of three idle nodes holding 1,000 partitions x RF3.
idle-cpu: build
	./scripts/idle-cpu.sh

# Each fuzz target for a short while (FUZZTIME per target).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./... | grep -v /gen/); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

cluster: build
	./scripts/cluster.sh start

cluster-stop:
	./scripts/cluster.sh stop

cluster-status:
	./scripts/cluster.sh status

clean:
	rm -rf bin
