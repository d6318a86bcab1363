package translate

import (
	"net/netip"
	"slices"

	"google.golang.org/protobuf/proto"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// Translate computes the dataplane snapshot and the statuses for in. It is pure
// and deterministic; see the package documentation for the rules it applies.
func Translate(in *Input) *Output {
	t := newTranslator(in)
	t.translateClasses()
	t.translateGateways()
	t.translateListenerSets()
	t.allocateAddresses()
	t.resolveBinds()
	t.translateBackendTLSPolicies()
	t.translateRoutes()
	t.translateL4Routes()
	t.translateBackendPolicies()
	t.translateRoutePolicies()
	t.backendTLSTargetGateways()
	snap := t.buildSnapshot()
	snap.Hash = dataplanev1.Hash(snap)
	return &Output{
		Snapshot:        snap,
		GatewayClasses:  t.classStatuses(),
		Gateways:        t.gatewayStatuses(t.configHashes(snap)),
		ListenerSets:    t.listenerSetStatuses(),
		HTTPRoutes:      t.routeStatuses(kindHTTPRoute),
		GRPCRoutes:      t.routeStatuses(kindGRPCRoute),
		TCPRoutes:       l4RouteStatuses(t.tcpRoutes),
		TLSRoutes:       l4RouteStatuses(t.tlsRoutes),
		UDPRoutes:       l4RouteStatuses(t.udpRoutes),
		BackendPolicies: t.policyStatuses(t.backendPolicies, "no route of a Flax Gateway uses %s yet"),
		RoutePolicies:   t.policyStatuses(t.routePolicies, "no Flax Gateway serves %s yet"),
		BackendTLSPolicies: t.policyStatuses(t.tlsPolicies,
			"no HTTPRoute or GRPCRoute of a Flax Gateway uses %s yet"),
		GatewayServices: t.gatewayServices(),
	}
}

// translator holds the indexed Input and the state of one translation.
type translator struct {
	in            *Input
	grants        grants
	namespaces    map[string]map[string]string
	services      map[types.NamespacedName]*corev1.Service
	secrets       map[types.NamespacedName]*corev1.Secret
	configMaps    map[types.NamespacedName]*corev1.ConfigMap
	slices        map[types.NamespacedName][]*discoveryv1.EndpointSlice
	nodeAddresses []string

	classes      map[string]*classInfo
	classOrder   []*classInfo
	gateways     []*gatewayInfo // oldest first
	gatewayByKey map[types.NamespacedName]*gatewayInfo
	// listenerSets are the ListenerSets of Flax's Gateways, by namespace/name.
	listenerSets     []*listenerSetInfo
	listenerSetByKey map[types.NamespacedName]*listenerSetInfo
	binds            map[bindKey]*bind
	bindOrder        []*bind
	routes           []*routeInfo // HTTPRoutes and GRPCRoutes, oldest first
	tcpRoutes        []*l4Route   // oldest first
	tlsRoutes        []*l4Route   // oldest first
	udpRoutes        []*l4Route   // oldest first
	groups           map[string]*groupInfo

	backendPolicies []*policyInfo // oldest first
	backendHolders  map[policySlot]*policyInfo
	routePolicies   []*policyInfo // oldest first
	routeHolders    map[policySlot]*policyInfo
	tlsPolicies     []*policyInfo // BackendTLSPolicies, oldest first
	tlsHolders      map[policySlot]*policyInfo
	// tlsPortGateways are, for every Service port a BackendTLSPolicy holds,
	// the Gateways whose served HTTPRoutes and GRPCRoutes refer to it.
	tlsPortGateways map[tlsPort]map[types.NamespacedName]bool
}

// newTranslator indexes in.
func newTranslator(in *Input) *translator {
	t := &translator{
		in:           in,
		grants:       indexGrants(in.ReferenceGrants),
		namespaces:   make(map[string]map[string]string, len(in.Namespaces)),
		services:     make(map[types.NamespacedName]*corev1.Service, len(in.Services)),
		secrets:      make(map[types.NamespacedName]*corev1.Secret, len(in.Secrets)),
		configMaps:   make(map[types.NamespacedName]*corev1.ConfigMap, len(in.ConfigMaps)),
		slices:       make(map[types.NamespacedName][]*discoveryv1.EndpointSlice, len(in.Services)),
		classes:      map[string]*classInfo{},
		gatewayByKey: map[types.NamespacedName]*gatewayInfo{},
		binds:        map[bindKey]*bind{},
		groups:       map[string]*groupInfo{},
	}
	for i := range in.Namespaces {
		ns := &in.Namespaces[i]
		t.namespaces[ns.Name] = ns.Labels
	}
	for i := range in.Services {
		svc := &in.Services[i]
		t.services[key(svc)] = svc
	}
	for i := range in.Secrets {
		s := &in.Secrets[i]
		t.secrets[key(s)] = s
	}
	for i := range in.ConfigMaps {
		cm := &in.ConfigMaps[i]
		t.configMaps[key(cm)] = cm
	}
	for i := range in.EndpointSlices {
		es := &in.EndpointSlices[i]
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := types.NamespacedName{Namespace: es.Namespace, Name: svc}
		t.slices[k] = append(t.slices[k], es)
	}
	for _, list := range t.slices {
		slices.SortFunc(list, func(a, b *discoveryv1.EndpointSlice) int { return compareStrings(a.Name, b.Name) })
	}
	seen := map[netip.Addr]bool{}
	var addrs []netip.Addr
	for _, a := range in.NodeAddresses {
		ip, err := netip.ParseAddr(a)
		if err != nil || seen[ip.Unmap()] {
			continue
		}
		seen[ip.Unmap()] = true
		addrs = append(addrs, ip.Unmap())
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, ip := range addrs {
		t.nodeAddresses = append(t.nodeAddresses, ip.String())
	}
	return t
}

// namespaceLabels returns the labels of namespace ns. A namespace the Input does
// not hold gets the label the API server puts on every namespace.
func (t *translator) namespaceLabels(ns string) map[string]string {
	if l, ok := t.namespaces[ns]; ok {
		return l
	}
	return map[string]string{corev1.LabelMetadataName: ns}
}

// buildSnapshot assembles the snapshot from the translated Gateways and routes.
func (t *translator) buildSnapshot() *dataplanev1.Snapshot {
	snap := &dataplanev1.Snapshot{}
	for _, b := range t.bindOrder {
		b.built = b.listener()
		if b.built != nil {
			snap.Listeners = append(snap.Listeners, b.built)
		}
	}
	slices.SortFunc(snap.Listeners, func(a, b *dataplanev1.Listener) int { return compareStrings(a.Name, b.Name) })
	// One span exporter per dataplane: that of the class whose name sorts
	// first among those whose settings trace a listener.
	var exporter *classTracing
	for _, b := range t.bindOrder {
		if b.built != nil && b.tracing != nil && (exporter == nil || b.tracing.class < exporter.class) {
			exporter = b.tracing
		}
	}
	if exporter != nil {
		snap.Tracing = proto.CloneOf(exporter.exporter)
	}
	names := make([]string, 0, len(t.groups))
	for name, g := range t.groups {
		if g.used {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		snap.BackendGroups = append(snap.BackendGroups, t.backendGroup(t.groups[name]))
	}
	return snap
}
