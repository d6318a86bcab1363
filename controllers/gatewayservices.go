package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/translate"
)

// EndpointSliceManager is the endpointslice.kubernetes.io/managed-by label of the
// EndpointSlices of the Gateways' Services.
const EndpointSliceManager = "flax-controller"

// propagatedAnnotations is the annotation of a Gateway's Service and
// EndpointSlices listing the annotation keys Flax set from the Gateway's
// spec.infrastructure, so that it removes those the Gateway drops and keeps
// those others (a load balancer controller) add.
const propagatedAnnotations = "flaxlb.io/infrastructure-annotations"

// serviceRetry is how long the writer waits before retrying a failed write.
const serviceRetry = 2 * time.Second

// serviceWriter writes the Services and EndpointSlices the translation asks for
// Gateways (translate.Output.GatewayServices) and deletes those Flax created
// that it no longer asks for, of the Gateways of its classes (those of other
// controllers, which another Flax may serve, are left alone). It runs on the
// leader only. Each Service and EndpointSlice is owned by its Gateway, so
// deleting the Gateway also deletes them (the garbage collector), even while no
// leader runs.
type serviceWriter struct {
	client client.Client
	// reader reads from the API server: a Service just created may not be in
	// the cache yet.
	reader client.Reader
	log    logr.Logger
	wake   chan struct{}
	// foreign are the Services of Gateways' names that Flax did not create,
	// logged once each.
	foreign map[types.NamespacedName]bool

	mu sync.Mutex
	// desired is the latest translation's Services; seen is false until the
	// first one, so that a new leader deletes nothing before it knows.
	desired []translate.GatewayService
	seen    bool
	// ours are the Gateways of the latest translation.
	ours map[types.NamespacedName]bool
}

func newServiceWriter(c client.Client, reader client.Reader, log logr.Logger) *serviceWriter {
	return &serviceWriter{client: c, reader: reader, log: log, wake: make(chan struct{}, 1), foreign: map[types.NamespacedName]bool{}}
}

// NeedLeaderElection returns true: only the leader writes.
func (w *serviceWriter) NeedLeaderElection() bool { return true }

// Update takes the Services of a translation and wakes the writer.
func (w *serviceWriter) Update(out *translate.Output) {
	ours := make(map[types.NamespacedName]bool, len(out.Gateways))
	for _, g := range out.Gateways {
		ours[g.NamespacedName] = true
	}
	w.mu.Lock()
	w.desired, w.seen, w.ours = out.GatewayServices, true, ours
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start writes on every Update until ctx ends, retrying failed writes.
func (w *serviceWriter) Start(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil
		case <-w.wake:
		case <-retry.C:
		}
		w.mu.Lock()
		desired, seen, ours := w.desired, w.seen, w.ours
		w.mu.Unlock()
		if !seen {
			continue
		}
		if err := w.sync(ctx, desired, ours); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Error(err, "writing the Services of Gateways; retrying", "after", serviceRetry)
			retry.Reset(serviceRetry)
		}
	}
}

