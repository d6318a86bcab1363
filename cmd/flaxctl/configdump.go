package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// defaultAdminAddress is flax-dataplane's default --admin-address; the chart binds
// 127.0.0.1:<dataplane.adminPort> (9901 by default).
const defaultAdminAddress = "127.0.0.1:9901"

type configDumpOptions struct {
	node                string
	gateway             string
	route               string
	adminAddress        string
	controllerNamespace string
	timeout             time.Duration
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration dataplanes serve",
		Long:  `Config inspects the configuration the dataplanes serve; see its subcommands.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newConfigDumpCmd(g))
	return cmd
}

func newConfigDumpCmd(g *globals) *cobra.Command {
	o := &configDumpOptions{}
	cmd := &cobra.Command{
		Use:   "dump [--node NODE] [--gateway NS/NAME] [--route NS/NAME]",
		Short: "Print the snapshot a node's dataplane serves, with its endpoints",
		Long: `Dump prints the snapshot a dataplane serves, endpoints included, as its admin
server's /config_dump gives it: the configuration actually applied on that node,
which may lag behind or differ from what the controller translated.

The admin server answers /config_dump to loopback clients only, and the chart
binds it to 127.0.0.1 of each node. Dump therefore reaches it through the API
server's port forwarding to the Flax pod on --node (the pods/portforward
subresource, as kubectl port-forward; the kubelet connects to the port inside the
pod's network namespace, which for Flax's hostNetwork pod is the node's, from
127.0.0.1). The pod is the one running flax-dataplane on that node; its admin
port is read from its --admin-address. Without --node the cluster must have one
such pod. With --admin-address, dump asks that address directly (on the node
itself, or through a tunnel of your own) and needs no cluster.

