// Command localcluster starts a real one-node Kubernetes cluster on this machine whose
// pods run as local processes, with Flax serving Gateways on the host network.
//
// `localcluster up` starts etcd, kube-apiserver and kube-controller-manager on loopback,
// then an in-process node agent that registers a Node, binds pending pods to it and runs
// each pod's containers as processes in the pod's own network namespace (no default
// route: nothing a pod does can leave the machine). Images map to binaries in the
// repository's bin/ folder. It then installs the Gateway API CRDs and a GatewayClass and
// runs flax-dataplane and flax-controller as host processes, as the DaemonSet would
// (`--flax=none` leaves Flax out, for `helm install` of the chart, whose host-network
// DaemonSet pods the node agent runs). `up --sample` also deploys an echo Deployment
// behind a Gateway on port 8080.
//
// Ctrl-C or SIGTERM tears everything down; `localcluster down` removes what a crashed
// run left behind. See README.md in this folder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func usage() {
	fmt.Fprint(os.Stderr, `Usage:
  localcluster up [--dir DIR] [--flax process|none] [--pod-cidr CIDR] [--gateway-pool CIDR] [--sample]
  localcluster down [--dir DIR]

up starts a one-node cluster whose pods are local processes and runs Flax on it as host
processes (--flax=process), or leaves Flax to a helm install (--flax=none); it stays in
the foreground until Ctrl-C or SIGTERM, then removes everything it created.
down removes what a previous run left behind (processes, network namespaces, veths,
routes). Both need root.
`)
}

// Values of --flax.
const (
	flaxProcess = "process"
	flaxNone    = "none"
)

