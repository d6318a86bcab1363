//go:build tools

// Package tools pins the versions of the control-plane binaries that Flax's tests run:
// kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes, and etcd.
// The Makefile builds them into the repository's git-ignored bin/ folder; nothing here is
// linked into Flax itself.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
