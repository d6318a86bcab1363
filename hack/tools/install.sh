#!/usr/bin/env bash
# install.sh builds Flax's pinned tools into bin/, only those missing or out of date.
#
# Each tool has a key: its module@version, or for the control-plane binaries and echo-basic
# a hash of the go.mod/go.sum that pins them plus the Go version. A built binary is kept in
# a per-user cache ($FLAX_TOOLS_CACHE, default ~/.cache/flax/tools) under its key, so a
# fresh clone on a machine that built the tools once gets them in seconds; bin/NAME.key
# records which key bin/NAME was built from.
#
# Usage: hack/tools/install.sh [NAME...]   (no names: all tools)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/bin"
CACHE="${FLAX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flax/tools}"
GO="${GO:-go}"
mkdir -p "$BIN" "$CACHE"

# Versions of the tools installed with `go install`, each from its own go.mod.
HELM="helm.sh/helm/v3/cmd/helm@v3.22.0"
GOLANGCI_LINT="github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"
CONTROLLER_GEN="sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"
PROTOC_GEN_GO="google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
PROTOC_GEN_GO_GRPC="google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
# CoreDNS at the version the Gateway API conformance base manifests run
# (registry.k8s.io/coredns/coredns:v1.12.2, the UDP backend); its go.mod has no replace
# directives, so `go install` builds it (about 5 minutes cold on 2 cores).
COREDNS="github.com/coredns/coredns@v1.12.2"

ALL=(kube-apiserver kube-controller-manager kubectl etcd echo-basic helm golangci-lint controller-gen protoc-gen-go protoc-gen-go-grpc coredns)

gover="$("$GO" env GOVERSION)"
modkey() { # hash of a module's go.mod and go.sum and the Go version
	cat "$1/go.mod" "$1/go.sum" | { cat; echo "$gover"; } | sha256sum | cut -c1-16
}

# spec NAME prints "KEY<TAB>how to build" for a tool.
spec() {
	case "$1" in
	kube-apiserver | kube-controller-manager | kubectl)
		printf '%s\t%s\n' "$(modkey "$ROOT/hack/tools")" "module hack/tools k8s.io/kubernetes/cmd/$1" ;;
	etcd)
		printf '%s\t%s\n' "$(modkey "$ROOT/hack/tools")" "module hack/tools go.etcd.io/etcd/server/v3" ;;
	echo-basic)
		printf '%s\t%s\n' "$(modkey "$ROOT/test/conformance")" "module test/conformance sigs.k8s.io/gateway-api/conformance/echo-basic" ;;
	helm) printf '%s\t%s\n' "$HELM-$gover" "install $HELM" ;;
	golangci-lint) printf '%s\t%s\n' "$GOLANGCI_LINT-$gover" "install $GOLANGCI_LINT" ;;
	controller-gen) printf '%s\t%s\n' "$CONTROLLER_GEN-$gover" "install $CONTROLLER_GEN" ;;
	protoc-gen-go) printf '%s\t%s\n' "$PROTOC_GEN_GO-$gover" "install $PROTOC_GEN_GO" ;;
	protoc-gen-go-grpc) printf '%s\t%s\n' "$PROTOC_GEN_GO_GRPC-$gover" "install $PROTOC_GEN_GO_GRPC" ;;
	coredns) printf '%s\t%s\n' "$COREDNS-$gover" "install $COREDNS" ;;
	*) echo "install.sh: unknown tool $1 (known: ${ALL[*]})" >&2; return 1 ;;
	esac
}

build() { # NAME HOW... -> builds into $2 (output path)
	local name="$1" out="$2" kind="$3"
	shift 3
	case "$kind" in
	module)
		(cd "$ROOT/$1" && CGO_ENABLED=0 "$GO" build -o "$out" "$2") ;;
	install)
		local tmp
		tmp="$(mktemp -d)"
		GOBIN="$tmp" CGO_ENABLED=0 "$GO" install "$1"
		mv "$tmp/$(basename "${1%@*}")" "$out"
		rmdir "$tmp" ;;
	esac
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
for name in "${names[@]}"; do
	IFS=$'\t' read -r key how < <(spec "$name")
	safe="$(echo "$key" | tr '/@' '__')"
	if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/$name.key" 2>/dev/null)" = "$key" ]; then
		continue
	fi
	cached="$CACHE/$name-$safe"
	if [ ! -x "$cached" ]; then
		start=$SECONDS
		echo "tools: building $name ($how); a cold build of the Kubernetes binaries takes ~15 minutes on 2 cores"
		# shellcheck disable=SC2086
		build "$name" "$cached.tmp" $how
		mv "$cached.tmp" "$cached"
		echo "tools: built $name in $((SECONDS - start))s"
	fi
	cp -f "$cached" "$BIN/$name.tmp" && mv -f "$BIN/$name.tmp" "$BIN/$name"
	echo "$key" >"$BIN/$name.key"
	echo "tools: bin/$name ready"
done
