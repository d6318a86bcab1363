// Command flax-controller is Flax's control plane. One runs on every node, next to
// that node's flax-dataplane: it watches the Gateway API objects and the Services,
// EndpointSlices, Secrets, Namespaces and Nodes they depend on, translates them into
// a dataplane snapshot, streams it to the local dataplane over a unix socket, and,
// on the replica holding the leader lease, writes GatewayClass, Gateway and
// HTTPRoute status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/controllers/nodes"
)

// leaderElectionID names the Lease the replicas compete for.
const leaderElectionID = "flax-controller-leader"

// config holds the parsed flags.
type config struct {
	metricsAddr     string
	probeAddr       string
	probeSocket     string
	reusePort       bool
	leaderElect     bool
	leaderNamespace string
	controllerName  string
	socket          string
	nodeName        string
	nodeSelector    string
	coalesceDelay   time.Duration
	coalesceMaxWait time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		if err := probeCmd(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(os.Stderr, "flax-controller probe: %v\n", err)
			}
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "flax-controller: %v\n", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the manager until SIGTERM or SIGINT.
func run() error {
	var cfg config
	zapOpts := zap.Options{}
	fs := flag.CommandLine // controller-runtime registers --kubeconfig here
	fs.StringVar(&cfg.metricsAddr, "metrics-bind-address", "127.0.0.1:9902",
		"address of the Prometheus /metrics endpoint (the dataplane's admin server uses 9901); \"0\" disables it")
	fs.StringVar(&cfg.probeAddr, "health-probe-bind-address", ":9903",
		"address of the /healthz and /readyz endpoints; /readyz fails until the local dataplane has applied a configuration")
	fs.StringVar(&cfg.probeSocket, "health-probe-socket", "",
		"unix socket that also serves /healthz and /readyz, for exec probes (flax-controller probe --socket PATH) that must reach this process and no other")
	fs.BoolVar(&cfg.reusePort, "reuse-port", false,
		"bind the metrics and health probe addresses with SO_REUSEPORT, so that a controller replacing this one on the node can bind them before this one exits")
	fs.BoolVar(&cfg.leaderElect, "leader-elect", false,
		"compete for the leader Lease; only the leader writes status (every replica still configures its own dataplane)")
	fs.StringVar(&cfg.leaderNamespace, "leader-election-namespace", "",
		"namespace of the leader Lease and of the per-node result Leases flax-node-<node> (default: the namespace the pod runs in, else \"default\")")
	fs.StringVar(&cfg.controllerName, "controller-name", controllers.DefaultControllerName,
		"GatewayClass spec.controllerName to handle; other GatewayClasses and their Gateways are ignored")
	fs.StringVar(&cfg.socket, "dataplane-socket", "/run/flax/dataplane.sock",
		"unix socket of the local flax-dataplane")
	fs.StringVar(&cfg.nodeName, "node-name", os.Getenv("NODE_NAME"),
		"name of the node this controller runs on (default $NODE_NAME)")
	fs.StringVar(&cfg.nodeSelector, "gateway-node-selector", "",
		"label selector of the nodes that run a dataplane (the DaemonSet's nodeSelector); their Ready nodes' addresses become Gateway addresses (default: every node)")
	fs.DurationVar(&cfg.coalesceDelay, "coalesce-delay", controllers.DefaultCoalesceDelay,
		"quiet period after a watch event before translating; a burst of events makes one translation")
	fs.DurationVar(&cfg.coalesceMaxWait, "coalesce-max-wait", controllers.DefaultCoalesceMaxWait,
		"longest a continuous stream of events may delay a translation")
	zapOpts.BindFlags(fs)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, `Usage: flax-controller [flags]

flax-controller runs on every node next to flax-dataplane. It watches Gateway API
objects (GatewayClasses whose spec.controllerName is --controller-name, their
Gateways, HTTPRoutes, ReferenceGrants) and the Services, EndpointSlices, TLS Secrets,
Namespaces and Nodes they use, translates them into a dataplane snapshot and streams
it to the dataplane at --dataplane-socket. With --leader-elect, only the replica
holding the leader Lease writes status.

Usage: flax-controller probe --socket PATH [--path /readyz|/healthz]
  asks a running flax-controller's health over its --health-probe-socket; exits 0
  only on a 2xx answer (the chart's exec probes).

Flags:
`)
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:]) // flag.CommandLine exits on errors and -help
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if cfg.nodeName == "" {
		log.Info("no node name set (--node-name or NODE_NAME); conditions will not name the node")
	}
	var selector labels.Selector
	if cfg.nodeSelector != "" {
		s, err := labels.Parse(cfg.nodeSelector)
		if err != nil {
			return fmt.Errorf("parsing --gateway-node-selector: %w", err)
		}
		selector = s
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("registering core types: %w", err)
	}
	if err := gatewayv1.Install(scheme); err != nil {
		return fmt.Errorf("registering gateway api v1 types: %w", err)
	}
	if err := gatewayv1beta1.Install(scheme); err != nil {
		return fmt.Errorf("registering gateway api v1beta1 types: %w", err)
	}
	if err := flaxv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("registering flax v1alpha1 types: %w", err)
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	metricsOpts := metricsserver.Options{BindAddress: cfg.metricsAddr}
	if cfg.reusePort {
		metricsOpts.ListenConfig.Control = setReusePort
	}
	// The health endpoints are served by healthServer (TCP and the unix socket),
	// not by the manager.
	healthListeners, err := listen(cfg.probeAddr, cfg.probeSocket, cfg.reusePort)
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range healthListeners {
			_ = l.Close()
		}
	}()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        "0",
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       cfg.leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	leaseNamespace := controllerNamespace(cfg.leaderNamespace)
	c, err := controllers.New(ctx, mgr, controllers.Options{
		LeaseNamespace:  leaseNamespace,
		ControllerName:  cfg.controllerName,
		NodeName:        cfg.nodeName,
		NodeSelector:    selector,
		DataplaneSocket: cfg.socket,
		CoalesceDelay:   cfg.coalesceDelay,
		CoalesceMaxWait: cfg.coalesceMaxWait,
	})
	if err != nil {
		return err
	}
	health := newHealthServer(map[string]healthz.Checker{"ping": healthz.Ping},
		map[string]healthz.Checker{"dataplane": c.Delivery.ReadyCheck})
	go health.serve(ctx, healthListeners)
	log.Info("starting", "controllerName", cfg.controllerName, "node", cfg.nodeName, "dataplaneSocket", cfg.socket,
		"leaderElection", cfg.leaderElect, "leaseNamespace", leaseNamespace, "healthProbeSocket", cfg.probeSocket)
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// controllerNamespace returns the namespace of the node Leases: the same as the
// leader Lease's, i.e. --leader-election-namespace, else the namespace the pod runs
// in (as controller-runtime's leader election finds it), else "default".
func controllerNamespace(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return nodes.DefaultNamespace
}
