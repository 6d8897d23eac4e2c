# binlake — the two commands a newcomer runs are `make demo` and `make test`.
GO ?= go
GOFLAGS_TEST ?= -count=1 -timeout 40m
BIN := bin/binlake

.PHONY: all build test soak demo bench vet fmt clean deps screenshot

all: build

build:
	$(GO) build -o $(BIN) ./cmd/binlake

# deps installs what the tests start: MariaDB (apt, as root), versitygw (go install),
# node, kinesalite and chromium (for the console's browser test).
deps:
	@scripts/deps.sh s3 node kinesis browser

# The whole suite, against real MariaDB and S3-compatible servers the tests start.
test: deps
	$(GO) vet ./...
	$(GO) test $(GOFLAGS_TEST) ./...

# soak runs the fault tests with their long variants (BINLAKE_SOAK=1): the object
# store down for 3 minutes, delivery down for 2 minutes past the stream's max_age.
soak: deps
	BINLAKE_SOAK=1 $(GO) test -count=1 -timeout 30m -v -run 'TestObjectStoreFaults|TestDeliveryOutageOutlastsRetention' ./internal/task

# A throwaway MariaDB with a sample WordPress database → binlake → ./demo-lake.
# Keep it running with: go run ./cmd/binlake demo --keep
demo:
	@scripts/deps.sh
	$(GO) run ./cmd/binlake demo --dir demo-lake

# screenshot runs the console's browser test and saves what it sees as docs/console.png.
screenshot: deps
	$(GO) test -count=1 -run TestConsoleInBrowser ./internal/console -screenshot $(CURDIR)/docs/console.png

# bench measures binlake beside mydumper, mysqldump, mysqlbinlog and a bare
# go-mysql decode loop on a MariaDB it starts, and writes BENCHMARKS.md
# (sizes: BENCH_ROWS=500000,2000000 BENCH_RUNS=3 BENCH_CDC_EVENTS=100000).
# It is not part of make test.
bench:
	@scripts/deps.sh bench
	$(GO) test -tags bench -count=1 -timeout 180m -run TestBench -v ./bench

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin demo-lake binlake-state
