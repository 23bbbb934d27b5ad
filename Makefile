# secprov developer entry points. `make demo` runs the main job, `make test`
# runs every test (installing the pinned toolchain first, cached).
GO        ?= go
BIN       := bin/secprov
SECPROV   := $(CURDIR)/$(BIN)
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a duration expires (golang/go#75804).
FUZZTIME  ?= 150000x
BENCHTIME ?= 1x

.PHONY: build tools test test-kind test-short unit integration e2e fuzz vet bench demo clean docs

# No -trimpath: the tests build secprov (and its dependencies) with the
# default flags, and one set of flags means one compile of them all.
build:
	$(GO) build -o $(BIN) ./cmd/secprov

# Pinned etcd, Kubernetes control plane, Pulumi engine and Vault: from PATH, the
# cache, an official download, or built from the Go module proxy.
tools: build
	$(SECPROV) tools install

# The CLI reference (docs/cli, docs/man), generated from the commands;
# TestDocsAreFresh fails when it is stale.
docs:
	$(GO) test ./cmd/secprov/app -run '^TestDocsAreFresh$$' -count=1 -update

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Fast tests only: no real control planes, no engine.
test-short:
	$(GO) test -short ./...

# Everything: unit tests, integration tests against real etcd,
# kube-apiserver and the Pulumi engine, end-to-end tests and a short fuzz run.
# With SECPROV_E2E_KIND=1 and a Docker engine (.ci/run starts one) the e2e
# also builds (or reuses) the offline images and runs prod and test on kind.
# Test binaries are linked without DWARF (-w): some forty large binaries,
# and the linker's time is a good part of a cold run.
test: build vet tools
	$(GO) test -count=1 -ldflags=-w -timeout 40m ./...
	$(GO) test -count=1 -ldflags=-w -timeout 80m -tags e2e ./e2e/...
	$(MAKE) fuzz

# The kind provider's and the Cilium installer's own integration tests (one
# cluster each, about 6 minutes on two cores): what the e2e does not reach,
# such as the diagnosis of an agent image the nodes lack. Needs Docker and
# the offline images (secprov images build).
test-kind:
	$(GO) test -count=1 -p 1 -timeout 30m -tags kind ./provision/kind/...

fuzz:
	$(GO) test ./blueprints -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)
	$(GO) test ./vault/kms -run '^$$' -fuzz FuzzParseStored -fuzztime $(FUZZTIME)
	$(GO) test ./blueprints/review -run '^$$' -fuzz FuzzEquivalentSpellings -fuzztime 50000x
	$(GO) test ./hardening/verify/evidence -run '^$$' -fuzz FuzzParseEnvelope -fuzztime 50000x

bench: build tools
	./.ci/bench

demo: build tools
	$(SECPROV) review blueprints/examples
	$(SECPROV) up -f blueprints/examples

clean:
	rm -rf bin
