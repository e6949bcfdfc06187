# backupguard: `make demo` shows it working, `make test` runs every test. Both build the real
# kube-apiserver, etcd and kubectl once (about 6-9 minutes on 2 cores), and `make test` also the real
# cert-manager controllers and Flux's kustomize-controller (3-5 minutes each), kube-router (about 4
# minutes), Helm, promtool (without service discovery, about 3 minutes) and actionlint, into a
# cache outside the repository
# (~/.cache/backupguard/tools, or $BACKUPGUARD_TOOLS_CACHE); later runs reuse them.

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ENSURE_TOOLS = bash test/tools/ensure.sh
ENSURE_CERTMANAGER = bash test/tools/ensure-certmanager.sh
ENSURE_FLUX = bash test/tools/ensure-flux.sh
ENSURE_KUBEROUTER = bash test/tools/ensure-kuberouter.sh
ENSURE_CILIUM_CRDS = bash test/tools/ensure-cilium-crds.sh
ENSURE_HELM = bash test/tools/ensure-helm.sh
ENSURE_PROMTOOL = bash test/tools/ensure-promtool.sh
ENSURE_ACTIONLINT = bash test/tools/ensure-actionlint.sh
# What the release builds (.github/workflows/release.yaml runs these targets).
IMAGE ?= ghcr.io/backupguard/backupguard
# Set by the release to the pushed image's digest, which install.yaml then pins.
IMAGE_DIGEST ?=
# Where `make image` sends the images: nowhere by default (both are built, then discarded); the release
# pushes them.
IMAGE_OUTPUT ?= --output=type=cacheonly
PLATFORMS ?= linux/amd64,linux/arm64
# A chart version is SemVer without the v: v0.1.0 -> 0.1.0; anything but a tag -> 0.0.0-dev.
CHART_VERSION ?= $(or $(patsubst v%,%,$(filter v%,$(VERSION))),0.0.0-dev)
CHART_REPO ?= oci://ghcr.io/backupguard/charts

.PHONY: all build cross tools test lint workflows unit demo bench fuzz clean image dist install-yaml chart-package chart-push

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/backupguard ./cmd/backupguard

## cross: the image's binary compiles for both architectures the image is built for (the Dockerfile
## cross-compiles with the same GOOS/GOARCH; no container engine runs in the tests).
cross:
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/backupguard
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/backupguard

## tools: build (first run) or find (later runs) kube-apiserver, etcd, kubectl, the cert-manager runner,
## kustomize-controller, kube-router (with the Debian packages iptables and ipset it drives), Helm, promtool
## and actionlint, and fetch Cilium's CiliumNetworkPolicy CRD.
tools:
	@start=$$(date +%s); dir=$$($(ENSURE_TOOLS)); echo "tools: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_CERTMANAGER)); echo "cert-manager: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_FLUX)); echo "flux: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_KUBEROUTER)); echo "kube-router: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_CILIUM_CRDS)); echo "cilium CRDs: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_HELM)); echo "helm: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_PROMTOOL)); echo "promtool: $$dir ($$(( $$(date +%s) - start ))s)"
	@start=$$(date +%s); dir=$$($(ENSURE_ACTIONLINT)); echo "actionlint: $$dir ($$(( $$(date +%s) - start ))s)"

## test: formatting and vet, then every unit test, then the packages that start a control plane
## (test/...), one package at a time: each picks free ports for its API server, etcd and webhook, and two
## starting at once can take each other's.
test: lint cross tools workflows
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v '/test/')
	BACKUPGUARD_TOOLS_DIR=$$($(ENSURE_TOOLS)) $(GO) test -count=1 -p 1 -timeout 30m ./test/...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## workflows: actionlint over .github/workflows (the release cannot run here; its steps are make targets).
workflows:
	$$($(ENSURE_ACTIONLINT))/actionlint -no-color .github/workflows/*.yaml

unit:
	$(GO) test -count=1 ./policies/... ./longhorn/... ./offline/... ./webhook/... ./cmd/...

## demo: a local control plane, the webhook, the examples applied with kubectl, results printed.
## DEMO_KEEP=1 keeps it running and prints a kubeconfig.
demo:
	@start=$$(date +%s); dir=$$($(ENSURE_TOOLS)); echo "tools: $$dir ($$(( $$(date +%s) - start ))s)"
	BACKUPGUARD_TOOLS_DIR=$$($(ENSURE_TOOLS)) $(GO) run ./test/demo

## bench: the whole performance report in one run (about 12 minutes on 2 cores): policy benchmarks, the
## webhook decisions over a cache of 10,000 PVCs, 50,000 Pods, 10,000 Volumes with 30,000 Backups and
## 10,000 BackupVolumes, 2,000 Nodes and 1,000 Namespaces, every endpoint over TLS at 1-128 connections
## against a no-op ceiling, the latency added to creates through the kube-apiserver, serve's memory at that
## scale with and without the coverage report, the coverage report's time, and `validate` over 10,000
## documents. Writes BENCHMARKS.md and docs/benchmarks-latency.svg. Parts alone, without writing them:
## BACKUPGUARD_TOOLS_DIR=$(bash test/tools/ensure.sh) go run ./test/bench -only serve,coverage
## (the parts: policies, serve, coverage, decisions, load, admission, validate).
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
## image: the image for both architectures (docker buildx; the Dockerfile cross-compiles).
image:
	mkdir -p dist
	docker buildx build --platform $(PLATFORMS) --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) $(IMAGE_OUTPUT) .

## dist: backupguard for linux and darwin, amd64 and arm64, in dist/.
dist:
	mkdir -p dist
	for os in linux darwin; do for arch in amd64 arm64; do \
	  GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
	    -o dist/backupguard-$(VERSION)-$$os-$$arch ./cmd/backupguard || exit 1; \
	done; done

## install-yaml: dist/install.yaml, manifests/install rendered with the release's image (by digest when
## IMAGE_DIGEST is set), for `kubectl apply -f`.
install-yaml:
	mkdir -p dist/kustomize
	printf 'resources: [../../manifests/install]\nimages:\n  - name: ghcr.io/backupguard/backupguard\n    newName: %s\n    %s\n' \
	  "$(IMAGE)" "$(if $(IMAGE_DIGEST),digest: $(IMAGE_DIGEST),newTag: $(VERSION))" > dist/kustomize/kustomization.yaml
	$$($(ENSURE_TOOLS))/kubectl kustomize dist/kustomize > dist/install.yaml
	rm -r dist/kustomize

## chart-package: dist/backupguard-$(CHART_VERSION).tgz, versioned with the release.
chart-package:
	mkdir -p dist
	$$($(ENSURE_HELM))/helm package charts/backupguard --version $(CHART_VERSION) --app-version $(VERSION) --destination dist

## chart-push: the packaged chart to $(CHART_REPO) as an OCI artefact (after `helm registry login`).
chart-push: chart-package
	$$($(ENSURE_HELM))/helm push dist/backupguard-$(CHART_VERSION).tgz $(CHART_REPO)

clean:
	rm -rf bin dist
