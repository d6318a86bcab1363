package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/flaxlb/flax/config/samples/demo"
)

// stateMarker marks a folder as a localcluster state folder, which a run may wipe.
const stateMarker = ".flax-localcluster"

// cluster is one run of `up`.
type cluster struct {
	cfg        *config
	net        *network
	pki        *pki
	apiURL     string
	apiPort    int
	kubeconfig string
	rest       *rest.Config
	client     kubernetes.Interface
	hostProcs  []*process // control plane, in start order
	flaxProcs  []*process // dataplane and controller
	agent      *nodeAgent
	hostSetup  bool
	// migrateReqPrev is the value of tcp_migrate_req before up set it; empty if untouched.
	migrateReqPrev string
}

// up starts everything and returns when the cluster is ready (and, with --sample, when
// the sample answers through the Gateway).
func (c *cluster) up(ctx context.Context) error {
	t0 := time.Now()
	if err := c.prepareDir(); err != nil {
		return err
	}
	if n := killMarked(c.cfg.dir); n > 0 {
		logf("killed %d processes left by an earlier run", n)
	}
	c.net.cleanStale()
	removeCreatedMountpoints(c.cfg.dir)
	removeCreatedHostPaths(c.cfg.dir)
	c.hostSetup = true
	if err := c.net.setupHost(); err != nil {
		return fmt.Errorf("setting up the host network: %w", err)
	}
	logf("pod bridge %s at %s (pods get %s addresses, no default route); local route %s on lo for Gateway addresses",
		bridgeName, c.net.nodeIP, c.net.podPrefix, c.net.pool)
	if c.cfg.migrateReq {
		prev, err := setSysctl(migrateReqSysctl, "1")
		if err != nil {
			return err
		}
		c.migrateReqPrev = prev
		logf("%s=1 (was %s; restored at teardown)", migrateReqSysctl, prev)
	}
	if err := c.startControlPlane(ctx); err != nil {
		return err
	}
	c.agent = newNodeAgent(c)
	if err := c.agent.start(ctx); err != nil {
		return fmt.Errorf("starting the node agent: %w", err)
	}
	logf("node %s registered (InternalIP %s, Ready, lease renewed every 10s); pods run as processes, logs in %s",
		c.cfg.nodeName, c.net.nodeIP, filepath.Join(c.cfg.dir, "pods"))
	if c.cfg.flax == flaxNone {
		if err := c.installGatewayAPI(); err != nil {
			return err
		}
		logf("Gateway API CRDs installed from %s; no Flax running (install it with helm: README.md, \"Install with Helm\")", c.cfg.crdDir)
	} else if err := c.startFlax(ctx); err != nil {
		return err
	}
	logf("cluster ready in %.1fs", time.Since(t0).Seconds())
	if c.cfg.sample {
		if err := c.applySample(ctx); err != nil {
			return err
		}
		logf("sample ready in %.1fs after start", time.Since(t0).Seconds())
	}
	c.printHelp()
	return nil
}

// prepareDir empties the state folder (only if it is one of ours or empty).
func (c *cluster) prepareDir() error {
	dir := c.cfg.dir
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, stateMarker)); err != nil {
			return fmt.Errorf("--dir %s is not empty and not a localcluster state folder; refusing to wipe it", dir)
		}
		// Kill first: processes may hold files open.
		killMarked(dir)
		c.net.cleanStale()
		removeCreatedMountpoints(dir)
		removeCreatedHostPaths(dir)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("wiping the state of the previous run: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stateMarker), []byte("state of hack/localcluster; wiped by the next run\n"), 0o644)
}

// teardown stops everything in reverse order and removes what was created.
func (c *cluster) teardown() {
	for i := len(c.flaxProcs) - 1; i >= 0; i-- {
		c.flaxProcs[i].stop(5 * time.Second)
	}
	if c.agent != nil {
		c.agent.stop()
	}
	for i := len(c.hostProcs) - 1; i >= 0; i-- {
		c.hostProcs[i].stop(5 * time.Second)
	}
	if !c.hostSetup {
		return
	}
	killMarked(c.cfg.dir)
	c.net.cleanStale()
	c.net.teardownHost()
	if c.migrateReqPrev != "" {
		if _, err := setSysctl(migrateReqSysctl, c.migrateReqPrev); err != nil {
			logf("restoring %s: %v", migrateReqSysctl, err)
		}
	}
	removeCreatedMountpoints(c.cfg.dir)
	removeCreatedHostPaths(c.cfg.dir)
}

