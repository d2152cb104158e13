# kitenats — the two commands the README promises:
#   make run    install what is missing, build, start the broker on the embedded default
#   make test   install and start what the tests need, run every test, stop what it started
GO        ?= go
BIN       := bin/kitenats
CACHE     := $(CURDIR)/.cache
GOFLAGS_T ?= -race -shuffle=on -count=1

.PHONY: run build test unit integration deps deps-test fuzz bench fmt vet cover clean

run: build
	./$(BIN)

build: deps
	CGO_ENABLED=1 $(GO) build -o $(BIN) .

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
	$(GO) test -run '^$$' -fuzz FuzzSubjectRoundTrip -fuzztime 20s ./semantics/
	$(GO) test -run '^$$' -fuzz FuzzAckParse -fuzztime 20s ./semantics/
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

cover:
	CGO_ENABLED=1 $(GO) test -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf bin cover.out
