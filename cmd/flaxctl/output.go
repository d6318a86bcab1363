package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers/translate"
)

// printData prints v as YAML or JSON (through its JSON form, so Kubernetes
// types print as kubectl prints them). Null lastTransitionTime fields, which the
// translator leaves unset, are dropped.
func printData(w io.Writer, format string, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return err
	}
	generic = dropNullTimes(generic)
	switch format {
	case "json":
		b, err := json.MarshalIndent(generic, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	default:
		b, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
}

// dropNullTimes removes "lastTransitionTime": null from maps in v.
func dropNullTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if k == "lastTransitionTime" && val == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNullTimes(val)
		}
	case []any:
		for i := range x {
			x[i] = dropNullTimes(x[i])
		}
	}
	return v
}

// newTable returns a tabwriter for kubectl-style columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

// row writes one tab-separated row.
func row(tw io.Writer, cols ...string) {
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// orNone returns s, or "<none>" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// printSnapshot prints a snapshot: its YAML form (the one flax-dataplane run
// --config reads), protojson, or a summary table.
func printSnapshot(w io.Writer, format string, snap *dataplanev1.Snapshot) error {
	switch format {
	case "json":
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(snap)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "table":
		return snapshotTable(w, snap)
	default:
		b, err := dataplanev1.MarshalYAML(snap)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
}

// snapshotTable summarizes a snapshot: its listeners, then its backend groups.
func snapshotTable(w io.Writer, snap *dataplanev1.Snapshot) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "SNAPSHOT\tHASH %s\tVERSION %d\n\n", orNone(snap.GetHash()), snap.GetVersion())
	row(tw, "LISTENER", "ADDRESS", "PORT", "PROTOCOL", "VIRTUAL HOSTS", "ROUTES")
	for _, l := range snap.GetListeners() {
		var hosts []string
		routes := 0
		for _, vh := range l.GetVirtualHosts() {
			hosts = append(hosts, vh.GetName())
			routes += len(vh.GetRoutes())
		}
		if l.GetTcpRoute() != nil {
			routes++
		}
		addr := l.GetAddress()
		if addr == "" {
			addr = "*"
		}
		row(tw, l.GetName(), addr, strconv.Itoa(int(l.GetPort())), l.GetProtocol().String(), orNone(strings.Join(hosts, ",")), strconv.Itoa(routes))
	}
	fmt.Fprintln(tw)
	row(tw, "BACKEND GROUP", "LOAD BALANCING", "ENDPOINTS")
	for _, g := range snap.GetBackendGroups() {
		var eps []string
		for _, e := range g.GetEndpoints() {
			eps = append(eps, e.GetAddress()+":"+strconv.Itoa(int(e.GetPort())))
		}
		row(tw, g.GetName(), g.GetLoadBalancing().GetPolicy().String(), orNone(strings.Join(eps, ",")))
	}
	return tw.Flush()
}

// named is an object's status, keyed by the object's name ("namespace/name" for
// namespaced objects).
type named struct {
	Name   string `json:"name"`
	Status any    `json:"status"`
}

// statusDocument is what translate --output-status prints: the statuses the
// translator computed, in the layout of the translator's golden files.
type statusDocument struct {
	GatewayClasses  []named `json:"gatewayClasses"`
	Gateways        []named `json:"gateways"`
	HTTPRoutes      []named `json:"httpRoutes"`
	GRPCRoutes      []named `json:"grpcRoutes,omitempty"`
	BackendPolicies []named `json:"backendPolicies,omitempty"`
	RoutePolicies   []named `json:"routePolicies,omitempty"`
	// BackendTLSPolicies holds the ancestor statuses of BackendTLSPolicies.
	BackendTLSPolicies []named `json:"backendTLSPolicies,omitempty"`
}