// kubectl runs bin/kubectl with the admin kubeconfig.
func (c *cluster) kubectl(stdin string, args ...string) error {
	argv := append([]string{filepath.Join(c.cfg.binDir, "kubectl"), "--kubeconfig", c.kubeconfig}, args...)
	return runIn(stdin, argv...)
}

const gatewayClassYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: flax
spec:
  controllerName: flaxlb.io/gateway-controller
`

// installGatewayAPI installs the Gateway API CRDs and waits until they are served.
func (c *cluster) installGatewayAPI() error {
	if err := c.kubectl("", "apply", "--server-side", "-f", c.cfg.crdDir); err != nil {
		return fmt.Errorf("installing the gateway api crds: %w", err)
	}
	if err := c.kubectl("", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		return fmt.Errorf("waiting for the gateway api crds: %w", err)
	}
	return nil
}

// startFlax installs the CRDs and the GatewayClass and starts the dataplane and the
// controller as host processes.
func (c *cluster) startFlax(ctx context.Context) error {
	if err := c.kubectl("", "apply", "--server-side", "-f", c.cfg.crdDir); err != nil {
		return fmt.Errorf("installing the gateway api crds: %w", err)
	}
	if err := c.kubectl("", "apply", "--server-side", "-f", c.cfg.flaxCRDDir); err != nil {
		return fmt.Errorf("installing flax's crds: %w", err)
	}
	if err := c.kubectl("", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		return fmt.Errorf("waiting for the gateway api crds: %w", err)
	}
	if err := waitFor(ctx, 30*time.Second, "the GatewayClass kind", func() error {
		return c.kubectl(gatewayClassYAML, "apply", "--server-side", "-f", "-")
	}); err != nil {
		return err
	}
	logf("Gateway API CRDs installed from %s, Flax CRDs from %s; GatewayClass flax (flaxlb.io/gateway-controller) applied", c.cfg.crdDir, c.cfg.flaxCRDDir)

	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	runDir := filepath.Join(c.cfg.dir, "run")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return err
	}
	sock := filepath.Join(runDir, "dataplane.sock")
	logDir := filepath.Join(c.cfg.dir, "logs")
	env := append(os.Environ(), "NODE_NAME="+c.cfg.nodeName)
	dp, err := startProcess("flax-dataplane", c.cfg.dir, filepath.Join(logDir, "flax-dataplane.log"), "", env, []string{
		filepath.Join(c.cfg.binDir, "flax-dataplane"), "run",
		"--socket", sock,
		"--admin-address", adminAddr,
		"--node-name", c.cfg.nodeName,
	})
	if err != nil {
		return err
	}
	c.flaxProcs = append(c.flaxProcs, dp)
	if err := waitFor(ctx, 20*time.Second, "the flax-dataplane socket", func() error {
		if dp.exited() {
			return errExited
		}
		_, err := os.Stat(sock)
		return err
	}); err != nil {
		return err
	}
	logf("flax-dataplane started (socket %s, admin http://%s, log %s)", sock, adminAddr, filepath.Join(logDir, "flax-dataplane.log"))
	healthAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	ctrl, err := startProcess("flax-controller", c.cfg.dir, filepath.Join(logDir, "flax-controller.log"), "", env, []string{
		filepath.Join(c.cfg.binDir, "flax-controller"),
		"--kubeconfig", c.kubeconfig,
		"--dataplane-socket", sock,
		"--node-name", c.cfg.nodeName,
		"--health-probe-bind-address", healthAddr,
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(ports[2]),
	})
	if err != nil {
		return err
	}
	c.flaxProcs = append(c.flaxProcs, ctrl)
	if err := waitFor(ctx, 60*time.Second, "flax-controller /readyz", func() error {
		if ctrl.exited() {
			return errExited
		}
		return httpOK("http://" + healthAddr + "/readyz")
	}); err != nil {
		return err
	}
	logf("flax-controller started and ready (health http://%s, log %s)", healthAddr, filepath.Join(logDir, "flax-controller.log"))
	return nil
}

func httpOK(url string) error {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// applySample writes the sample of config/samples/demo into the state folder
// (sample.yaml, and sample-route.yaml and sample-listenerset.yaml for the help text),
// applies sample.yaml and waits
// until a request through the Gateway reaches a pod.
func (c *cluster) applySample(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(c.cfg.dir, "sample.yaml"), []byte(demo.App+"---\n"+demo.EchoRoute), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.cfg.dir, "sample-route.yaml"), []byte(demo.V2Route), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.cfg.dir, "sample-listenerset.yaml"), []byte(demo.ListenerSet), 0o644); err != nil {
		return err
	}
	if err := c.kubectl("", "apply", "-f", filepath.Join(c.cfg.dir, "sample.yaml")); err != nil {
		return fmt.Errorf("applying the sample: %w", err)
	}
	logf("sample applied (%s): namespace demo, Deployment echo (2 replicas), Service echo, Gateway demo on :%d, HTTPRoute echo",
		filepath.Join(c.cfg.dir, "sample.yaml"), c.cfg.gatewayPort)
	url := "http://127.0.0.1:" + strconv.Itoa(c.cfg.gatewayPort) + "/"
	var pod string
	err := waitFor(ctx, 120*time.Second, "the sample to answer at "+url, func() error {
		cl := http.Client{Timeout: 2 * time.Second}
		resp, err := cl.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Pod string `json:"pod"`
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil || body.Pod == "" {
			return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		pod = body.Pod
		return nil
	})
	if err != nil {
		return err
	}
	logf("GET %s answered by pod %s", url, pod)
	return nil
}

// printHelp prints how to use the cluster.
func (c *cluster) printHelp() {
	k := "bin/kubectl"
	fmt.Printf(`
