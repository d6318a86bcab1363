package charttest

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// document is one YAML document of a multi-document stream.
type document struct {
	kind, name string
	raw        []byte
}

// splitDocuments splits helm output (or a manifest file) into its non-empty documents.
func splitDocuments(t *testing.T, stream string) []document {
	t.Helper()
	var docs []document
	for _, part := range strings.Split("\n"+stream, "\n---") {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(part), &head); err != nil {
			t.Fatalf("parsing a document: %v\n%s", err, part)
		}
		if head.Kind == "" {
			if strings.TrimSpace(stripComments(part)) != "" {
				t.Fatalf("document without kind:\n%s", part)
			}
			continue
		}
		docs = append(docs, document{kind: head.Kind, name: head.Metadata.Name, raw: []byte(part)})
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decodeStrict decodes a document into out, failing on fields out does not have.
func decodeStrict(t *testing.T, raw []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(raw, out); err != nil {
		t.Fatalf("decoding into %T: %v", out, err)
	}
}

func decodeLoose(t *testing.T, raw []byte, out any) {
	t.Helper()
	if err := yaml.Unmarshal(raw, out); err != nil {
		t.Fatalf("decoding into %T: %v", out, err)
	}
}

// renderedObjects holds the objects of one rendering, decoded into their Go types.
type renderedObjects struct {
	daemonSet      *appsv1.DaemonSet
	clusterRole    *rbacv1.ClusterRole
	role           *rbacv1.Role
	gatewayClass   *gatewayv1.GatewayClass
	classParams    *flaxv1alpha1.GatewayClassParameters
	configMaps     []*corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	metricsService *corev1.Service
	serviceMonitor *serviceMonitor
	kinds          []string
}

// serviceMonitor is the part of prometheus-operator's monitoring.coreos.com/v1
// ServiceMonitor the chart renders (the operator's Go types are not a dependency);
// decoding strictly into it still catches a field the chart misspells.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port        string `json:"port"`
			Path        string `json:"path"`
			Interval    string `json:"interval,omitempty"`
			Relabelings []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decodeRendering decodes every rendered document strictly into its Go type, so that a
// misspelt or misplaced field fails here rather than on a cluster.
func decodeRendering(t *testing.T, out string) renderedObjects {
	t.Helper()
	var r renderedObjects
	for _, d := range splitDocuments(t, out) {
		r.kinds = append(r.kinds, d.kind)
		switch d.kind {
		case "DaemonSet":
			r.daemonSet = &appsv1.DaemonSet{}
			decodeStrict(t, d.raw, r.daemonSet)
		case "ClusterRole":
			r.clusterRole = &rbacv1.ClusterRole{}
			decodeStrict(t, d.raw, r.clusterRole)
		case "Role":
			r.role = &rbacv1.Role{}
			decodeStrict(t, d.raw, r.role)
		case "ClusterRoleBinding":
			decodeStrict(t, d.raw, &rbacv1.ClusterRoleBinding{})
		case "RoleBinding":
			decodeStrict(t, d.raw, &rbacv1.RoleBinding{})
		case "ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			decodeStrict(t, d.raw, r.serviceAccount)
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			decodeStrict(t, d.raw, cm)
			r.configMaps = append(r.configMaps, cm)
		case "GatewayClass":
			r.gatewayClass = &gatewayv1.GatewayClass{}
			decodeStrict(t, d.raw, r.gatewayClass)
		case "Service":
			r.metricsService = &corev1.Service{}
			decodeStrict(t, d.raw, r.metricsService)
		case "ServiceMonitor":
			r.serviceMonitor = &serviceMonitor{}
			decodeStrict(t, d.raw, r.serviceMonitor)
		case "GatewayClassParameters":
			r.classParams = &flaxv1alpha1.GatewayClassParameters{}
			decodeStrict(t, d.raw, r.classParams)
		default:
			t.Errorf("unexpected kind %s (%s): add it to decodeRendering", d.kind, d.name)
		}
	}
	if r.daemonSet == nil {
		t.Fatal("no DaemonSet rendered")
	}
	return r
}

// TestRenderedObjects checks, for every render case, what the chart promises whatever
// the values: host networking, the shared socket, one non-root user, the probes, the
// drain budget, the seccomp and capability settings.
func TestRenderedObjects(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			values := loadValues(t, c.valueFiles(t)...)
			r := decodeRendering(t, render(t, c.gatewayAPI, c.valueFiles(t)...))
			for _, problem := range checkDaemonSet(r.daemonSet, values) {
				t.Error(problem)
			}
			wantClass := values.GatewayClass.Create == "true" || (values.GatewayClass.Create == "auto" && c.gatewayAPI)
			if (r.gatewayClass != nil) != wantClass {
				t.Errorf("GatewayClass rendered = %v, want %v (create=%s, CRDs served=%v)", r.gatewayClass != nil, wantClass, values.GatewayClass.Create, c.gatewayAPI)
			}
			if r.gatewayClass != nil && (r.gatewayClass.Name != values.GatewayClass.Name || string(r.gatewayClass.Spec.ControllerName) != values.GatewayClass.ControllerName) {
				t.Errorf("GatewayClass %s/%s, want %s/%s", r.gatewayClass.Name, r.gatewayClass.Spec.ControllerName, values.GatewayClass.Name, values.GatewayClass.ControllerName)
			}
			// The class comes with its parameters, which it names, holding the pools.
			if (r.classParams != nil) != (r.gatewayClass != nil) {
				t.Errorf("GatewayClassParameters rendered = %v, GatewayClass rendered = %v", r.classParams != nil, r.gatewayClass != nil)
			}
			if r.gatewayClass != nil && r.classParams != nil {
				ref := r.gatewayClass.Spec.ParametersRef
				if ref == nil || ref.Group != "flaxlb.io" || ref.Kind != "GatewayClassParameters" || ref.Name != r.classParams.Name || ref.Namespace != nil {
					t.Errorf("GatewayClass parametersRef %+v does not name GatewayClassParameters %s", ref, r.classParams.Name)
				}
				var pools []string
				for _, p := range r.classParams.Spec.AddressPools {
					pools = append(pools, string(p))
				}
				if !slices.Equal(pools, values.GatewayClass.AddressPools) {
					t.Errorf("addressPools %v, want the values' %v", pools, values.GatewayClass.AddressPools)
				}
				var serviceType string
				if s := r.classParams.Spec.Service; s != nil {
					serviceType = string(s.Type)
				}
				if serviceType != values.GatewayClass.ServiceType {
					t.Errorf("service type %q, want the values' %q", serviceType, values.GatewayClass.ServiceType)
				}
			}
			if (r.clusterRole != nil) != values.RBAC.Create || (r.role != nil) != values.RBAC.Create {
				t.Errorf("rbac.create=%v but ClusterRole rendered=%v, Role rendered=%v", values.RBAC.Create, r.clusterRole != nil, r.role != nil)
			}
			if (r.serviceAccount != nil) != values.ServiceAccount.Create {
				t.Errorf("serviceAccount.create=%v but ServiceAccount rendered=%v", values.ServiceAccount.Create, r.serviceAccount != nil)
			}
			// The only ConfigMap is the dashboard: the seccomp profile comes from the image.
			if want := map[bool]int{true: 1}[values.Metrics.Dashboard.Enabled]; len(r.configMaps) != want {
				t.Errorf("%d ConfigMaps rendered, want %d (metrics.dashboard.enabled=%v)", len(r.configMaps), want, values.Metrics.Dashboard.Enabled)
			}
			for _, cm := range r.configMaps {
				checkDashboard(t, cm)
			}
			checkMetricsExposure(t, r, values)
		})
	}
}

