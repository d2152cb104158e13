# kitenats — the two commands the README promises:
#   make run    install what is missing, build, start the broker on the embedded default
#   make test   install and start what the tests need, run every test, stop what it started
#   make image  the Docker images (scripts/image.sh): base, broker, mariadb, zookeeper
# CI (.ci/run) runs make lint (golangci-lint, pinned in tools/go.mod) first.
GO        ?= go
BIN       := bin/kitenats
CACHE     := $(CURDIR)/.cache
GOFLAGS_T ?= -race -shuffle=on -count=1
LINT      := $(CACHE)/bin/golangci-lint
TAG       ?= dev
FORCE     ?=
LINT_VER   = $(shell awk '{ for (i = 1; i < NF; i++) if ($$i == "github.com/golangci/golangci-lint/v2") print $$(i+1) }' tools/go.mod)

.PHONY: run build image test unit integration deps deps-test fuzz bench fmt vet lint cover clean

run: build
	./$(BIN) $(ARGS)

build: deps
	CGO_ENABLED=1 $(GO) build -o $(BIN) .

# image builds kitenats/base:bookworm (debootstrap), kitenats/broker:$(TAG)
# (bin/kitenats), kitenats/mariadb:10.11 and kitenats/zookeeper:3.8 from
# Debian packages, each only when missing or out of date; FORCE=1 rebuilds
# them all.
image: build
	FORCE=$(FORCE) TAG=$(TAG) scripts/image.sh all

# deps installs the C library the RocksDB store links against.
deps:
	@scripts/deps.sh build

# deps-test also installs MariaDB and ZooKeeper for the store and registry tests.
deps-test:
	@scripts/deps.sh test

test: deps-test
	scripts/test.sh

# unit runs go test alone, against services you started yourself.
unit:
	CGO_ENABLED=1 $(GO) test $(GOFLAGS_T) ./...

integration: build
	CGO_ENABLED=1 $(GO) test $(GOFLAGS_T) -tags integration ./integration/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzSubjectRoundTrip -fuzztime 20s ./natsproto/
	$(GO) test -run '^$$' -fuzz FuzzAckParse -fuzztime 20s ./natsproto/
	$(GO) test -run '^$$' -fuzz FuzzBindingMatch -fuzztime 20s ./registry/
	$(GO) test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime 20s ./compat/wire/
	$(GO) test -run '^$$' -fuzz FuzzCompatSession -fuzztime 20s ./compat/
	$(GO) test -run '^$$' -fuzz FuzzDecodeProperties -fuzztime 20s ./store/mysql/
	$(GO) test -run '^$$' -fuzz FuzzDecodeBody -fuzztime 20s ./compat/wire/
	$(GO) test -run '^$$' -fuzz FuzzStoreRocksDBDecodeMessage -fuzztime 20s ./store/rocksdb/
	$(GO) test -run '^$$' -fuzz FuzzStoreRocksDBKeyComponent -fuzztime 20s ./store/rocksdb/
	$(GO) test -run '^$$' -fuzz FuzzJournalSegment -fuzztime 20s ./store/rocksdb/

bench: build
	./$(BIN) bench --compare

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# lint runs golangci-lint with .golangci.yml. The version is the one tools/go.mod
# requires; it is built into .cache/bin the first time (a few minutes) and again
# only when that version changes. The RocksDB store is cgo, hence deps.
lint: deps
	@$(LINT) version 2>/dev/null | grep -q 'version $(patsubst v%,%,$(LINT_VER)) ' || { \
		echo "installing golangci-lint $(LINT_VER) into $(CACHE)/bin"; \
		GOBIN=$(CACHE)/bin $(GO) install -C tools github.com/golangci/golangci-lint/v2/cmd/golangci-lint; }
	CGO_ENABLED=1 $(LINT) run ./...

cover:
	CGO_ENABLED=1 $(GO) test -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf bin cover.out