// printStatuses prints the statuses of a translation.
func printStatuses(w io.Writer, format string, out *translate.Output) error {
	doc := statusDocument{GatewayClasses: []named{}, Gateways: []named{}, HTTPRoutes: []named{}}
	for _, c := range out.GatewayClasses {
		doc.GatewayClasses = append(doc.GatewayClasses, named{c.Name, c.Status})
	}
	for _, g := range out.Gateways {
		doc.Gateways = append(doc.Gateways, named{g.NamespacedName.String(), g.Status})
	}
	for _, r := range out.HTTPRoutes {
		doc.HTTPRoutes = append(doc.HTTPRoutes, named{r.NamespacedName.String(), r.Status})
	}
	for _, r := range out.GRPCRoutes {
		doc.GRPCRoutes = append(doc.GRPCRoutes, named{r.NamespacedName.String(), r.Status})
	}
	for _, p := range out.BackendPolicies {
		doc.BackendPolicies = append(doc.BackendPolicies, named{p.NamespacedName.String(), p.Status})
	}
	for _, p := range out.RoutePolicies {
		doc.RoutePolicies = append(doc.RoutePolicies, named{p.NamespacedName.String(), p.Status})
	}
	for _, p := range out.BackendTLSPolicies {
		doc.BackendTLSPolicies = append(doc.BackendTLSPolicies, named{p.NamespacedName.String(), p.Status})
	}
	if format != "table" {
		return printData(w, format, doc)
	}
	tw := newTable(w)
	row(tw, "KIND", "NAME", "CONDITIONS")
	var problems []string
	add := func(kind, name string, conds []metav1.Condition) {
		row(tw, kind, name, conditionSummary(conds))
		problems = append(problems, notTrue(kind+" "+name, conds)...)
	}
	for _, c := range out.GatewayClasses {
		add("GatewayClass", c.Name, c.Status.Conditions)
	}
	for _, g := range out.Gateways {
		add("Gateway", g.NamespacedName.String(), g.Status.Conditions)
		for _, l := range g.Status.Listeners {
			add("Gateway", g.NamespacedName.String()+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, kl := range []struct {
		kind string
		list []translate.RouteStatus
	}{{"HTTPRoute", out.HTTPRoutes}, {"GRPCRoute", out.GRPCRoutes}} {
		for _, r := range kl.list {
			for _, p := range r.Status.Parents {
				add(kl.kind, r.NamespacedName.String()+" parent "+parentName(withNamespace(p.ParentRef, r.NamespacedName.Namespace)), p.Conditions)
			}
			if len(r.Status.Parents) == 0 {
				row(tw, kl.kind, r.NamespacedName.String(), "<no parent of Flax>")
			}
		}
	}
	for _, kl := range []struct {
		kind string
		list []translate.PolicyStatus
	}{{"BackendPolicy", out.BackendPolicies}, {"RoutePolicy", out.RoutePolicies}, {"BackendTLSPolicy", out.BackendTLSPolicies}} {
		kind := kl.kind
		for _, p := range kl.list {
			for _, a := range p.Status.Ancestors {
				add(kind, p.NamespacedName.String()+" ancestor "+parentName(withNamespace(a.AncestorRef, p.NamespacedName.Namespace)), a.Conditions)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printProblems(w, problems)
}

// printProblems lists the messages of conditions that are not as they should be.
func printProblems(w io.Writer, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	fmt.Fprintln(w, "\nNeeds attention:")
	for _, p := range problems {
		fmt.Fprintln(w, "  "+p)
	}
	return nil
}

// negativeConditions are the condition types whose healthy status is False.
var negativeConditions = map[string]bool{"Conflicted": true, "PartiallyInvalid": true}

// healthy reports whether c has the status that needs no attention: True, or
// False for negative-polarity types such as Conflicted.
func healthy(c metav1.Condition) bool {
	if negativeConditions[c.Type] {
		return c.Status == metav1.ConditionFalse
	}
	return c.Status == metav1.ConditionTrue
}

// conditionSummary returns "Type=Status" of every condition, those that need
// attention with their reason.
func conditionSummary(conds []metav1.Condition) string {
	if len(conds) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		s := c.Type + "=" + string(c.Status)
		if !healthy(c) && c.Reason != "" {
			s += "(" + c.Reason + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// notTrue returns "what: Type=Status Reason: message" for the conditions that
// need attention (see healthy).
func notTrue(what string, conds []metav1.Condition) []string {
	var out []string
	for _, c := range conds {
		if !healthy(c) {
			out = append(out, fmt.Sprintf("%s: %s=%s %s: %s", what, c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return out
}

// parentName formats a parent or ancestor reference: "Kind namespace/name[/section]".
func parentName(p gatewayv1.ParentReference) string {
	kind := "Gateway"
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	s := kind + " "
	if p.Namespace != nil {
		s += string(*p.Namespace) + "/"
	}
	s += string(p.Name)
	if p.SectionName != nil {
		s += "/" + string(*p.SectionName)
	}
	return s
}

// backendGroupsOf returns the names of the backend groups m refers to (fields
// named backend_group anywhere in it).
func backendGroupsOf(m proto.Message, into map[string]bool) {
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Name() == "backend_group" && fd.Kind() == protoreflect.StringKind && !fd.IsList():
				into[v.String()] = true
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
}

// jsonUnmarshal is json.Unmarshal.
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
