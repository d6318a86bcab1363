package main

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// defaultCapabilities is the capability set container runtimes (containerd, CRI-O) give
// a container before its securityContext adds or drops any.
var defaultCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
	"NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// securityWrapper returns the setpriv command that makes a container's process run as
// its securityContext says: runAsUser and runAsGroup (container, else pod), the pod's
// supplementalGroups, the runtime's default capabilities minus drop plus add as the
// bounding set, and no_new_privs when allowPrivilegeEscalation is false. It returns nil
// when the container sets none of these, so the process runs as root, as before.
//
// One difference from a container runtime: a non-root process also gets the added
// capabilities as ambient capabilities, because local binaries carry no file
// capabilities (the Flax image's flax-dataplane has cap_net_bind_service+ep; a runtime
// gives a non-root process added capabilities only through such file capabilities).
func securityWrapper(pod *corev1.Pod, c corev1.Container) []string {
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	uid, gid := sc.RunAsUser, sc.RunAsGroup
	if uid == nil {
		uid = psc.RunAsUser
	}
	if gid == nil {
		gid = psc.RunAsGroup
	}
	nnp := sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	if uid == nil && gid == nil && sc.Capabilities == nil && !nnp {
		return nil
	}
	bounding := slices.Clone(defaultCapabilities)
	var add []string
	if caps := sc.Capabilities; caps != nil {
		for _, d := range caps.Drop {
			name := capName(d)
			if name == "ALL" {
				bounding = nil
				continue
			}
			bounding = slices.DeleteFunc(bounding, func(b string) bool { return b == name })
		}
		for _, a := range caps.Add {
			name := capName(a)
			if !slices.Contains(bounding, name) {
				bounding = append(bounding, name)
			}
			add = append(add, name)
		}
	}
	argv := []string{"setpriv"}
	if uid != nil {
		argv = append(argv, "--reuid="+strconv.FormatInt(*uid, 10))
	}
	if gid != nil {
		argv = append(argv, "--regid="+strconv.FormatInt(*gid, 10))
	} else if uid != nil {
		argv = append(argv, "--regid=0") // the image's group; the local "image" has none
	}
	if len(psc.SupplementalGroups) > 0 {
		groups := make([]string, len(psc.SupplementalGroups))
		for i, g := range psc.SupplementalGroups {
			groups[i] = strconv.FormatInt(g, 10)
		}
		argv = append(argv, "--groups="+strings.Join(groups, ","))
	} else {
		argv = append(argv, "--clear-groups")
	}
	argv = append(argv, "--bounding-set="+capList(bounding))
	if uid != nil && *uid != 0 {
		argv = append(argv, "--inh-caps="+capList(add), "--ambient-caps="+capList(add))
	}
	if nnp {
		argv = append(argv, "--no-new-privs")
	}
	return append(argv, "--")
}

// capName turns a Kubernetes capability name (NET_BIND_SERVICE, or CAP_NET_BIND_SERVICE)
// into the runtime's spelling without the CAP_ prefix.
func capName(c corev1.Capability) string {
	return strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
}

// capList spells caps for setpriv: "-all" then "+name" for each.
func capList(caps []string) string {
	var b strings.Builder
	b.WriteString("-all")
	for _, c := range caps {
		b.WriteString(",+" + strings.ToLower(c))
	}
	return b.String()
}