// sync makes the Services and EndpointSlices labelled
// translate.GatewayServiceLabel of the Gateways ours those of desired.
func (w *serviceWriter) sync(ctx context.Context, desired []translate.GatewayService, ours map[types.NamespacedName]bool) error {
	isOurs := func(o client.Object) bool {
		return ours[types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetLabels()[gatewayv1.GatewayNameLabelKey]}]
	}
	var services corev1.ServiceList
	if err := w.client.List(ctx, &services, client.MatchingLabels{translate.GatewayServiceLabel: "true"}); err != nil {
		return fmt.Errorf("listing gateway services: %w", err)
	}
	var slicesHave discoveryv1.EndpointSliceList
	if err := w.client.List(ctx, &slicesHave, client.MatchingLabels{translate.GatewayServiceLabel: "true"}); err != nil {
		return fmt.Errorf("listing gateway endpointslices: %w", err)
	}
	haveSvc := map[types.NamespacedName]*corev1.Service{}
	for i := range services.Items {
		haveSvc[client.ObjectKeyFromObject(&services.Items[i])] = &services.Items[i]
	}
	haveES := map[types.NamespacedName]*discoveryv1.EndpointSlice{}
	for i := range slicesHave.Items {
		haveES[client.ObjectKeyFromObject(&slicesHave.Items[i])] = &slicesHave.Items[i]
	}

	var errs []error
	wantSvc := map[types.NamespacedName]bool{}
	wantES := map[types.NamespacedName]bool{}
	for i := range desired {
		d := &desired[i]
		key := types.NamespacedName{Namespace: d.Gateway.Namespace, Name: d.Name}
		wantSvc[key] = true
		if ok, err := w.writeService(ctx, d, haveSvc[key]); err != nil || !ok {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		for _, es := range endpointSlices(d) {
			k := client.ObjectKeyFromObject(es)
			wantES[k] = true
			if err := w.writeSlice(ctx, es, haveES[k]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k, es := range haveES {
		if !wantES[k] && isOurs(es) {
			if err := w.client.Delete(ctx, es); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting endpointslice %s: %w", k, err))
			}
		}
	}
	for k, svc := range haveSvc {
		if !wantSvc[k] && isOurs(svc) {
			if err := w.client.Delete(ctx, svc); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting service %s: %w", k, err))
			} else {
				w.log.Info("deleted the Service of a Gateway", "service", k)
			}
		}
	}
	return errors.Join(errs...)
}

// writeService creates or updates the Service of d; have is the existing one,
// nil if none. A Service of that name that Flax did not create is left alone
// (ok false: it gets no EndpointSlices from Flax either).
func (w *serviceWriter) writeService(ctx context.Context, d *translate.GatewayService, have *corev1.Service) (ok bool, err error) {
	key := types.NamespacedName{Namespace: d.Gateway.Namespace, Name: d.Name}
	if have == nil {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		applyService(svc, d)
		err := w.client.Create(ctx, svc)
		if err == nil {
			w.log.Info("created the Service of a Gateway", "gateway", d.Gateway, "service", d.Name, "type", d.Type)
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating service %s: %w", key, err)
		}
		// Flax's own, not in the cache yet, or someone else's.
		var existing corev1.Service
		if err := w.reader.Get(ctx, key, &existing); err != nil {
			return false, fmt.Errorf("getting service %s: %w", key, err)
		}
		if existing.Labels[translate.GatewayServiceLabel] != "true" {
			if !w.foreign[key] {
				w.foreign[key] = true
				w.log.Info("a Service of the name Flax gives the Gateway's Service exists and is not Flax's; leaving it alone",
					"gateway", d.Gateway, "service", key)
			}
			return false, nil
		}
		have = &existing
	}
	delete(w.foreign, key)
	svc := have.DeepCopy()
	applyService(svc, d)
	if equality.Semantic.DeepEqual(svc, have) {
		return true, nil
	}
	if err := w.client.Update(ctx, svc); err != nil {
		return false, fmt.Errorf("updating service %s: %w", key, err)
	}
	return true, nil
}

// writeSlice creates or updates the EndpointSlice want; have is the existing
// one, nil if none.
func (w *serviceWriter) writeSlice(ctx context.Context, want, have *discoveryv1.EndpointSlice) error {
	if have == nil {
		if err := w.client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating endpointslice %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil
	}
	es := have.DeepCopy()
	es.Labels = want.Labels
	setAnnotations(&es.ObjectMeta, want.Annotations)
	es.OwnerReferences = want.OwnerReferences
	es.AddressType, es.Endpoints, es.Ports = want.AddressType, want.Endpoints, want.Ports
	if equality.Semantic.DeepEqual(es, have) {
		return nil
	}
	if es.AddressType != have.AddressType { // immutable: replace the slice
		if err := w.client.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting endpointslice %s/%s: %w", have.Namespace, have.Name, err)
		}
		return w.writeSlice(ctx, want, nil)
	}
	if err := w.client.Update(ctx, es); err != nil {
		return fmt.Errorf("updating endpointslice %s/%s: %w", es.Namespace, es.Name, err)
	}
	return nil
}

// gatewayOwner returns the owner reference to d's Gateway.
func gatewayOwner(d *translate.GatewayService) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion: gatewayv1.GroupVersion.String(),
		Kind:       "Gateway",
		Name:       d.Gateway.Name,
		UID:        d.GatewayUID,
		Controller: ptr.To(true),
	}}
}

