# backupguard: `make demo` shows it working, `make test` runs every test. Both build the real
# kube-apiserver, etcd and kubectl once (about 6-9 minutes on 2 cores), and `make test` also the real
# cert-manager controllers and Flux's kustomize-controller (3-5 minutes each) and kube-router (about 4
# minutes), into a cache outside the repository
# (~/.cache/backupguard/tools, or $BACKUPGUARD_TOOLS_CACHE); later runs reuse them.

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ENSURE_TOOLS = bash test/tools/ensure.sh
ENSURE_CERTMANAGER = bash test/tools/ensure-certmanager.sh
ENSURE_FLUX = bash test/tools/ensure-flux.sh
ENSURE_KUBEROUTER = bash test/tools/ensure-kuberouter.sh
ENSURE_CILIUM_CRDS = bash test/tools/ensure-cilium-crds.sh

.PHONY: all build tools test lint unit demo bench fuzz clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/backupguard ./cmd/backupguard

## tools: build (first run) or find (later runs) kube-apiserver, etcd, kubectl, the cert-manager runner,
## kustomize-controller and kube-router (with the Debian packages iptables and ipset it drives), and fetch
## Cilium's CiliumNetworkPolicy CRD.
tools:
	@start=$$(date +%s); dir=$$($(ENSURE_TOOLS)); echo "tools: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_CERTMANAGER)); echo "cert-manager: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_FLUX)); echo "flux: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_KUBEROUTER)); echo "kube-router: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_CILIUM_CRDS)); echo "cilium CRDs: $$dir ($$(( $$(date +%s) - start ))s)"

## test: formatting and vet, then every unit test, then the packages that start a control plane
## (test/...), one package at a time: each picks free ports for its API server, etcd and webhook, and two
## starting at once can take each other's.
test: lint tools
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v '/test/')
	BACKUPGUARD_TOOLS_DIR=$$($(ENSURE_TOOLS)) $(GO) test -count=1 -p 1 -timeout 30m ./test/...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./policies/... ./longhorn/... ./offline/... ./webhook/... ./cmd/...

## demo: a local control plane, the webhook, the examples applied with kubectl, results printed.
## DEMO_KEEP=1 keeps it running and prints a kubeconfig.
demo:
	@start=$$(date +%s); dir=$$($(ENSURE_TOOLS)); echo "tools: $$dir ($$(( $$(date +%s) - start ))s)"
	BACKUPGUARD_TOOLS_DIR=$$($(ENSURE_TOOLS)) $(GO) run ./test/demo

## bench: the whole performance report in one run (about 8 minutes on 2 cores): policy benchmarks, the
## webhook decisions over a cache of 10,000 PVCs, 50,000 Pods, 10,000 Volumes, 2,000 Nodes and 1,000
## Namespaces, every endpoint over TLS at 1-128 connections against a no-op ceiling, the latency added to
## creates through the kube-apiserver, serve's memory at that scale, and `validate` over 10,000 documents.
## Writes BENCHMARKS.md and docs/benchmarks-latency.svg.
bench:
	@start=$$(date +%s); dir=$$($(ENSURE_TOOLS)); echo "tools: $$dir ($$(( $$(date +%s) - start ))s)"
	BACKUPGUARD_TOOLS_DIR=$$($(ENSURE_TOOLS)) $(GO) run ./test/bench

## fuzz: run every fuzz target for FUZZTIME each (default 30s); a crash is written under the package's
## testdata/fuzz/ and becomes a regression case that `make test` runs from then on.
FUZZTIME ?= 30s
FUZZ_TARGETS = ./webhook:FuzzAdmissionReviews ./longhorn:FuzzDecodeRecurringJob ./longhorn:FuzzDecodeRecurringJobModes \
	./policies:FuzzValidateCron ./policies:FuzzLabelPatches ./policies:FuzzParseConfig ./offline:FuzzValidateInput
fuzz:
	@for target in $(FUZZ_TARGETS); do \
		package=$${target%%:*}; name=$${target##*:}; \
		echo ">> $$name ($$package) for $(FUZZTIME)"; \
		$(GO) test $$package -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

clean:
	rm -rf bin
