# Flax Makefile. `make help` lists the targets.
#
# Every go command here links (or may link) giouring, which needs -checklinkname=0.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

GO            ?= go
LDFLAGS       ?= -checklinkname=0
GOFLAGS_BUILD := -ldflags=$(LDFLAGS)
export CGO_ENABLED ?= 0

# The packages test-race runs: the dataplane's hot path and the controller, whose
# goroutines share state.
RACE_PKGS ?= ./dataplane/... ./controllers/... ./api/...

ROOT     := $(abspath .)
LOCALBIN := $(ROOT)/bin
export PATH := $(LOCALBIN):$(PATH)

# The pinned tools each target needs; hack/tools/install.sh builds those missing from bin/
# (in parallel: FLAX_TOOLS_JOBS, default 2). `make tools` builds all of them.
INSTALL_TOOLS     := hack/tools/install.sh
TOOLS_CLUSTER     := kube-apiserver etcd kube-controller-manager kubectl echo-basic
TOOLS_RUN         := $(TOOLS_CLUSTER)
TOOLS_TEST        := kube-apiserver etcd helm jaeger
TOOLS_E2E         := $(TOOLS_CLUSTER) helm
TOOLS_CONFORMANCE := $(TOOLS_CLUSTER) coredns
TOOLS_LINT        := golangci-lint
TOOLS_GENERATE    := protoc-gen-go protoc-gen-go-grpc controller-gen

##@ General

.PHONY: help
help: ## Show this list of targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: run
run: build ## Start a local one-node cluster (pods as processes) with Flax and a sample Gateway, HTTPRoute and echo Deployment (needs root).
	$(INSTALL_TOOLS) $(TOOLS_RUN)
	$(GO) run ./hack/localcluster up --sample

.PHONY: demo
demo: build ## Start the standalone dataplane demo (no Kubernetes): three local backends behind examples/standalone.yaml.
	$(GO) run ./hack/demo --dataplane $(LOCALBIN)/flax-dataplane --config examples/standalone.yaml

.PHONY: generate
generate: ## Regenerate committed code (protobuf Go in api/dataplane/v1; deepcopy in api/v1alpha1, its CRDs in config/crd/bases and charts/flax/crds; the controller's ClusterRole in config/rbac/role.yaml).
	$(INSTALL_TOOLS) $(TOOLS_GENERATE)
	PATH=$(LOCALBIN):$$PATH hack/gen-proto.sh
	rm -f config/crd/bases/*.yaml
	$(LOCALBIN)/controller-gen object paths=./api/v1alpha1/... crd paths=./api/v1alpha1/... output:crd:dir=config/crd/bases
	mkdir -p charts/flax/crds && rm -f charts/flax/crds/*.yaml && cp config/crd/bases/*.yaml charts/flax/crds/
	$(LOCALBIN)/controller-gen rbac:roleName=flax-controller paths=./controllers/... output:rbac:dir=config/rbac

.PHONY: lint
lint: ## Run golangci-lint (config in .golangci.yml).
	$(INSTALL_TOOLS) $(TOOLS_LINT)
	$(LOCALBIN)/golangci-lint run ./...

.PHONY: test
test: ## Run all tests, including envtest tests on a real kube-apiserver and etcd, and the chart tests with helm.
	$(INSTALL_TOOLS) $(TOOLS_TEST)
	KUBEBUILDER_ASSETS=$(LOCALBIN) $(GO) test $(GOFLAGS_BUILD) -count=1 ./...

.PHONY: test-race
test-race: tools ## Run the hot-path, controller and API tests under the race detector (needs cgo and a C compiler).
	CGO_ENABLED=1 KUBEBUILDER_ASSETS=$(LOCALBIN) $(GO) test $(GOFLAGS_BUILD) -race -count=1 $(RACE_PKGS)

.PHONY: bench
bench: build ## Load benchmark: flax (io_uring, netpoll), nginx and HAProxy side by side on one core, over http, then https, then full TLS handshakes, then TLS passthrough by SNI, then HTTP/2 (h2c, then h2 over TLS), then gRPC unary calls to an h2c backend (needs nginx, haproxy, wrk, h2load).
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -https
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -handshakes
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -tls-passthrough
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -h2
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -h2 -https
	$(GO) run ./hack/loadbench --flax $(LOCALBIN)/flax-dataplane -grpc

.PHONY: bench-hostile
bench-hostile: build ## Hostile-load benchmark: slowloris, slow body, silent backend, stalled reader, floods against flax (io_uring, netpoll) and nginx, about 5 minutes (HOSTILE_FLAGS=-quick: about 1; needs nginx).
	$(GO) run ./hack/hostilebench --flax $(LOCALBIN)/flax-dataplane $(HOSTILE_FLAGS)

.PHONY: bench-go
bench-go: ## Run the Go benchmarks of the hot-path packages (allocations per request, ns/op).
	$(GO) test $(GOFLAGS_BUILD) -run='^$$' -bench=. -benchmem ./dataplane/...

.PHONY: e2e
e2e: build ## Run the end-to-end tests on local clusters: test/e2e (Flax as processes), then test/e2e/helm (helm install of the chart) (needs root; about 3-4 minutes warm).
	$(INSTALL_TOOLS) $(TOOLS_E2E)
	$(GO) test $(GOFLAGS_BUILD) -tags=e2e -count=1 -v -p 1 -timeout=15m ./test/e2e/... $(E2E_FLAGS)

.PHONY: conformance
conformance: build ## Run the Gateway API conformance suite (GATEWAY-HTTP profile, or FLAX_CONFORMANCE_PROFILES) on a fresh local cluster; report in the upstream format in test/conformance/reports/<version>/ (needs root).
	$(INSTALL_TOOLS) $(TOOLS_CONFORMANCE)
	GO=$(GO) test/conformance/run.sh

##@ Build

.PHONY: build
build: ## Build flax-dataplane, flax-controller and flaxctl into bin/, with bin/kubectl-flax and bin/kubectl_complete-flax linking to flaxctl (the kubectl plugin and its completion: `kubectl flax status` with bin/ on the PATH).
	@mkdir -p $(LOCALBIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(LOCALBIN)/ ./cmd/...
	ln -sf flaxctl $(LOCALBIN)/kubectl-flax
	ln -sf flaxctl $(LOCALBIN)/kubectl_complete-flax

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine with BuildKit, which keeps flax-dataplane's file capability).
	DOCKER_BUILDKIT=1 docker build -t flax:dev .

##@ Tools

.PHONY: tools
tools: ## Build all pinned tools into bin/ (only what is missing or out of date; each target above builds just the ones it needs; see hack/tools/README.md).
	$(INSTALL_TOOLS)
	@echo "tools: all up to date in bin/"

.PHONY: clean
clean: ## Remove build outputs (keeps the tool binaries in bin/).
	rm -f $(LOCALBIN)/flax-dataplane $(LOCALBIN)/flax-controller $(LOCALBIN)/flaxctl $(LOCALBIN)/kubectl-flax $(LOCALBIN)/kubectl_complete-flax