// servicePortName is the name of the Service and EndpointSlice port of a
// listener port: "tcp-<port>" or "udp-<port>", so that a TCP and a UDP
// listener may share a port number.
func servicePortName(p translate.GatewayServicePort) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(string(p.Protocol)), p.Port)
}

// applyService sets what Flax decides of svc from d, keeping what the API server
// and others set (cluster IPs, allocated node ports, other annotations).
func applyService(svc *corev1.Service, d *translate.GatewayService) {
	svc.Labels = maps.Clone(d.Labels)
	setAnnotations(&svc.ObjectMeta, d.Annotations)
	svc.OwnerReferences = gatewayOwner(d)
	nodePorts := map[translate.GatewayServicePort]int32{}
	for _, p := range svc.Spec.Ports {
		nodePorts[translate.GatewayServicePort{Port: p.Port, Protocol: p.Protocol}] = p.NodePort
	}
	external := d.Type == corev1.ServiceTypeLoadBalancer || d.Type == corev1.ServiceTypeNodePort
	svc.Spec.Type = d.Type
	svc.Spec.Ports = make([]corev1.ServicePort, 0, len(d.Ports))
	for _, p := range d.Ports {
		sp := corev1.ServicePort{Name: servicePortName(p), Protocol: p.Protocol, Port: p.Port, TargetPort: intstr.FromInt32(p.Port)}
		if external {
			sp.NodePort = nodePorts[p]
		}
		svc.Spec.Ports = append(svc.Spec.Ports, sp)
	}
	svc.Spec.Selector = nil
	if external {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	} else {
		svc.Spec.ExternalTrafficPolicy = ""
		svc.Spec.HealthCheckNodePort = 0
	}
	if d.Type != corev1.ServiceTypeLoadBalancer {
		svc.Spec.AllocateLoadBalancerNodePorts = nil
	}
}

// setAnnotations sets want on m and removes the annotations Flax set before
// that want no longer has; it records the keys in propagatedAnnotations.
func setAnnotations(m *metav1.ObjectMeta, want map[string]string) {
	for _, k := range strings.Split(m.Annotations[propagatedAnnotations], ",") {
		if _, ok := want[k]; !ok && k != "" {
			delete(m.Annotations, k)
		}
	}
	delete(m.Annotations, propagatedAnnotations)
	if len(want) == 0 {
		if len(m.Annotations) == 0 {
			m.Annotations = nil
		}
		return
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	maps.Copy(m.Annotations, want)
	m.Annotations[propagatedAnnotations] = strings.Join(slices.Sorted(maps.Keys(want)), ",")
}

// endpointSlices returns the EndpointSlices of d's Service: one per address
// family of its endpoints ("<service>-ipv4", "<service>-ipv6"), each endpoint
// ready and, when it is a node's address, with the node's name (for
// externalTrafficPolicy Local).
func endpointSlices(d *translate.GatewayService) []*discoveryv1.EndpointSlice {
	ports := make([]discoveryv1.EndpointPort, 0, len(d.Ports))
	for _, p := range d.Ports {
		ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(servicePortName(p)), Protocol: ptr.To(p.Protocol), Port: ptr.To(p.Port)})
	}
	byFamily := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
	for _, e := range d.Endpoints {
		ip, err := netip.ParseAddr(e.Address)
		if err != nil {
			continue
		}
		fam := discoveryv1.AddressTypeIPv4
		if ip.Is6() {
			fam = discoveryv1.AddressTypeIPv6
		}
		ep := discoveryv1.Endpoint{Addresses: []string{e.Address}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
		if e.Node != "" {
			ep.NodeName = ptr.To(e.Node)
		}
		byFamily[fam] = append(byFamily[fam], ep)
	}
	var out []*discoveryv1.EndpointSlice
	for _, fam := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		eps, ok := byFamily[fam]
		if !ok {
			continue
		}
		labels := maps.Clone(d.Labels)
		labels[discoveryv1.LabelServiceName] = d.Name
		labels[discoveryv1.LabelManagedBy] = EndpointSliceManager
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:       d.Gateway.Namespace,
				Name:            d.Name + "-" + strings.ToLower(string(fam)),
				Labels:          labels,
				OwnerReferences: gatewayOwner(d),
			},
			AddressType: fam,
			Endpoints:   eps,
			Ports:       ports,
		}
		setAnnotations(&es.ObjectMeta, d.Annotations)
		out = append(out, es)
	}
	return out
}
