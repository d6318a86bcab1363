package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/controllers/nodes"
	"github.com/flaxlb/flax/controllers/translate"
)

// leaderLeaseName is the Lease the controller replicas compete for
// (cmd/flax-controller's leaderElectionID); its holder writes status.
const leaderLeaseName = "flax-controller-leader"

type statusOptions struct {
	namespace           string
	controllerName      string
	controllerNamespace string
}

// clusterStatus is what status prints.
type clusterStatus struct {
	GatewayClasses []classState   `json:"gatewayClasses"`
	Gateways       []gatewayState `json:"gateways"`
	Routes         []routeState   `json:"routes"`
	Policies       []policyState  `json:"policies"`
	// LeaseNamespace holds the node Leases and the leader Lease.
	LeaseNamespace string `json:"leaseNamespace,omitempty"`
	// Leader is the holder of the leader Lease, LeaderNode the node it runs on
	// (empty when unknown).
	Leader     string      `json:"leader,omitempty"`
	LeaderNode string      `json:"leaderNode,omitempty"`
	Nodes      []nodeState `json:"nodes"`
}

type classState struct {
	Name           string             `json:"name"`
	ControllerName string             `json:"controllerName"`
	Conditions     []metav1.Condition `json:"conditions,omitempty"`
}

type gatewayState struct {
	Namespace  string             `json:"namespace"`
	Name       string             `json:"name"`
	Class      string             `json:"gatewayClassName"`
	Addresses  []string           `json:"addresses,omitempty"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	Listeners  []listenerState    `json:"listeners,omitempty"`
}

type listenerState struct {
	Name           string             `json:"name"`
	AttachedRoutes int32              `json:"attachedRoutes"`
	Conditions     []metav1.Condition `json:"conditions,omitempty"`
}

type routeState struct {
	Kind      string        `json:"kind"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Hostnames []string      `json:"hostnames,omitempty"`
	Parents   []parentState `json:"parents"`
}

// parentState is the status of a route for one parent, or of a policy for one
// ancestor, as Flax wrote it; Conditions is empty when Flax wrote none.
type parentState struct {
	Ref        string             `json:"ref"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

type policyState struct {
	Kind      string        `json:"kind"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Targets   []string      `json:"targets"`
	Ancestors []parentState `json:"ancestors"`
}

