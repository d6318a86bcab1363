// Package e2e holds Flax's end-to-end tests: they start the local cluster of
// hack/localcluster once (etcd, kube-apiserver, kube-controller-manager, a node agent
// running pods as processes, flax-controller and flax-dataplane on the host) with its
// sample, config/samples/demo (namespace demo: Deployment echo, Service echo, Gateway
// demo on port 8080, HTTPRoute echo), drive it with kubectl and a Kubernetes client,
// and check what a client of the Gateway at 127.0.0.1:8080 sees: scaling, rolling
// updates, route edits, invalid routes, and restarts of the controller and the dataplane
// under steady load.
//
// The tests carry the build tag e2e, so `go test ./...` skips them; `make e2e` runs
// them (as root: the local cluster creates network namespaces). See README.md.
package e2e
