# poolctl — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/poolctl
FUZZTIME ?= 30s

.PHONY: help build test run bench lint fuzz chaos clean check-redis check-systemd

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# poolctl-master and poolctl-worker are linked statically (pure-Go DNS
# resolver, as the master and its workers must resolve the same Redis
# host alike): libc and the dynamic loader would be 1.4 MB of the
# master's resident memory, and 18 % of a worker's CPU from exec to
# registered (docs/benchmarks.md).
build: ## build bin/poolctl (and the lean bin/poolctl-master and bin/poolctl-worker it uses) with the version stamped in
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/poolctl
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/poolctl-master ./cmd/poolctl-master
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/poolctl-worker ./cmd/poolctl-worker

# check-redis installs redis-server on a fresh Debian/Ubuntu machine when
# it can (as root, or with passwordless sudo); otherwise it says how.
check-redis:
	@command -v redis-server >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
	  echo "redis-server is not installed: the tests need a real Redis. Install the Debian package: sudo apt-get install -y redis-server" >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "redis-server is not installed and this is not a Debian/Ubuntu machine: install redis-server (7.x) with your package manager" >&2; exit 1; }; \
	echo "make: installing redis-server (apt-get) for the tests" >&2; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get update -qq && $$sudo apt-get install -y -qq redis-server >/dev/null && command -v redis-server >/dev/null

# check-systemd installs systemd (for systemd-analyze, which checks the
# units `poolctl export systemd` prints) in CI (CI=true) on Debian/Ubuntu
# as root or with passwordless sudo. It is optional: anywhere else, or if
# the install fails, the tests that need it skip and say why.
check-systemd:
	@command -v systemd-analyze >/dev/null && exit 0; \
	[ "$${CI:-}" = true ] && command -v apt-get >/dev/null || exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else exit 0; fi; \
	echo "make: installing systemd (apt-get) for systemd-analyze verify" >&2; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends systemd; } >/dev/null 2>&1 || \
	  echo "make: could not install systemd; the export tests will skip systemd-analyze verify" >&2

test: check-redis check-systemd ## run every test with the race detector against a private redis-server (installs redis-server when it can)
	$(GO) test -race -count=1 -timeout 20m ./...

run: build ## start a demo pool on a fresh machine (embedded Redis if none is running)
	$(BIN) -c examples/demo.yml --name demo

bench: build check-redis ## run the end-to-end benchmarks and Go micro-benchmarks
	$(GO) run ./bench -bin $(BIN) -out bench/results.json
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./spec/ ./queue/ ./worker/

lint: ## gofmt, go vet and staticcheck (pinned in go.mod's tool directive)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fuzz: ## fuzz every target for FUZZTIME each (default 30s; CI runs 50000x: a count, see .ci/run)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./spec/
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./spec/
	$(GO) test -run '^$$' -fuzz '^FuzzSplit$$' -fuzztime $(FUZZTIME) ./shell/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePayload$$' -fuzztime $(FUZZTIME) ./worker/

CHAOS_JOBS ?= 50000
chaos: check-redis ## the long chaos run (CHAOS_JOBS=50000, CHAOS_SEED=N to repeat a run); make test runs a short one
	CHAOS_JOBS=$(CHAOS_JOBS) $(GO) test -count=1 -v -timeout 90m -run '^TestChaos$$' ./e2e/

clean: ## remove build output
	rm -rf bin