// nodeState is one node's dataplane, from its node Lease.
type nodeState struct {
	Node      string     `json:"node"`
	Leader    bool       `json:"leader,omitempty"`
	Fresh     bool       `json:"fresh"`
	RenewTime *time.Time `json:"renewTime,omitempty"`
	Connected bool       `json:"connected"`
	Synced    bool       `json:"synced"`
	Version   uint64     `json:"appliedVersion,omitempty"`
	Hash      string     `json:"appliedHash,omitempty"`
	Rejection string     `json:"rejection,omitempty"`
	Unbound   []string   `json:"unboundListeners,omitempty"`
	// Configs is the config hash of every Gateway the node's dataplane runs.
	Configs map[string]string `json:"configs,omitempty"`
	// Differs lists the Gateways whose config hash is not the leader's.
	Differs []string `json:"differsFromLeader,omitempty"`
	// State sums it up: in sync, differs from leader, rejected, ...
	State string `json:"state"`
	// Error says why the Lease could not be read.
	Error string `json:"error,omitempty"`
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show Flax's GatewayClasses, Gateways, routes, policies and every node's dataplane",
		Long: `Status shows what Flax reports in the cluster: its GatewayClasses (those whose
spec.controllerName is --controller-name), their Gateways with their listeners,
the HTTPRoutes and GRPCRoutes attached to them, and the BackendPolicies and RoutePolicies, each
with the conditions Flax wrote. Conditions that need attention (not True, or
True for Conflicted) are listed with their messages at the end.

Then, per node, what its dataplane runs, from the node Lease flax-node-<node>
every controller replica keeps in the controller's namespace: whether the
dataplane is connected and synced, the snapshot version and hash it applied, a
rejected snapshot, listeners it could not bind, and the config hash of every
Gateway it runs compared with the leader's (the replica holding the
flax-controller-leader Lease, which writes status). A node whose Lease expired
has stopped reporting.

The controller's namespace is found from its Leases unless
--controller-namespace names it.`,
		Example: `  flaxctl status
  flaxctl status -n demo
  flaxctl status -o yaml
  kubectl flax status --context prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format("table")
			if err != nil {
				return err
			}
			c, _, err := g.client()
			if err != nil {
				return err
			}
			st, err := o.collect(cmd.Context(), c, time.Now())
			if err != nil {
				return err
			}
			if format != "table" {
				return printData(cmd.OutOrStdout(), format, st)
			}
			return printStatusTable(cmd.OutOrStdout(), st)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "show the Gateways, routes and policies of this namespace only (default: all namespaces)")
	f.StringVar(&o.controllerName, "controller-name", controllers.DefaultControllerName, "the GatewayClass spec.controllerName of Flax")
	f.StringVar(&o.controllerNamespace, "controller-namespace", "", "namespace of the controller's Leases (default: found from the Leases)")
	return cmd
}

// collect reads the cluster's state.
func (o *statusOptions) collect(ctx context.Context, c client.Client, now time.Time) (*clusterStatus, error) {
	st := &clusterStatus{GatewayClasses: []classState{}, Gateways: []gatewayState{}, Routes: []routeState{}, Policies: []policyState{}, Nodes: []nodeState{}}
	var classes gatewayv1.GatewayClassList
	if err := c.List(ctx, &classes); err != nil {
		if apimeta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the cluster serves no GatewayClasses: install the Gateway API CRDs (standard channel %s): %w", translate.GatewayAPIVersion, err)
		}
		return nil, fmt.Errorf("listing GatewayClasses: %w", err)
	}
	ours := map[string]bool{}
	for _, gc := range classes.Items {
		if string(gc.Spec.ControllerName) != o.controllerName {
			continue
		}
		ours[gc.Name] = true
		st.GatewayClasses = append(st.GatewayClasses, classState{Name: gc.Name, ControllerName: string(gc.Spec.ControllerName), Conditions: gc.Status.Conditions})
	}
	sort.Slice(st.GatewayClasses, func(i, j int) bool { return st.GatewayClasses[i].Name < st.GatewayClasses[j].Name })

	var opts []client.ListOption
	if o.namespace != "" {
		opts = append(opts, client.InNamespace(o.namespace))
	}
	var gateways gatewayv1.GatewayList
	if err := c.List(ctx, &gateways, opts...); err != nil {
		return nil, fmt.Errorf("listing Gateways: %w", err)
	}
	flaxGateways := map[types.NamespacedName]bool{}
	for _, gw := range gateways.Items {
		if !ours[string(gw.Spec.GatewayClassName)] {
			continue
		}
		flaxGateways[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}] = true
		gs := gatewayState{Namespace: gw.Namespace, Name: gw.Name, Class: string(gw.Spec.GatewayClassName), Conditions: gw.Status.Conditions}
		for _, a := range gw.Status.Addresses {
			gs.Addresses = append(gs.Addresses, a.Value)
		}
		for _, l := range gw.Status.Listeners {
			gs.Listeners = append(gs.Listeners, listenerState{Name: string(l.Name), AttachedRoutes: l.AttachedRoutes, Conditions: l.Conditions})
		}
		st.Gateways = append(st.Gateways, gs)
	}
	sort.Slice(st.Gateways, func(i, j int) bool {
		return st.Gateways[i].Namespace+"/"+st.Gateways[i].Name < st.Gateways[j].Namespace+"/"+st.Gateways[j].Name
	})

	var routes gatewayv1.HTTPRouteList
	if err := c.List(ctx, &routes, opts...); err != nil {
		return nil, fmt.Errorf("listing HTTPRoutes: %w", err)
	}
	for i := range routes.Items {
		r := &routes.Items[i]
		o.addRoute(st, flaxGateways, "HTTPRoute", r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames, r.Status.Parents)
	}
	// A cluster without the GRPCRoute CRD has none.
	var grpcRoutes gatewayv1.GRPCRouteList
	if err := c.List(ctx, &grpcRoutes, opts...); err != nil && !apimeta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing GRPCRoutes: %w", err)
	}
	for i := range grpcRoutes.Items {
		r := &grpcRoutes.Items[i]
		o.addRoute(st, flaxGateways, "GRPCRoute", r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames, r.Status.Parents)
	}
	sort.Slice(st.Routes, func(i, j int) bool {
		a, b := st.Routes[i], st.Routes[j]
		if a.Namespace+"/"+a.Name != b.Namespace+"/"+b.Name {
			return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
		}
		return a.Kind < b.Kind
	})

	if err := o.policies(ctx, c, st, opts); err != nil {
		return nil, err
	}
	if err := o.nodes(ctx, c, st, now); err != nil {
		return nil, err
	}
	return st, nil
}

// addRoute adds a route of kind with the parent statuses Flax wrote and the
// parents of Flax it names that have none yet; a route without either is left
// out.
func (o *statusOptions) addRoute(st *clusterStatus, flaxGateways map[types.NamespacedName]bool, kind string, meta metav1.ObjectMeta,
	parentRefs []gatewayv1.ParentReference, hostnames []gatewayv1.Hostname, parents []gatewayv1.RouteParentStatus,
) {
	rs := routeState{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Parents: []parentState{}}
	for _, h := range hostnames {
		rs.Hostnames = append(rs.Hostnames, string(h))
	}
	written := map[string]bool{}
	for _, p := range parents {
		if string(p.ControllerName) != o.controllerName {
			continue
		}
		ref := parentName(withNamespace(p.ParentRef, meta.Namespace))
		written[ref] = true
		rs.Parents = append(rs.Parents, parentState{Ref: ref, Conditions: p.Conditions})
	}
	// Parents of Flax that Flax has written no status for (yet).
	for _, p := range parentRefs {
		p = withNamespace(p, meta.Namespace)
		if (p.Kind != nil && *p.Kind != "Gateway") || !flaxGateways[types.NamespacedName{Namespace: string(*p.Namespace), Name: string(p.Name)}] {
			continue
		}
		if ref := parentName(p); !written[ref] {
			rs.Parents = append(rs.Parents, parentState{Ref: ref})
		}
	}
	if len(rs.Parents) > 0 {
		st.Routes = append(st.Routes, rs)
	}
}

// withNamespace returns p with its namespace set (ns when it sets none).
func withNamespace(p gatewayv1.ParentReference, ns string) gatewayv1.ParentReference {
	if p.Namespace == nil {
		p.Namespace = ptr.To(gatewayv1.Namespace(ns))
	}
	return p
}

// policies adds the BackendPolicies and RoutePolicies. A cluster without Flax's
// CRDs has none.
func (o *statusOptions) policies(ctx context.Context, c client.Client, st *clusterStatus, opts []client.ListOption) error {
	add := func(kind, ns, name string, targets []gatewayv1.LocalPolicyTargetReferenceWithSectionName, status gatewayv1.PolicyStatus) {
		ps := policyState{Kind: kind, Namespace: ns, Name: name, Targets: []string{}, Ancestors: []parentState{}}
		for _, t := range targets {
			s := string(t.Kind) + " " + string(t.Name)
			if t.SectionName != nil {
				s += "/" + string(*t.SectionName)
			}
			ps.Targets = append(ps.Targets, s)
		}
		for _, a := range status.Ancestors {
			if string(a.ControllerName) == o.controllerName {
				ps.Ancestors = append(ps.Ancestors, parentState{Ref: parentName(withNamespace(a.AncestorRef, ns)), Conditions: a.Conditions})
			}
		}
		st.Policies = append(st.Policies, ps)
	}
	var bps flaxv1alpha1.BackendPolicyList
	if err := c.List(ctx, &bps, opts...); err != nil && !apimeta.IsNoMatchError(err) {
		return fmt.Errorf("listing BackendPolicies: %w", err)
	}
	for _, p := range bps.Items {
		add("BackendPolicy", p.Namespace, p.Name, p.Spec.TargetRefs, p.Status)
	}
	var rps flaxv1alpha1.RoutePolicyList
	if err := c.List(ctx, &rps, opts...); err != nil && !apimeta.IsNoMatchError(err) {
		return fmt.Errorf("listing RoutePolicies: %w", err)
	}
	for _, p := range rps.Items {
		add("RoutePolicy", p.Namespace, p.Name, p.Spec.TargetRefs, p.Status)
	}
	sort.SliceStable(st.Policies, func(i, j int) bool {
		a, b := st.Policies[i], st.Policies[j]
		return a.Kind+" "+a.Namespace+"/"+a.Name < b.Kind+" "+b.Namespace+"/"+b.Name
	})
	return nil
}

// nodes adds every node's dataplane from the node Leases, and finds the leader.
func (o *statusOptions) nodes(ctx context.Context, c client.Client, st *clusterStatus, now time.Time) error {
	var leases coordinationv1.LeaseList
	var opts []client.ListOption
	if o.controllerNamespace != "" {
		opts = append(opts, client.InNamespace(o.controllerNamespace))
	}
	if err := c.List(ctx, &leases, opts...); err != nil {
		return fmt.Errorf("listing Leases: %w", err)
	}
	var mine []coordinationv1.Lease
	namespaces := map[string]bool{}
	for _, l := range leases.Items {
		if nodes.IsNodeLease(&l) || l.Name == leaderLeaseName {
			mine = append(mine, l)
			namespaces[l.Namespace] = true
		}
	}
	if len(namespaces) > 1 {
		names := make([]string, 0, len(namespaces))
		for ns := range namespaces {
			names = append(names, ns)
		}
		sort.Strings(names)
		return fmt.Errorf("the Leases of Flax are in several namespaces (%s): name the controller's with --controller-namespace", strings.Join(names, ", "))
	}
	var leader *coordinationv1.Lease
	for i := range mine {
		l := &mine[i]
		st.LeaseNamespace = l.Namespace
		if l.Name == leaderLeaseName {
			leader = l
			continue
		}
		ns := nodeState{Node: strings.TrimPrefix(l.Name, nodes.LeasePrefix)}
		if l.Spec.RenewTime != nil {
			ns.RenewTime = ptr.To(l.Spec.RenewTime.Time)
		}
		r, fresh, err := nodes.LeaseResult(l, now)
		if err != nil {
			ns.Error = err.Error()
			st.Nodes = append(st.Nodes, ns)
			continue
		}
		ns.Node, ns.Fresh = r.Node, fresh
		ns.Connected, ns.Synced, ns.Version, ns.Hash = r.Connected, r.Synced, r.AppliedVersion, r.AppliedHash
		if rej := r.Rejection; rej != nil {
			ns.Rejection = fmt.Sprintf("version %d: %s: %s", rej.Version, rej.Code, rej.Reason)
		}
		for _, lr := range r.Listeners {
			addr := lr.Address
			if addr == "" {
				addr = "*"
			}
			ns.Unbound = append(ns.Unbound, fmt.Sprintf("%s:%d: %s", addr, lr.Port, lr.Error))
		}
		if r.Configs != nil {
			ns.Configs = map[string]string{}
			for gw, h := range r.Configs {
				ns.Configs[gw.String()] = h
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Node < st.Nodes[j].Node })
	if leader != nil {
		st.Leader = ptr.Deref(leader.Spec.HolderIdentity, "")
		st.LeaderNode = o.leaderNode(ctx, c, st, leader)
	}
	var leaderConfigs map[string]string
	for i := range st.Nodes {
		if st.Nodes[i].Node == st.LeaderNode && st.LeaderNode != "" {
			st.Nodes[i].Leader = true
			leaderConfigs = st.Nodes[i].Configs
		}
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if leaderConfigs != nil && n.Error == "" {
			gws := map[string]bool{}
			for gw := range leaderConfigs {
				gws[gw] = true
			}
			for gw := range n.Configs {
				gws[gw] = true
			}
			for gw := range gws {
				if leaderConfigs[gw] != n.Configs[gw] {
					n.Differs = append(n.Differs, gw)
				}
			}
			sort.Strings(n.Differs)
		}
		n.State = nodeSummary(n, leaderConfigs != nil)
	}
	return nil
}

// leaderNode returns the node the leader runs on. The holder identity of the
// leader Lease is "<hostname>_<uuid>": a hostNetwork pod's hostname is its node's
// (the node's name, or its kubernetes.io/hostname label), another pod's is the
// pod's name. Failing those, when a single node Lease is fresh, the leader runs
// there: every replica keeps its node's Lease.
func (o *statusOptions) leaderNode(ctx context.Context, c client.Client, st *clusterStatus, leader *coordinationv1.Lease) string {
	host, _, _ := strings.Cut(ptr.Deref(leader.Spec.HolderIdentity, ""), "_")
	if host != "" {
		for _, n := range st.Nodes {
			if n.Node == host {
				return host
			}
		}
		var pod corev1.Pod
		if err := c.Get(ctx, types.NamespacedName{Namespace: leader.Namespace, Name: host}, &pod); err == nil {
			return pod.Spec.NodeName
		}
		var nodeList corev1.NodeList
		if err := c.List(ctx, &nodeList, client.MatchingLabels{corev1.LabelHostname: host}); err == nil && len(nodeList.Items) == 1 {
			return nodeList.Items[0].Name
		}
	}
	var fresh []string
	for _, n := range st.Nodes {
		if n.Fresh {
			fresh = append(fresh, n.Node)
		}
	}
	if len(fresh) == 1 {
		return fresh[0]
	}
	return ""
}

// nodeSummary sums up a node's state in a few words.
func nodeSummary(n *nodeState, haveLeader bool) string {
	switch {
	case n.Error != "":
		return "unreadable lease"
	case !n.Fresh:
		return "lease expired"
	case !n.Connected:
		return "dataplane not connected"
	case n.Rejection != "":
		return "rejected a snapshot"
	case !n.Synced:
		return "not synced"
	case len(n.Unbound) > 0:
		return "listeners not bound"
	case !haveLeader:
		return "synced (no leader to compare)"
	case len(n.Differs) > 0:
		return "differs from leader"
	}
	return "in sync"
}

// printStatusTable prints the status as kubectl-style tables.
func printStatusTable(w io.Writer, st *clusterStatus) error {
	tw := newTable(w)
	var problems []string
	row(tw, "GATEWAYCLASS", "CONTROLLER", "CONDITIONS")
	for _, c := range st.GatewayClasses {
		row(tw, c.Name, c.ControllerName, conditionSummary(c.Conditions))
		problems = append(problems, notTrue("GatewayClass "+c.Name, c.Conditions)...)
	}
	fmt.Fprintln(tw)
	row(tw, "GATEWAY", "CLASS", "ADDRESSES", "LISTENERS", "CONDITIONS")
	for _, g := range st.Gateways {
		name := g.Namespace + "/" + g.Name
		var ls []string
		for _, l := range g.Listeners {
			ls = append(ls, l.Name+"("+strconv.Itoa(int(l.AttachedRoutes))+" routes)")
			problems = append(problems, notTrue("Gateway "+name+" listener "+l.Name, l.Conditions)...)
		}
		row(tw, name, g.Class, orNone(strings.Join(g.Addresses, ",")), orNone(strings.Join(ls, ",")), conditionSummary(g.Conditions))
		problems = append(problems, notTrue("Gateway "+name, g.Conditions)...)
	}
	fmt.Fprintln(tw)
	row(tw, "ROUTE", "HOSTNAMES", "PARENT", "CONDITIONS")
	for _, r := range st.Routes {
		name := r.Kind + " " + r.Namespace + "/" + r.Name
		for _, p := range r.Parents {
			conds := conditionSummary(p.Conditions)
			if len(p.Conditions) == 0 {
				conds = "<no status from Flax>"
			}
			row(tw, name, orNone(strings.Join(r.Hostnames, ",")), p.Ref, conds)
			problems = append(problems, notTrue(name+" parent "+p.Ref, p.Conditions)...)
		}
	}
	fmt.Fprintln(tw)
	row(tw, "POLICY", "TARGETS", "ANCESTOR", "CONDITIONS")
	for _, p := range st.Policies {
		name := p.Kind + " " + p.Namespace + "/" + p.Name
		targets := strings.Join(p.Targets, ",")
		if len(p.Ancestors) == 0 {
			row(tw, name, targets, "<none>", "<no status from Flax>")
		}
		for _, a := range p.Ancestors {
			row(tw, name, targets, a.Ref, conditionSummary(a.Conditions))
			problems = append(problems, notTrue(name+" ancestor "+a.Ref, a.Conditions)...)
		}
	}
	fmt.Fprintln(tw)
	leader := "<none>"
	if st.Leader != "" {
		leader = st.Leader
		if st.LeaderNode != "" {
			leader += " on node " + st.LeaderNode
		}
	}
	fmt.Fprintf(tw, "LEADER\t%s\n\n", leader)
	row(tw, "NODE", "LEADER", "CONNECTED", "SYNCED", "VERSION", "SNAPSHOT HASH", "LAST RENEW", "STATE")
	for _, n := range st.Nodes {
		renew := "<none>"
		if n.RenewTime != nil {
			renew = n.RenewTime.UTC().Format(time.RFC3339)
		}
		mark := ""
		if n.Leader {
			mark = "*"
		}
		row(tw, n.Node, mark, strconv.FormatBool(n.Connected), strconv.FormatBool(n.Synced), strconv.FormatUint(n.Version, 10), orNone(n.Hash), renew, n.State)
		if n.Error != "" {
			problems = append(problems, "node "+n.Node+": "+n.Error)
		}
		if n.Rejection != "" {
			problems = append(problems, "node "+n.Node+": rejected "+n.Rejection)
		}
		for _, u := range n.Unbound {
			problems = append(problems, "node "+n.Node+": listener not bound: "+u)
		}
	}
	fmt.Fprintln(tw)
	// The config hash of every Gateway on every node, against the leader's.
	var leaderConfigs map[string]string
	for _, n := range st.Nodes {
		if n.Leader {
			leaderConfigs = n.Configs
		}
	}
	row(tw, "GATEWAY CONFIG", "NODE", "CONFIG HASH", "LEADER'S", "MATCH")
	var gws []string
	for _, n := range st.Nodes {
		for gw := range n.Configs {
			if !slices.Contains(gws, gw) {
				gws = append(gws, gw)
			}
		}
	}
	for gw := range leaderConfigs {
		if !slices.Contains(gws, gw) {
			gws = append(gws, gw)
		}
	}
	sort.Strings(gws)
	for _, gw := range gws {
		for _, n := range st.Nodes {
			if n.Error != "" {
				continue
			}
			match := "-"
			if leaderConfigs != nil {
				match = strconv.FormatBool(n.Configs[gw] == leaderConfigs[gw])
			}
			lh := "-"
			if leaderConfigs != nil {
				lh = orNone(leaderConfigs[gw])
			}
			row(tw, gw, n.Node, orNone(n.Configs[gw]), lh, match)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printProblems(w, problems)
}
