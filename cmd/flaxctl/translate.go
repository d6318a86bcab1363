package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/controllers/translate"
)

// standardCRDs are the Gateway API CRDs translate assumes installed when its input
// holds no CustomResourceDefinition of the Gateway API groups: the standard
// channel's CRDs of the kinds the controller reads, at the bundle version Flax is
// built for.
var standardCRDs = []translate.CRD{
	{Name: "gatewayclasses.gateway.networking.k8s.io", BundleVersion: translate.GatewayAPIVersion, Channel: "standard"},
	{Name: "gateways.gateway.networking.k8s.io", BundleVersion: translate.GatewayAPIVersion, Channel: "standard"},
	{Name: "httproutes.gateway.networking.k8s.io", BundleVersion: translate.GatewayAPIVersion, Channel: "standard"},
	{Name: "grpcroutes.gateway.networking.k8s.io", BundleVersion: translate.GatewayAPIVersion, Channel: "standard"},
	{Name: "referencegrants.gateway.networking.k8s.io", BundleVersion: translate.GatewayAPIVersion, Channel: "standard"},
}

type translateOptions struct {
	files          []string
	recursive      bool
	namespace      string
	controllerName string
	nodeAddresses  []string
	outputStatus   bool
}

func newTranslateCmd(g *globals) *cobra.Command {
	o := &translateOptions{}
	cmd := &cobra.Command{
		Use:   "translate -f FILE|DIR [-f ...]",
		Short: "Translate Gateway API and Flax YAML into a dataplane snapshot, offline",
		Long: `Translate runs the controller's translator (controllers/translate) on YAML
files and prints the dataplane snapshot it gives, or with --output-status the
status it computes for every GatewayClass, Gateway, HTTPRoute, GRPCRoute and policy. No
cluster is needed: what the controller would do with these objects is shown
before they are applied.

The files hold Kubernetes objects, one or more YAML documents each (a
"kind: List" as kubectl get -o yaml prints is unpacked); "-" reads standard
input. A directory means its *.yaml, *.yml and *.json files (with -R, also those
of its subdirectories). The translator reads GatewayClasses,
GatewayClassParameters, Gateways, HTTPRoutes, GRPCRoutes, TCPRoutes, TLSRoutes, UDPRoutes,
ReferenceGrants, Services, EndpointSlices, Secrets, ConfigMaps, Namespaces, BackendPolicies, RoutePolicies and
BackendTLSPolicies; other
kinds are skipped with a note on standard error. Objects without a namespace get
--namespace, as kubectl apply does.

The Gateway API CRDs are taken to be the standard channel's of the version Flax
is built for, unless the input holds the Gateway API CustomResourceDefinitions.
Gateways without spec.addresses report the --node-address addresses; without
any, they are not Programmed (AddressNotAssigned), as when no node runs a ready
dataplane. The snapshot is the same either way: such Gateways bind every
address of the node.

The snapshot is printed in the YAML form flax-dataplane run --config reads
(-o yaml, the default), as protojson (-o json), or as a summary (-o table).`,
		Example: `  # The snapshot of the samples, applied to namespace "samples"
  flaxctl translate -f config/samples -f config/samples/policies -n samples

  # Why is my route not accepted? Translate what the cluster holds.
  kubectl get gatewayclasses,gateways,httproutes,grpcroutes,services,endpointslices -A -o yaml |
    flaxctl translate -f - --output-status -o table

  # Serve the result with a standalone dataplane
  flaxctl translate -f my-gateway.yaml --node-address 127.0.0.1 > snapshot.yaml
  flax-dataplane run --config snapshot.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, g)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, "file or directory of YAML to translate; - reads standard input (repeatable)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read the directories of -f recursively")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the namespaced objects that set none")
	f.StringVar(&o.controllerName, "controller-name", controllers.DefaultControllerName, "the GatewayClass spec.controllerName Flax answers to")
	f.StringSliceVar(&o.nodeAddresses, "node-address", nil, "addresses of the nodes serving Gateways, reported by Gateways without spec.addresses (repeatable)")
	f.BoolVar(&o.outputStatus, "output-status", false, "print the statuses (GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes, policies) instead of the snapshot")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

func (o *translateOptions) run(cmd *cobra.Command, g *globals) error {
	def := "yaml"
	format, err := g.format(def)
	if err != nil {
		return err
	}
	in := &translate.Input{ControllerName: o.controllerName, NodeAddresses: o.nodeAddresses}
	l := &loader{in: in, namespace: o.namespace, stdin: cmd.InOrStdin()}
	for _, f := range o.files {
		if err := l.loadPath(f, o.recursive); err != nil {
			return err
		}
	}
	if !l.crds {
		in.GatewayAPICRDs = slices.Clone(standardCRDs)
	}
	if note := l.skippedNote(); note != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), note)
	}
	out := translate.Translate(in)
	w := cmd.OutOrStdout()
	if o.outputStatus {
		return printStatuses(w, format, out)
	}
	return printSnapshot(w, format, out.Snapshot)
}

// loader reads YAML files into a translator Input.
type loader struct {
	in        *translate.Input
	namespace string
	stdin     io.Reader
	// crds is set once the input held a Gateway API CRD.
	crds bool
	// skipped counts the documents of kinds the translator does not read.
	skipped map[string]int
}

// loadPath reads a file, a directory or, for "-", standard input.
func (l *loader) loadPath(path string, recursive bool) error {
	if path == "-" {
		data, err := io.ReadAll(l.stdin)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		return l.load("<stdin>", data)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return l.load(path, data)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no .yaml, .yml or .json files", path)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := l.load(f, data); err != nil {
			return err
		}
	}
	return nil
}

// load decodes every document of data, a multi-document YAML or a JSON object.
func (l *loader) load(source string, data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		if err := l.object(js); err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
	}
}

// typeMeta is the apiVersion and kind of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// group returns the API group of the document's apiVersion ("" for core).
func (t typeMeta) group() string {
	g, _, ok := strings.Cut(t.APIVersion, "/")
	if !ok {
		return ""
	}
	return g
}

// object decodes one object (JSON) into the Input.
func (l *loader) object(js []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(js, &tm); err != nil {
		return err
	}
	if tm.Kind == "" {
		return errors.New("object has no kind")
	}
	decode := func(into any) error {
		if err := yaml.UnmarshalStrict(js, into); err != nil {
			return fmt.Errorf("%s: %w", tm.Kind, err)
		}
		return nil
	}
	in := l.in
	switch k := tm.group() + "/" + tm.Kind; k {
	case "/List", "/ConfigMapList": // kubectl get -o yaml
		var list struct {
			Items []jsonRaw `json:"items"`
		}
		if err := yaml.Unmarshal(js, &list); err != nil {
			return fmt.Errorf("kind List: %w", err)
		}
		for i, item := range list.Items {
			if err := l.object(item); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
	case gatewayv1.GroupName + "/GatewayClass":
		var o gatewayv1.GatewayClass
		if err := decode(&o); err != nil {
			return err
		}
		in.GatewayClasses = append(in.GatewayClasses, o)
	case flaxv1alpha1.GroupVersion.Group + "/GatewayClassParameters":
		var o flaxv1alpha1.GatewayClassParameters
		if err := decode(&o); err != nil {
			return err
		}
		in.Parameters = append(in.Parameters, o)
	case gatewayv1.GroupName + "/Gateway":
		var o gatewayv1.Gateway
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.Gateways = append(in.Gateways, o)
	case gatewayv1.GroupName + "/HTTPRoute":
		var o gatewayv1.HTTPRoute
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.HTTPRoutes = append(in.HTTPRoutes, o)
	case gatewayv1.GroupName + "/GRPCRoute":
		var o gatewayv1.GRPCRoute
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.GRPCRoutes = append(in.GRPCRoutes, o)
	case gatewayv1.GroupName + "/TCPRoute":
		var o gatewayv1.TCPRoute
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.TCPRoutes = append(in.TCPRoutes, o)
	case gatewayv1.GroupName + "/TLSRoute":
		var o gatewayv1.TLSRoute
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.TLSRoutes = append(in.TLSRoutes, o)
	case gatewayv1.GroupName + "/UDPRoute":
		var o gatewayv1.UDPRoute
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.UDPRoutes = append(in.UDPRoutes, o)
	case gatewayv1.GroupName + "/ReferenceGrant":
		var o gatewayv1beta1.ReferenceGrant
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.ReferenceGrants = append(in.ReferenceGrants, o)
	case "/Service":
		var o corev1.Service
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		if o.Labels[translate.GatewayServiceLabel] == "true" {
			// A Service Flax created for a Gateway: its load balancer status
			// may hold the Gateway's addresses.
			in.GatewayServices = append(in.GatewayServices, o)
		} else {
			in.Services = append(in.Services, o)
		}
	case discoveryv1.GroupName + "/EndpointSlice":
		var o discoveryv1.EndpointSlice
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.EndpointSlices = append(in.EndpointSlices, o)
	case "/Secret":
		var o corev1.Secret
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		// The API server merges stringData into data.
		for key, v := range o.StringData {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			o.Data[key] = []byte(v)
		}
		o.StringData = nil
		in.Secrets = append(in.Secrets, o)
	case "/ConfigMap":
		var o corev1.ConfigMap
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.ConfigMaps = append(in.ConfigMaps, o)
	case "/Namespace":
		var o corev1.Namespace
		if err := decode(&o); err != nil {
			return err
		}
		in.Namespaces = append(in.Namespaces, o)
	case flaxv1alpha1.GroupVersion.Group + "/BackendPolicy":
		var o flaxv1alpha1.BackendPolicy
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.BackendPolicies = append(in.BackendPolicies, o)
	case gatewayv1.GroupName + "/BackendTLSPolicy":
		var o gatewayv1.BackendTLSPolicy
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.BackendTLSPolicies = append(in.BackendTLSPolicies, o)
	case flaxv1alpha1.GroupVersion.Group + "/RoutePolicy":
		var o flaxv1alpha1.RoutePolicy
		if err := decode(&o); err != nil {
			return err
		}
		o.Namespace = l.ns(o.Namespace)
		in.RoutePolicies = append(in.RoutePolicies, o)
	case "apiextensions.k8s.io/CustomResourceDefinition":
		var crd struct {
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(js, &crd); err != nil {
			return fmt.Errorf("CustomResourceDefinition: %w", err)
		}
		if !translate.IsGatewayAPICRD(crd.Metadata.Name) {
			l.skip(k)
			return nil
		}
		l.crds = true
		in.GatewayAPICRDs = append(in.GatewayAPICRDs, translate.CRD{
			Name:          crd.Metadata.Name,
			BundleVersion: crd.Metadata.Annotations[translate.BundleVersionAnnotation],
			Channel:       crd.Metadata.Annotations[translate.ChannelAnnotation],
		})
	default:
		l.skip(tm.Kind + " (" + tm.APIVersion + ")")
	}
	return nil
}

// jsonRaw keeps a List item as JSON.
type jsonRaw []byte

func (r *jsonRaw) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// ns returns the namespace of an object that sets ns: ns, else the default.
func (l *loader) ns(ns string) string {
	if ns == "" {
		return l.namespace
	}
	return ns
}

func (l *loader) skip(what string) {
	if l.skipped == nil {
		l.skipped = map[string]int{}
	}
	l.skipped[what]++
}

// skippedNote says which documents were skipped, or "".
func (l *loader) skippedNote() string {
	if len(l.skipped) == 0 {
		return ""
	}
	kinds := make([]string, 0, len(l.skipped))
	for k, n := range l.skipped {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	return "skipped objects the translator does not read: " + strings.Join(kinds, ", ")
}