// checkDaemonSet returns what is wrong with ds for the given values.
func checkDaemonSet(ds *appsv1.DaemonSet, v chartValues) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		fail("hostNetwork=%v dnsPolicy=%s, want true and ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != v.RunAsUser {
		fail("pod securityContext must be runAsNonRoot with runAsUser %d: %+v", v.RunAsUser, psc)
	}
	drain := v.Dataplane.Drain.GraceSeconds + v.Dataplane.Drain.TimeoutSeconds
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= drain {
		fail("terminationGracePeriodSeconds %v must exceed drain grace + timeout = %d", spec.TerminationGracePeriodSeconds, drain)
	}
	names, want := []string{}, []string{"controller", "dataplane"}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range v.ExtraContainers {
		want = append(want, c.Name)
	}
	if !slices.Equal(names, want) {
		fail("containers %v, want %v (controller, dataplane, then extraContainers)", names, want)
		return problems
	}
	var socketDirs []string
	for _, c := range spec.Containers[:2] {
		sc := c.SecurityContext
		if sc == nil || sc.RunAsUser != nil || sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			fail("%s: must inherit the pod's non-root user (the 0600 socket needs one UID)", c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail("%s: want allowPrivilegeEscalation false, drop ALL, read-only root filesystem", c.Name)
		}
		if !hasEnvFromField(c, "NODE_NAME", "spec.nodeName") {
			fail("%s: NODE_NAME must come from spec.nodeName", c.Name)
		}
		for _, m := range c.VolumeMounts {
			if m.Name == "socket" {
				socketDirs = append(socketDirs, m.MountPath)
			}
		}
		// A surge pod shares the node's 127.0.0.1 ports with the old pod: probes must ask
		// this pod's processes through its own socket volume, and no container port may
		// be declared (on the host network it is a host port, which keeps the surge pod
		// off the node).
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p == nil || p.Exec == nil || len(p.Exec.Command) < 3 || p.Exec.Command[0] != c.Command[0] || p.Exec.Command[1] != "probe" {
				fail("%s: readiness and liveness must be exec probes running %s probe", c.Name, c.Command)
			}
		}
		if len(c.Ports) != 0 {
			fail("%s: declares ports %v; on the host network they are host ports that block a surge pod", c.Name, c.Ports)
		}
	}
	if len(socketDirs) != 2 || socketDirs[0] != socketDirs[1] {
		fail("both containers must mount the socket volume at one path, got %v", socketDirs)
	}
	dp := spec.Containers[1]
	socket := socketDirs[0] + "/dataplane.sock"
	if !slices.Contains(spec.Containers[0].Args, "--dataplane-socket="+socket) || !slices.Contains(dp.Args, "--socket="+socket) {
		fail("controller and dataplane must use the socket %s: %v / %v", socket, spec.Containers[0].Args, dp.Args)
	}
	adminArg := "--admin-address=" + net.JoinHostPort(v.Metrics.BindAddress, fmt.Sprint(v.Dataplane.AdminPort))
	if !slices.Contains(dp.Args, adminArg) || !slices.Contains(dp.Args, "--admin-reuse-port=true") {
		fail("dataplane: want %s with --admin-reuse-port=true", adminArg)
	}
	if !slices.Equal(probeArgs(dp.ReadinessProbe), []string{"--socket=" + socket, "--service=readiness"}) ||
		!slices.Equal(probeArgs(dp.LivenessProbe), []string{"--socket=" + socket, "--service=liveness"}) {
		fail("dataplane: probes must ask readiness and liveness on %s: %v / %v", socket, dp.ReadinessProbe.Exec, dp.LivenessProbe.Exec)
	}
	ctrlSocket := socketDirs[0] + "/controller-health.sock"
	ct := spec.Containers[0]
	if !slices.Contains(ct.Args, "--health-probe-socket="+ctrlSocket) || !slices.Contains(ct.Args, "--reuse-port=true") {
		fail("controller: want --health-probe-socket=%s and --reuse-port=true: %v", ctrlSocket, ct.Args)
	}
	if !slices.Equal(probeArgs(ct.ReadinessProbe), []string{"--socket=" + ctrlSocket, "--path=/readyz"}) ||
		!slices.Equal(probeArgs(ct.LivenessProbe), []string{"--socket=" + ctrlSocket, "--path=/healthz"}) {
		fail("controller: probes must GET /readyz and /healthz on %s: %v / %v", ctrlSocket, ct.ReadinessProbe.Exec, ct.LivenessProbe.Exec)
	}
	// The image's flax-dataplane carries the file capability cap_net_bind_service+ep: every
	// container running it must keep NET_BIND_SERVICE in its bounding set, or exec fails.
	if caps := dp.SecurityContext.Capabilities.Add; !slices.Equal(caps, []corev1.Capability{"NET_BIND_SERVICE"}) {
		fail("dataplane capabilities add %v, want exactly NET_BIND_SERVICE", caps)
	}
	if len(spec.Containers[0].SecurityContext.Capabilities.Add) != 0 {
		fail("controller must add no capability")
	}
	sp := dp.SecurityContext.SeccompProfile
	wantType := map[string]corev1.SeccompProfileType{
		"localhost":      corev1.SeccompProfileTypeLocalhost,
		"runtimeDefault": corev1.SeccompProfileTypeRuntimeDefault, "unconfined": corev1.SeccompProfileTypeUnconfined,
	}[v.Seccomp.Mode]
	if sp == nil || sp.Type != wantType {
		fail("dataplane seccomp profile %+v, want type %s", sp, wantType)
	}
	installers := len(spec.InitContainers)
	if v.Seccomp.Mode == "localhost" {
		if sp != nil && (sp.LocalhostProfile == nil || *sp.LocalhostProfile != "flax/io_uring.json") {
			fail("dataplane localhostProfile must be flax/io_uring.json")
		}
		if installers != 1 {
			fail("seccomp.mode=localhost needs the install-seccomp-profile init container")
		} else {
			ic := spec.InitContainers[0]
			dir, ok := hostPathMounted(spec, ic, strings.TrimSuffix(v.Seccomp.HostDir, "/")+"/flax")
			if !ok {
				fail("the init container must mount %s/flax", v.Seccomp.HostDir)
			}
			if ic.Image != dp.Image || !slices.Equal(ic.Command, dp.Command) || !slices.Equal(ic.Args, []string{"seccomp-profile", "install", "--dir=" + dir}) {
				fail("the init container must run the dataplane image's `flax-dataplane seccomp-profile install --dir=%s`: %s %v %v", dir, ic.Image, ic.Command, ic.Args)
			}
			sc := ic.SecurityContext
			if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				fail("the init container must drop ALL but NET_BIND_SERVICE (needed to exec the file-capability binary), without privilege escalation: %+v", sc)
			}
		}
	} else if installers != 0 {
		fail("seccomp.mode=%s must not install a profile", v.Seccomp.Mode)
	}
	if v.UpdateStrategy.Type == "RollingUpdate" {
		ru := ds.Spec.UpdateStrategy.RollingUpdate
		if ru == nil || ru.MaxSurge == nil || ru.MaxSurge.String() != v.UpdateStrategy.MaxSurge || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != v.UpdateStrategy.MaxUnavailable {
			fail("rolling update must have maxSurge %s and maxUnavailable %s: %+v", v.UpdateStrategy.MaxSurge, v.UpdateStrategy.MaxUnavailable, ru)
		}
	}
	return problems
}

// probeArgs returns the arguments after "BINARY probe" of an exec probe, nil for any
// other probe.
func probeArgs(p *corev1.Probe) []string {
	if p == nil || p.Exec == nil || len(p.Exec.Command) < 2 {
		return nil
	}
	return p.Exec.Command[2:]
}

func hasEnvFromField(c corev1.Container, name, field string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field {
			return true
		}
	}
	return false
}

// hostPathMounted returns where c mounts the hostPath path writable.
func hostPathMounted(spec corev1.PodSpec, c corev1.Container, path string) (string, bool) {
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.HostPath != nil && v.HostPath.Path == path && !m.ReadOnly {
				return m.MountPath, true
			}
		}
	}
	return "", false
}