The cluster is up. In another shell:

  export KUBECONFIG=%s
  %s get nodes,pods -A -o wide

Pod logs: %s logs -n NAMESPACE POD (the files are under %s).
`, c.kubeconfig, k, k, filepath.Join(c.cfg.dir, "pods"))
	if c.cfg.flax == flaxNone {
		fmt.Printf(`
Flax is not running (--flax=none). Install it from the chart as README.md says
("Install with Helm"): the node agent runs the DaemonSet's pods, and images naming
flax run %s/flax-dataplane and flax-controller.
`, c.cfg.binDir)
	}
	if c.cfg.sample {
		fmt.Printf(`
Sample (namespace demo), served by flax-dataplane on every address, port %[1]d:

  curl -s http://127.0.0.1:%[1]d/ | grep '"pod"'
  curl -s http://%[2]s:%[1]d/            # the Gateway's status address (the node address)
  %[3]s -n demo get gateway,httproute,deploy,pods,endpointslices -o wide
  %[3]s -n demo scale deployment echo --replicas=3
  for i in $(seq 6); do curl -s http://127.0.0.1:%[1]d/ | grep '"pod"'; done
  %[3]s apply -f %[4]s
  curl -s -H 'Host: v2.example.com' http://127.0.0.1:%[1]d/v2/hello
  %[3]s apply -f %[5]s     # a ListenerSet: port 8081 on Gateway demo
  %[3]s -n demo get listenerset team
  curl -s -H 'Host: team.example.com' http://127.0.0.1:8081/ | grep '"pod"'
`, c.cfg.gatewayPort, c.net.nodeIP, k, filepath.Join(c.cfg.dir, "sample-route.yaml"), filepath.Join(c.cfg.dir, "sample-listenerset.yaml"))
	}
	fmt.Printf("\nGateways with spec.addresses may use %s (routed to this machine). Ctrl-C stops everything.\n\n", c.net.pool)
}

// migrateReqSysctl makes the kernel move the connections queued on a closing
// SO_REUSEPORT listener to another listener of its group (Linux 5.14+), so that a
// dataplane handing its Gateway ports over to a new one resets none. Flax's chart
// documents it as a node prerequisite; this node sets it as a node image would.
const migrateReqSysctl = "net/ipv4/tcp_migrate_req"

// setSysctl writes value to /proc/sys/NAME and returns the previous value.
func setSysctl(name, value string) (string, error) {
	p := filepath.Join("/proc/sys", name)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", name, err)
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return "", fmt.Errorf("setting sysctl %s=%s: %w", name, value, err)
	}
	return strings.TrimSpace(string(b)), nil
}
