#!/usr/bin/env bash
# run.sh runs the Gateway API conformance suite (GATEWAY-HTTP profile, or the profiles of
# FLAX_CONFORMANCE_PROFILES) against Flax on a fresh local cluster (hack/localcluster),
# then stops the cluster, whatever happened.
# `make conformance` calls it after `make build` and building the tools it needs.
#
# Environment:
#   FLAX_CONFORMANCE_PROFILES  profiles to run in one suite run, comma-separated (default
#                     GATEWAY-HTTP), e.g. GATEWAY-HTTP,GATEWAY-TCP or GATEWAY-GRPC; the
#                     suite's own -conformance-profiles flag in CONFORMANCE_ARGS wins
#   CONFORMANCE_DIR   state folder (default _out/conformance): cluster state, logs
#   CONFORMANCE_ARGS  extra flags for the suite, e.g. "-run-test HTTPRouteSimpleSameNamespace"
#                     or "-debug" (flags of sigs.k8s.io/gateway-api/conformance/utils/flags)
#   GATEWAY_POOL      addresses for the Gateways, one each (default 10.96.0.0/24)
#   CONFORMANCE_TIMEOUT  go test -timeout (default 60m)
#   LOCALCLUSTER      a prebuilt hack/localcluster binary to use (default: built here)
#   GATEWAY_API_CHANNEL  standard (default) or experimental: the Gateway API CRDs to install;
#                     with experimental the class also claims HTTPRouteRetry
#   FLAX_VERSION      the Flax version the report names (default v<appVersion of charts/flax>)
# A full run (no CONFORMANCE_ARGS) writes the report in the upstream format and layout,
# test/conformance/reports/<version>/<channel>-<version>-default-report.yaml, which is
# committed (reports_test.go checks it against the features Flax claims); a run with
# CONFORMANCE_ARGS (a subset, debug) writes it to $CONFORMANCE_DIR/reports/ instead.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
GO="${GO:-go}"
DIR="${CONFORMANCE_DIR:-$ROOT/_out/conformance}"
POOL="${GATEWAY_POOL:-10.96.0.0/24}"
KUBECTL="$ROOT/bin/kubectl"
mkdir -p "$DIR"
CLUSTER_DIR="$DIR/cluster"
CHANNEL="${GATEWAY_API_CHANNEL:-standard}"
FLAX_VERSION="${FLAX_VERSION:-v$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' "$ROOT/charts/flax/Chart.yaml")}"
export FLAX_VERSION
if [ -z "${CONFORMANCE_ARGS:-}" ]; then
	REPORT="$ROOT/test/conformance/reports/$FLAX_VERSION/$CHANNEL-$FLAX_VERSION-default-report.yaml"
else
	REPORT="$DIR/reports/flax-$(date -u +%Y%m%d-%H%M%S).yaml"
fi
mkdir -p "$(dirname "$REPORT")"
CLUSTER_LOG="$DIR/localcluster.log"
export KUBECONFIG="$CLUSTER_DIR/kubeconfig"
start=$SECONDS

LOCALCLUSTER="${LOCALCLUSTER:-}"
if [ -z "$LOCALCLUSTER" ]; then
	echo "conformance: building hack/localcluster"
	LOCALCLUSTER="$DIR/localcluster"
	(cd "$ROOT" && "$GO" build -ldflags=-checklinkname=0 -o "$LOCALCLUSTER" ./hack/localcluster)
fi

