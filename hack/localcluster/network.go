package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Names of everything the cluster creates in the host's network stack. Stale objects
// with these names are removed at start and by `down`.
const (
	netnsPrefix = "flaxlc-" // pod network namespaces: flaxlc-<pod uid>
	vethPrefix  = "flxv"    // host ends of pod veths: flxv<11 hex of the pod uid>
	bridgeName  = "flaxlc0" // host bridge of the pod network, holding the node address
	routeType   = "local"   // the gateway pool is a route of type local on lo
	ipCmd       = "/usr/sbin/ip"
)

// network manages the pod bridge, the pod network namespaces and the gateway pool route.
//
// Pods sit on a host bridge with one address each from the pod CIDR; the bridge holds
// the first address, which is also the Node's InternalIP. Pods get only the connected
// route of the pod CIDR, no default route, and the host does not forward, so pods reach
// the host and each other and nothing else.
type network struct {
	podPrefix netip.Prefix
	nodeIP    netip.Addr
	pool      netip.Prefix

	mu        sync.Mutex
	allocated map[netip.Addr]bool
	next      netip.Addr
}

func newNetwork(podCIDR, pool string) (*network, error) {
	pp, err := netip.ParsePrefix(podCIDR)
	if err != nil || !pp.Addr().Is4() {
		return nil, fmt.Errorf("--pod-cidr %q is not an IPv4 prefix", podCIDR)
	}
	gp, err := netip.ParsePrefix(pool)
	if err != nil || !gp.Addr().Is4() {
		return nil, fmt.Errorf("--gateway-pool %q is not an IPv4 prefix", pool)
	}
	pp, gp = pp.Masked(), gp.Masked()
	if pp.Overlaps(gp) {
		return nil, fmt.Errorf("--pod-cidr %s overlaps --gateway-pool %s", pp, gp)
	}
	node := pp.Addr().Next()
	return &network{podPrefix: pp, nodeIP: node, pool: gp, allocated: map[netip.Addr]bool{}, next: node.Next()}, nil
}

// ip runs the ip command.
func ip(args ...string) error {
	out, err := exec.Command(ipCmd, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupHost creates the bridge with the node address and the gateway pool route.
func (n *network) setupHost() error {
	bits := strconv.Itoa(n.podPrefix.Bits())
	steps := [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", n.nodeIP.String() + "/" + bits, "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
		{"route", "add", "local", n.pool.String(), "dev", "lo"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// teardownHost removes the bridge and the gateway pool route.
func (n *network) teardownHost() {
	_ = ip("route", "del", routeType, n.pool.String(), "dev", "lo", "table", "local")
	_ = ip("link", "del", bridgeName)
}

// cleanStale removes pod namespaces (killing what runs in them), veths, the bridge and
// the pool route left by an earlier run.
func (n *network) cleanStale() {
	out, _ := exec.Command(ipCmd, "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], netnsPrefix) {
			killNetnsPids(f[0])
			_ = ip("netns", "del", f[0])
		}
	}
	out, _ = exec.Command(ipCmd, "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, vethPrefix) || name == bridgeName {
			_ = ip("link", "del", name)
		}
	}
	// Deleting a route that is not there fails harmlessly.
	_ = ip("route", "del", routeType, n.pool.String(), "dev", "lo", "table", "local")
}

func killNetnsPids(ns string) {
	out, _ := exec.Command(ipCmd, "netns", "pids", ns).Output()
	for _, s := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(s); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// allocate returns a free pod address.
func (n *network) allocate() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	start := n.next
	for a := start; ; {
		if !n.allocated[a] && a != n.nodeIP {
			n.allocated[a] = true
			n.next = a.Next()
			if !n.podPrefix.Contains(n.next) {
				n.next = n.nodeIP.Next()
			}
			return a, nil
		}
		a = a.Next()
		if !n.podPrefix.Contains(a) || isBroadcast(n.podPrefix, a) {
			a = n.nodeIP.Next()
		}
		if a == start {
			return netip.Addr{}, errors.New("pod CIDR exhausted")
		}
	}
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	return !p.Contains(a.Next())
}

// release returns an address to the pool.
func (n *network) release(a netip.Addr) {
	n.mu.Lock()
	delete(n.allocated, a)
	n.mu.Unlock()
}

// podNames returns the namespace and host veth names of a pod.
func podNames(uid string) (netns, veth string) {
	h := strings.ReplaceAll(uid, "-", "")
	if len(h) > 11 {
		h = h[:11]
	}
	return netnsPrefix + uid, vethPrefix + h
}

// addPod creates the pod's network namespace with eth0 at addr on the bridge.
func (n *network) addPod(netns, veth string, addr netip.Addr) error {
	cidr := addr.String() + "/" + strconv.Itoa(n.podPrefix.Bits())
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns},
		{"link", "set", veth, "master", bridgeName, "up"},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "addr", "add", cidr, "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.delPod(netns, veth)
			return err
		}
	}
	return nil
}

// delPod kills what still runs in the namespace and removes it and the veth.
func (n *network) delPod(netns, veth string) {
	killNetnsPids(netns)
	_ = ip("netns", "del", netns)
	_ = ip("link", "del", veth) // usually gone with the namespace
}