// config holds the command-line settings of a run.
type config struct {
	dir         string
	podCIDR     string
	gatewayPool string
	binDir      string
	crdDir      string
	flaxCRDDir  string
	sample      bool
	flax        string
	nodeName    string
	gatewayPort int
	migrateReq  bool
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var cfg config
	fs.StringVar(&cfg.dir, "dir", "./_out/localcluster", "state folder: certificates, kubeconfig, etcd data, pod folders and logs")
	fs.StringVar(&cfg.podCIDR, "pod-cidr", "10.244.0.0/16", "pod addresses; the first host address is the node's address on the pod bridge")
	fs.StringVar(&cfg.gatewayPool, "gateway-pool", "10.96.0.0/24", "addresses routed to this machine (local route on lo) for Gateway spec.addresses")
	fs.StringVar(&cfg.binDir, "bin", "", "folder of etcd, kube-apiserver, kube-controller-manager, kubectl, echo-basic, flax-* (default: bin/ of the repository)")
	fs.StringVar(&cfg.flaxCRDDir, "flax-crds", "", "Flax CRD folder (default: config/crd/bases of this repository)")
	fs.StringVar(&cfg.crdDir, "crds", "", "Gateway API CRD folder (default: config/crd/standard of the sigs.k8s.io/gateway-api module in go.mod)")
	fs.BoolVar(&cfg.sample, "sample", false, "deploy the sample (namespace demo: echo Deployment, Service, Gateway on port 8080, HTTPRoute)")
	fs.StringVar(&cfg.nodeName, "node-name", "flax-local", "name of the Node")
	fs.StringVar(&cfg.flax, "flax", flaxProcess, "how Flax runs: process (flax-controller and flax-dataplane as host processes with the admin kubeconfig, plus the CRDs and GatewayClass) or none (only the Gateway API CRDs: install Flax with helm, whose DaemonSet pods the node agent runs)")
	fs.BoolVar(&cfg.migrateReq, "tcp-migrate-req", true, "set net.ipv4.tcp_migrate_req=1 while the cluster runs (restored at teardown), as a node image would for Flax's surge updates: a closing SO_REUSEPORT listener hands its queued connections to another of its group; false leaves the host's setting")
	fs.Usage = usage
	switch cmd {
	case "up", "down":
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	cfg.gatewayPort = 8080
	switch {
	case cfg.flax != flaxProcess && cfg.flax != flaxNone:
		fmt.Fprintf(os.Stderr, "localcluster: --flax %q: want process or none\n", cfg.flax)
		os.Exit(2)
	case cfg.flax == flaxNone && cfg.sample:
		fmt.Fprintln(os.Stderr, "localcluster: --sample needs --flax=process (with --flax=none, apply config/samples after installing the chart)")
		os.Exit(2)
	}
	if err := run(cmd, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(cmd string, cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it creates network namespaces, veths and routes)")
	}
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return fmt.Errorf("resolving --dir: %w", err)
	}
	cfg.dir = dir
	// One local cluster per machine: they share the pod bridge, the namespace prefix and
	// the Gateway port, and each start cleans up the others' leftovers.
	unlock, err := lockMachine()
	if err != nil {
		return err
	}
	defer unlock()
	netw, err := newNetwork(cfg.podCIDR, cfg.gatewayPool)
	if err != nil {
		return err
	}
	if cmd == "down" {
		return down(cfg, netw)
	}
	if err := resolvePaths(cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	followGoRun()
	c := &cluster{cfg: cfg, net: netw}
	upErr := c.up(ctx)
	if upErr != nil && ctx.Err() == nil {
		logf("start failed: %v", upErr)
	} else if upErr == nil {
		<-ctx.Done()
	}
	// The signal handler stays registered until teardown ends, so that a second signal
	// (Ctrl-C twice, or the repeated SIGTERM the kernel sends as each thread of an
	// exiting `go run` dies) does not interrupt it. `localcluster down` cleans up after
	// a SIGKILL.
	logf("stopping: killing processes, removing network namespaces, veths and routes")
	c.teardown()
	logf("stopped; nothing left behind")
	if ctx.Err() != nil {
		return nil
	}
	return upErr
}

// down removes whatever a previous run with the same --dir left behind.
func down(cfg *config, netw *network) error {
	killMarked(cfg.dir)
	netw.cleanStale()
	removeCreatedMountpoints(cfg.dir)
	removeCreatedHostPaths(cfg.dir)
	logf("removed leftovers of %s", cfg.dir)
	return nil
}

// resolvePaths fills in the default bin and CRD folders from the repository root.
func resolvePaths(cfg *config) error {
	root, err := repoRoot()
	if err != nil && (cfg.binDir == "" || cfg.crdDir == "" || cfg.flaxCRDDir == "") {
		return err
	}
	if cfg.binDir == "" {
		cfg.binDir = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "echo-basic", "flax-controller", "flax-dataplane"} {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return fmt.Errorf("binary %s missing in %s: run `make tools build` first", b, cfg.binDir)
		}
	}
	if cfg.flaxCRDDir == "" {
		cfg.flaxCRDDir = filepath.Join(root, "config", "crd", "bases")
	}
	if cfg.crdDir == "" {
		out, err := runOut(root, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
		if err != nil {
			return fmt.Errorf("finding the gateway-api module (pass --crds): %w", err)
		}
		cfg.crdDir = filepath.Join(strings.TrimSpace(out), "config", "crd", "standard")
	}
	return nil
}

// repoRoot walks up from the working folder to the go.mod of github.com/flaxlb/flax.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/flaxlb/flax\n") {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("not inside the flax repository: run from it, or pass --bin and --crds")
		}
		d = p
	}
}

var startTime = time.Now()

// logf prints one progress line with the time since start.
func logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(startTime).Seconds(), fmt.Sprintf(format, args...))
}

// followGoRun makes a SIGTERM sent to `go run` reach us: the go command dies on SIGTERM
// without relaying it, which would leave the cluster running. When our parent is the go
// command, ask the kernel for a SIGTERM when it exits.
func followGoRun() {
	ppid := os.Getppid()
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return
	}
	const prSetPdeathsig = 1
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetPdeathsig, uintptr(syscall.SIGTERM), 0)
	if os.Getppid() != ppid { // the parent died before the request took effect
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}

// lockPath is the machine-wide lock held while a local cluster runs (or is cleaned up).
const lockPath = "/run/flax-localcluster.lock"

// lockMachine takes the machine-wide lock, failing at once when another run holds it.
func lockMachine() (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", lockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another local cluster is running on this machine (it holds %s); stop it first", lockPath)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
