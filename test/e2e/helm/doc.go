// Package helm is the end-to-end test of the Helm chart: on a local cluster of
// hack/localcluster started without Flax (`up --flax=none`), it runs the install,
// upgrade and uninstall commands of the repository README (the fenced blocks between the
// `<!-- e2e:... -->` markers) and checks what they did: the DaemonSet's pods run as the
// chart says (non-root, only NET_BIND_SERVICE, in-cluster config, the seccomp profile
// installed by the Flax image), the Gateway serves, an upgrade under load keeps or
// restores service, and the uninstall leaves nothing of the chart behind.
//
// It carries the build tag e2e; `make e2e` runs it after the tests in test/e2e (one local
// cluster per machine, so the packages run one after the other). See ../README.md.
package helm