--gateway keeps the dataplane listeners of one Gateway (named after it, or, when
the cluster is reachable, on its ports, as Gateways sharing an address and port
are merged onto the listener of the oldest), --route the routes of one HTTPRoute
(named "<namespace>/<route>/rule-<index>") and the virtual hosts and listeners
holding them; either keeps only the backend groups the remaining routes use.`,
		Example: `  flaxctl config dump --node node-1
  flaxctl config dump --node node-1 --gateway demo/demo -o table
  flaxctl config dump --node node-1 --route demo/echo -o json
  # On the node itself, or through ssh -L 9901:127.0.0.1:9901 node-1:
  flaxctl config dump --admin-address 127.0.0.1:9901`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format("yaml")
			if err != nil {
				return err
			}
			return o.run(cmd, g, format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.node, "node", "", "the node whose dataplane to ask (default: the only Flax pod's)")
	f.StringVar(&o.gateway, "gateway", "", "keep the listeners of this Gateway (NAMESPACE/NAME)")
	f.StringVar(&o.route, "route", "", "keep the routes of this HTTPRoute (NAMESPACE/NAME)")
	f.StringVar(&o.adminAddress, "admin-address", "", "ask the dataplane admin server at this address directly, not through the API server")
	f.StringVar(&o.controllerNamespace, "controller-namespace", "", "namespace of the Flax pods (default: all namespaces)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the dump")
	return cmd
}

func (o *configDumpOptions) run(cmd *cobra.Command, g *globals, format string) error {
	gw, err := parseKey("--gateway", o.gateway)
	if err != nil {
		return err
	}
	route, err := parseKey("--route", o.route)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()

	var c client.Client
	var cfg *rest.Config
	var body []byte
	if o.adminAddress != "" {
		body, err = fetchConfigDump(ctx, http.DefaultTransport, o.adminAddress)
		if err != nil {
			return err
		}
		if gw != nil {
			// The cluster, if any, tells the Gateway's ports.
			if cl, _, cerr := g.client(); cerr == nil {
				c = cl
			}
		}
	} else {
		c, cfg, err = g.client()
		if err != nil {
			return err
		}
		pod, port, err := o.findPod(ctx, c)
		if err != nil {
			return err
		}
		body, err = dumpThroughPortForward(ctx, cfg, pod, port, cmd.ErrOrStderr())
		if err != nil {
			return fmt.Errorf("config dump of pod %s/%s on node %s: %w", pod.Namespace, pod.Name, pod.Spec.NodeName, err)
		}
	}
	snap, err := parseConfigDump(body)
	if err != nil {
		return err
	}
	if gw != nil {
		var ports []uint32
		var addrs []string
		if c != nil {
			var obj gatewayv1.Gateway
			if err := c.Get(ctx, *gw, &obj); err == nil {
				for _, l := range obj.Spec.Listeners {
					ports = append(ports, uint32(l.Port))
				}
				for _, a := range obj.Spec.Addresses {
					addrs = append(addrs, a.Value)
				}
				for _, a := range obj.Status.Addresses {
					addrs = append(addrs, a.Value)
				}
			}
		}
		snap = filterGateway(snap, *gw, ports, addrs)
	}
	if route != nil {
		snap = filterRoute(snap, *route)
	}
	return printSnapshot(cmd.OutOrStdout(), format, snap)
}

// parseKey parses "NAMESPACE/NAME"; "" gives nil.
func parseKey(flag, s string) (*types.NamespacedName, error) {
	if s == "" {
		return nil, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%s %q: want NAMESPACE/NAME", flag, s)
	}
	return &types.NamespacedName{Namespace: ns, Name: name}, nil
}

// fetchConfigDump GETs /config_dump from the admin server at addr.
func fetchConfigDump(ctx context.Context, rt http.RoundTripper, addr string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/config_dump", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /config_dump: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading /config_dump: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /config_dump: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// parseConfigDump decodes the admin server's /config_dump: the protojson of the
// snapshot served, or {"error": ...} before any is applied. Fields this flaxctl
// does not know (a newer dataplane) are skipped.
func parseConfigDump(body []byte) (*dataplanev1.Snapshot, error) {
	var notYet struct {
		Error string `json:"error"`
	}
	if err := jsonUnmarshal(body, &notYet); err == nil && notYet.Error != "" {
		return nil, fmt.Errorf("the dataplane serves nothing: %s", notYet.Error)
	}
	snap := &dataplanev1.Snapshot{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, snap); err != nil {
		return nil, fmt.Errorf("decoding /config_dump: %w", err)
	}
	return snap, nil
}

// findPod returns the pod running flax-dataplane on o.node (or the only one) and
// its admin port.
func (o *configDumpOptions) findPod(ctx context.Context, c client.Client) (*corev1.Pod, int, error) {
	var pods corev1.PodList
	var opts []client.ListOption
	if o.controllerNamespace != "" {
		opts = append(opts, client.InNamespace(o.controllerNamespace))
	}
	if err := c.List(ctx, &pods, opts...); err != nil {
		return nil, 0, fmt.Errorf("listing pods: %w", err)
	}
	type candidate struct {
		pod  *corev1.Pod
		port int
	}
	var found []candidate
	var nodes []string
	for i := range pods.Items {
		p := &pods.Items[i]
		addr, ok := dataplaneAdminAddress(p)
		if !ok || p.Status.Phase != corev1.PodRunning {
			continue
		}
		_, portStr, err := net.SplitHostPort(addr)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil || port <= 0 {
			continue
		}
		nodes = append(nodes, p.Spec.NodeName)
		if o.node == "" || p.Spec.NodeName == o.node {
			found = append(found, candidate{p, port})
		}
	}
	sort.Strings(nodes)
	switch {
	case len(found) == 0 && o.node != "":
		return nil, 0, fmt.Errorf("no running flax-dataplane pod on node %q (nodes with one: %s); where flax-dataplane runs outside a pod, use --admin-address on its node", o.node, orNone(strings.Join(nodes, ", ")))
	case len(found) == 0:
		return nil, 0, errors.New("no running flax-dataplane pod in the cluster; where flax-dataplane runs outside a pod, use --admin-address on its node")
	case o.node == "" && len(nodes) > 1:
		return nil, 0, fmt.Errorf("flax-dataplane runs on several nodes (%s): pick one with --node", strings.Join(nodes, ", "))
	}
	// During a surge update a node runs two pods for a moment: take the newest
	// one that is not being deleted.
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i].pod, found[j].pod
		if (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) {
			return a.DeletionTimestamp == nil
		}
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	})
	return found[0].pod, found[0].port, nil
}

// dataplaneAdminAddress returns the --admin-address of the pod's flax-dataplane
// container, and whether the pod runs one that serves the admin server.
func dataplaneAdminAddress(p *corev1.Pod) (string, bool) {
	for _, c := range p.Spec.Containers {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if len(argv) == 0 || path.Base(argv[0]) != "flax-dataplane" {
			continue
		}
		addr := defaultAdminAddress
		for i, a := range argv {
			switch {
			case strings.HasPrefix(a, "--admin-address="), strings.HasPrefix(a, "-admin-address="):
				_, addr, _ = strings.Cut(a, "=")
			case (a == "--admin-address" || a == "-admin-address") && i+1 < len(argv):
				addr = argv[i+1]
			}
		}
		return addr, addr != ""
	}
	return "", false
}

// dumpThroughPortForward forwards a local port to the pod's port through the API
// server and GETs /config_dump through it.
func dumpThroughPortForward(ctx context.Context, cfg *rest.Config, pod *corev1.Pod, port int, stderr io.Writer) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, stderr)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return nil, fmt.Errorf("port forwarding: %w", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("port forwarding: %w", ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil {
		return nil, fmt.Errorf("port forwarding: %w", err)
	}
	if len(ports) == 0 {
		return nil, errors.New("port forwarding: no local port")
	}
	return fetchConfigDump(ctx, http.DefaultTransport, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
}

// filterGateway keeps the listeners of Gateway gw: those named after it
// ("<namespace>/<name>/<port>[/<address>]") and, when ports is known, those on
// one of its ports (and, when addrs is known, on one of them or every address),
// where Gateways merged with an older one are served; then the backend groups
// their routes use.
func filterGateway(snap *dataplanev1.Snapshot, gw types.NamespacedName, ports []uint32, addrs []string) *dataplanev1.Snapshot {
	prefix := gw.String() + "/"
	out := &dataplanev1.Snapshot{Version: snap.GetVersion(), Hash: snap.GetHash()}
	for _, l := range snap.GetListeners() {
		keep := strings.HasPrefix(l.GetName(), prefix)
		for _, p := range ports {
			if l.GetPort() == p && (l.GetAddress() == "" || len(addrs) == 0 || contains(addrs, l.GetAddress())) {
				keep = true
			}
		}
		if keep {
			out.Listeners = append(out.Listeners, l)
		}
	}
	out.BackendGroups = usedGroups(snap, out.Listeners)
	return out
}

// filterRoute keeps the routes of HTTPRoute route, the virtual hosts and
// listeners holding them, and the backend groups they use.
func filterRoute(snap *dataplanev1.Snapshot, route types.NamespacedName) *dataplanev1.Snapshot {
	prefix := route.String() + "/"
	out := &dataplanev1.Snapshot{Version: snap.GetVersion(), Hash: snap.GetHash()}
	for _, l := range snap.GetListeners() {
		var vhosts []*dataplanev1.VirtualHost
		for _, vh := range l.GetVirtualHosts() {
			var routes []*dataplanev1.Route
			for _, r := range vh.GetRoutes() {
				if strings.HasPrefix(r.GetName(), prefix) {
					routes = append(routes, r)
				}
			}
			if len(routes) > 0 {
				vh = dataplanev1.ShallowCopy(vh)
				vh.Routes = routes
				vhosts = append(vhosts, vh)
			}
		}
		if len(vhosts) > 0 {
			l = dataplanev1.ShallowCopy(l)
			l.VirtualHosts = vhosts
			l.TcpRoute = nil
			out.Listeners = append(out.Listeners, l)
		}
	}
	out.BackendGroups = usedGroups(snap, out.Listeners)
	return out
}

// usedGroups returns the backend groups of snap that listeners use.
func usedGroups(snap *dataplanev1.Snapshot, listeners []*dataplanev1.Listener) []*dataplanev1.BackendGroup {
	used := map[string]bool{}
	for _, l := range listeners {
		backendGroupsOf(l, used)
	}
	var out []*dataplanev1.BackendGroup
	for _, g := range snap.GetBackendGroups() {
		if used[g.GetName()] {
			out = append(out, g)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