CRD_ARGS=()
case "$CHANNEL" in
standard) ;;
experimental)
	# The module's folder holds a kustomization.yaml that kubectl apply -f DIR refuses:
	# copy the CRDs alone.
	gwapi="$(cd "$ROOT" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
	rm -rf "$DIR/crds-experimental"
	mkdir -p "$DIR/crds-experimental"
	cp "$gwapi"/config/crd/experimental/gateway.networking.*.yaml "$DIR/crds-experimental/"
	chmod u+w "$DIR"/crds-experimental/*.yaml
	CRD_ARGS=(--crds "$DIR/crds-experimental")
	;;
*)
	echo "conformance: GATEWAY_API_CHANNEL must be standard or experimental, not ${GATEWAY_API_CHANNEL}" >&2
	exit 2
	;;
esac

# One local cluster per machine: localcluster itself takes a machine-wide lock and
# fails at once, saying so, when another one (make run, make e2e) is running.

cluster_pid=""
stop_cluster() {
	if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
		echo "conformance: stopping the local cluster"
		kill -TERM "$cluster_pid" 2>/dev/null || true
		wait "$cluster_pid" 2>/dev/null || true
	fi
	cluster_pid=""
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

echo "conformance: profiles ${FLAX_CONFORMANCE_PROFILES:-GATEWAY-HTTP}"
export FLAX_CONFORMANCE_PROFILES
echo "conformance: starting the local cluster (state $CLUSTER_DIR, log $CLUSTER_LOG, Gateway API ${GATEWAY_API_CHANNEL:-standard} channel)"
: >"$CLUSTER_LOG" # before the start, so that the wait below never reads an earlier run's log
(cd "$ROOT" && exec "$LOCALCLUSTER" up --dir "$CLUSTER_DIR" --gateway-pool "$POOL" "${CRD_ARGS[@]}") >"$CLUSTER_LOG" 2>&1 &
cluster_pid=$!
deadline=$((SECONDS + 300))
until grep -q "cluster ready" "$CLUSTER_LOG" 2>/dev/null; do
	if ! kill -0 "$cluster_pid" 2>/dev/null; then
		echo "conformance: the local cluster exited before it was ready; its log:" >&2
		tail -n 50 "$CLUSTER_LOG" >&2
		exit 1
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "conformance: the local cluster was not ready after 300s; its log:" >&2
		tail -n 50 "$CLUSTER_LOG" >&2
		exit 1
	fi
	sleep 1
done
echo "conformance: $(grep -m1 "cluster ready" "$CLUSTER_LOG")"

# Each Gateway needs an address of its own (the base manifests put several Gateways on
# port 80). Until the local cluster configures it, give the GatewayClass an address pool
# through Flax's GatewayClassParameters, and a Service of type ClusterIP per Gateway (what
# the GatewayInfrastructure tests look for: the Gateway's spec.infrastructure labels and
# annotations on what Flax creates for it).
if [ -z "$("$KUBECTL" get gatewayclass flax -o 'jsonpath={.spec.parametersRef.name}')" ]; then
	echo "conformance: GatewayClass flax has no parametersRef; giving it the address pool $POOL (GatewayClassParameters flax-conformance)"
	"$KUBECTL" apply --server-side -f "$ROOT/config/crd/bases" >/dev/null
	"$KUBECTL" wait --for=condition=Established --timeout=60s crd/gatewayclassparameters.flaxlb.io >/dev/null
	"$KUBECTL" apply --server-side -f - >/dev/null <<YAML
apiVersion: flaxlb.io/v1alpha1
kind: GatewayClassParameters
metadata:
  name: flax-conformance
spec:
  addressPools: ["$POOL"]
  service: {type: ClusterIP}
YAML
	"$KUBECTL" patch gatewayclass flax --type merge -p \
		'{"spec":{"parametersRef":{"group":"flaxlb.io","kind":"GatewayClassParameters","name":"flax-conformance"}}}' >/dev/null
fi
# Accepted for the current generation (the patch above bumps it).
deadline=$((SECONDS + 60))
until [ "$("$KUBECTL" get gatewayclass flax -o 'jsonpath={.metadata.generation}={.status.conditions[?(@.type=="Accepted")].observedGeneration}={.status.conditions[?(@.type=="Accepted")].status}')" \
	= "$("$KUBECTL" get gatewayclass flax -o 'jsonpath={.metadata.generation}={.metadata.generation}')=True" ]; do
	if [ $SECONDS -ge $deadline ]; then
		echo "conformance: GatewayClass flax is not accepted after 60s:" >&2
		"$KUBECTL" get gatewayclass flax -o yaml >&2
		exit 1
	fi
	sleep 1
done
echo "conformance: GatewayClass flax accepted; supported features: $("$KUBECTL" get gatewayclass flax -o 'jsonpath={.status.supportedFeatures[*].name}')"

echo "conformance: running the suite (full output in $DIR/suite.log; report $REPORT)"
# One line per test as it finishes, then the summary the test prints.
set +e
# shellcheck disable=SC2086
(cd "$ROOT/test/conformance" && "$GO" test -tags conformance -count=1 -timeout "${CONFORMANCE_TIMEOUT:-60m}" -v . -args -report-output "$REPORT" -flax.summary "$DIR/summary.txt" ${CONFORMANCE_ARGS:-}) 2>&1 |
	tee "$DIR/suite.log" |
	grep --line-buffered -E '^    --- (PASS|FAIL): TestConformance/[^/ ]+ |^(FAIL|ok|panic)'
rc=${PIPESTATUS[0]}
set -e
stop_cluster
grep -E '^conformance:' "$DIR/suite.log" || true
echo "conformance: finished in $((SECONDS - start))s (suite exit code $rc; full output $DIR/suite.log)"
exit $rc
