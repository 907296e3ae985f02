# nginx-shipper — plain Makefile. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)
export NGINX_SHIPPER_TOOLS := $(TOOLS)

.PHONY: help build test bench-smoke test-unit test-e2e demo lint bench fuzz deps clean

help:
	@echo "make build      bin/nginx-shipper"
	@echo "make demo       run the agent on a bundled nginx sample into a local Kafka (kfake) and S3"
	@echo "make test       everything CI runs: installs test tools, vet, unit/integration/e2e with -race, packages"
	@echo "make bench      throughput, CPU and peak RSS of the whole agent (see README)"
	@echo "make lint       go vet + gofmt check"
	@echo "make package    .deb and .rpm (amd64, arm64) in dist/"
	@echo "make image      the container image (amd64, arm64) as an OCI layout and tarballs in dist/image/"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nginx-shipper ./cmd/nginx-shipper

# deps installs what the tests need and the machine lacks: nginx, kcat,
# logrotate, lintian, rpm (Debian packages, when root) and versitygw (Go).
deps:
	@bash .ci/deps

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint build
	$(GO) test -race -shuffle=on -count=1 -timeout 20m ./...
	$(MAKE) bench-smoke
	$(MAKE) package-test

# bench-smoke runs every Go benchmark once (-benchtime 1x), so that one
# that fails (several assert what they measure: a cache's bound, no
# allocation per line) fails the tests, as BenchmarkUACacheMemory did
# unseen for a day. It measures nothing.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 10m ./...

test-unit:
	$(GO) test -race -shuffle=on -short ./...

test-e2e: deps
	$(GO) test -race -count=1 -run 'TestE2E|TestReload|TestMetrics' ./cmd/nginx-shipper

demo: build
	$(GO) run ./cmd/demo

bench: build
	$(GO) run ./cmd/bench $(BENCH_ARGS)

fuzz:
	$(GO) test ./parser -run '^$$' -fuzz FuzzParse -fuzztime 60s
	$(GO) test ./parser -run '^$$' -fuzz FuzzCompile -fuzztime 60s

clean:
	rm -rf bin dist

-include packaging/package.mk
-include packaging/kubernetes/image.mk
