package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
)

// podRuntime runs one pod: its network namespace, volumes, processes, readiness probes
// and status.
type podRuntime struct {
	a   *nodeAgent
	key string // namespace/name

	mu          sync.Mutex
	pod         *corev1.Pod // latest seen
	ip          netip.Addr
	netns, veth string
	dir         string
	mounts      map[string]string // volume name -> host folder or file
	containers  []*containerState
	phase       corev1.PodPhase
	message     string
	initialized bool
	startTime   metav1.Time
	deleting    bool

	ctx      context.Context
	cancel   context.CancelFunc
	statusCh chan struct{}
	killOnce sync.Once
	killed   chan struct{}
}

// containerState is one container's process and what the status reports about it.
type containerState struct {
	spec     corev1.Container
	init     bool
	argv     []string
	env      []string
	dir      string // working folder of the process
	proc     *process
	running  bool
	started  metav1.Time
	ready    bool
	restarts int32
	waiting  *corev1.ContainerStateWaiting
	last     *corev1.ContainerStateTerminated
	term     *corev1.ContainerStateTerminated
}

func newPodRuntime(a *nodeAgent, p *corev1.Pod) *podRuntime {
	ctx, cancel := context.WithCancel(a.ctx)
	return &podRuntime{
		a: a, key: p.Namespace + "/" + p.Name, pod: p.DeepCopy(), phase: corev1.PodPending,
		dir: filepath.Join(a.c.cfg.dir, "pods", p.Namespace+"_"+p.Name+"_"+string(p.UID)),
		ctx: ctx, cancel: cancel, statusCh: make(chan struct{}, 1), killed: make(chan struct{}),
		startTime: metav1.Now(),
	}
}

// update records the latest pod object and starts termination when it is deleted.
func (r *podRuntime) update(p *corev1.Pod) {
	r.mu.Lock()
	r.pod = p.DeepCopy()
	start := p.DeletionTimestamp != nil && !r.deleting
	if start {
		r.deleting = true
	}
	r.mu.Unlock()
	if start {
		// The pod's grace period, as the kubelet: processes that handle SIGTERM (the
		// dataplane drains) exit as soon as they are done, the rest die at once.
		grace := 30 * time.Second
		if g := p.DeletionGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		go func() {
			r.kill(grace)
			r.a.finishDelete(p)
		}()
	}
}

// kill stops the containers (SIGTERM, then SIGKILL after grace) and removes the pod's
// network namespace; it runs once.
func (r *podRuntime) kill(grace time.Duration) {
	r.killOnce.Do(func() {
		r.cancel()
		r.mu.Lock()
		ctrs := append([]*containerState(nil), r.containers...)
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range ctrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.mu.Lock()
				p := c.proc
				r.mu.Unlock()
				p.stop(grace)
			}()
		}
		wg.Wait()
		r.mu.Lock()
		if r.netns != "" {
			r.a.c.net.delPod(r.netns, r.veth)
			r.a.c.net.release(r.ip)
			r.netns = ""
		}
		r.mu.Unlock()
		r.a.forget(r.pod.UID)
		close(r.killed)
	})
	<-r.killed
}

// run sets the pod up and starts its containers; supervision continues in goroutines.
func (r *podRuntime) run() {
	go r.statusWriter()
	if err := r.setup(); err != nil {
		if r.ctx.Err() == nil {
			logf("pod %s: %v", r.key, err)
			r.mu.Lock()
			r.message = err.Error()
			r.mu.Unlock()
			r.notify()
		}
		return
	}
	r.mu.Lock()
	pod := r.pod
	r.mu.Unlock()
	for _, c := range pod.Spec.InitContainers {
		cs := r.prepareContainer(c, true)
		if cs.waiting != nil {
			r.notify()
			return
		}
		for attempt := 0; ; attempt++ {
			code, err := r.runToCompletion(cs)
			if r.ctx.Err() != nil {
				return
			}
			if err == nil && code == 0 {
				break
			}
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				r.mu.Lock()
				r.phase, r.message = corev1.PodFailed, fmt.Sprintf("init container %s failed (exit code %d)", c.Name, code)
				r.mu.Unlock()
				r.notify()
				return
			}
			if !sleepCtx(r.ctx, backoff(attempt)) {
				return
			}
		}
	}
	r.mu.Lock()
	r.initialized = true
	r.mu.Unlock()
	for _, c := range pod.Spec.Containers {
		cs := r.prepareContainer(c, false)
		if cs.waiting != nil {
			logf("pod %s: container %s: %s", r.key, c.Name, cs.waiting.Message)
			continue
		}
		go r.supervise(cs)
		if c.ReadinessProbe != nil {
			go r.probe(cs)
		}
		if c.LivenessProbe != nil {
			go r.liveness(cs)
		}
	}
	r.notify()
}

// setup creates the pod's folder, network namespace and volumes.
func (r *podRuntime) setup() error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	r.mu.Lock()
	pod := r.pod
	r.mu.Unlock()
	if pod.Spec.HostNetwork {
		r.mu.Lock()
		r.ip = r.a.c.net.nodeIP
		r.mu.Unlock()
	} else {
		addr, err := r.a.c.net.allocate()
		if err != nil {
			return err
		}
		netns, veth := podNames(string(pod.UID))
		if err := r.a.c.net.addPod(netns, veth, addr); err != nil {
			r.a.c.net.release(addr)
			return fmt.Errorf("creating the pod network: %w", err)
		}
		r.mu.Lock()
		r.ip, r.netns, r.veth = addr, netns, veth
		killed := r.ctx.Err() != nil
		r.mu.Unlock()
		if killed { // kill ran while we were creating the namespace
			r.a.c.net.delPod(netns, veth)
			r.a.c.net.release(addr)
			return r.ctx.Err()
		}
	}
	r.notify()
	mounts, err := r.writeVolumes(pod)
	for err != nil {
		r.mu.Lock()
		r.message = "preparing volumes: " + err.Error()
		r.mu.Unlock()
		r.notify()
		if !sleepCtx(r.ctx, 2*time.Second) {
			return fmt.Errorf("preparing volumes: %w", err)
		}
		mounts, err = r.writeVolumes(pod)
	}
	r.mu.Lock()
	r.message = ""
	r.mounts = mounts
	r.mu.Unlock()
	return nil
}

// prepareContainer resolves a container's binary, arguments and environment; on failure
// the returned state is waiting with the reason.
func (r *podRuntime) prepareContainer(c corev1.Container, init bool) *containerState {
	cs := &containerState{spec: c, init: init}
	r.mu.Lock()
	if !init {
		r.containers = append(r.containers, cs)
	}
	r.mu.Unlock()
	fail := func(reason string, err error) *containerState {
		r.mu.Lock()
		cs.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		r.mu.Unlock()
		return cs
	}
	bin, err := r.a.c.imageBinary(c.Image, c.Command)
	if err != nil {
		return fail("ErrImagePull", err)
	}
	env, err := r.containerEnv(c)
	if err != nil {
		return fail("CreateContainerConfigError", err)
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	argv := []string{bin}
	if len(c.Command) > 0 {
		argv = append(argv, c.Command[1:]...)
	}
	argv = append(argv, c.Args...)
	for i := 1; i < len(argv); i++ {
		argv[i] = expandVars(argv[i], vars)
	}
	launch, err := r.launcher(c, argv)
	if err != nil {
		return fail("CreateContainerConfigError", err)
	}
	cs.argv, cs.env, cs.dir = launch, env, r.dir
	if c.WorkingDir != "" {
		cs.dir = c.WorkingDir // created by launcher; with mounts, sh changes to it instead
	}
	return cs
}

// launcher wraps argv so that it runs in the pod's network namespace with its volumes
// bind-mounted in a private mount namespace (nsenter, unshare, sh, mount --bind), as the
// user and with the capabilities of its securityContext (setpriv, after the mounts).
func (r *podRuntime) launcher(c corev1.Container, argv []string) ([]string, error) {
	r.mu.Lock()
	netns, mounts, pod := r.netns, r.mounts, r.pod
	r.mu.Unlock()
	argv = append(securityWrapper(pod, c), argv...)
	var script strings.Builder
	for _, m := range c.VolumeMounts {
		src, ok := mounts[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %s: volume %q is not supported or not defined", m.MountPath, m.Name)
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("volume mount %s: %w", m.MountPath, err)
		}
		if err := ensureMountpoint(r.a.c.cfg.dir, m.MountPath, !fi.IsDir()); err != nil {
			return nil, fmt.Errorf("volume mount %s: %w", m.MountPath, err)
		}
		fmt.Fprintf(&script, "mount --bind %s %s && ", shellQuote(src), shellQuote(m.MountPath))
		if m.ReadOnly {
			fmt.Fprintf(&script, "mount -o remount,bind,ro %s && ", shellQuote(m.MountPath))
		}
	}
	wd := r.dir
	if c.WorkingDir != "" {
		wd = c.WorkingDir
		if script.Len() == 0 {
			if err := os.MkdirAll(wd, 0o755); err != nil {
				return nil, err
			}
		}
	}
	var out []string
	if netns != "" {
		out = append(out, "nsenter", "--net=/run/netns/"+netns, "--")
	}
	if script.Len() > 0 {
		fmt.Fprintf(&script, "cd %s && exec \"$@\"", shellQuote(wd))
		out = append(out, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script.String(), "sh")
	}
	return append(out, argv...), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// start starts a container's process once.
func (r *podRuntime) start(cs *containerState) error {
	dir := cs.dir
	if _, err := os.Stat(dir); err != nil {
		dir = r.dir
	}
	p, err := startContainer(r.key+"/"+cs.spec.Name, r.a.c.cfg.dir, containerLogPath(r.dir, cs.spec.Name), dir, cs.env, cs.argv)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		cs.waiting = &corev1.ContainerStateWaiting{Reason: "RunContainerError", Message: err.Error()}
		return err
	}
	cs.proc, cs.running, cs.started, cs.waiting, cs.ready = p, true, metav1.Now(), nil, cs.spec.ReadinessProbe == nil
	if cs.last = cs.term; cs.term != nil {
		cs.term = nil
	}
	return nil
}

// exited records a container's exit.
func (r *podRuntime) exited(cs *containerState) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	code := int32(cs.proc.exitCode())
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	cs.running, cs.ready = false, false
	cs.term = &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, StartedAt: cs.started, FinishedAt: metav1.Now(),
		ContainerID: "local://" + strconv.Itoa(cs.proc.cmd.Process.Pid),
	}
	return code
}

// runToCompletion runs an init container and returns its exit code.
func (r *podRuntime) runToCompletion(cs *containerState) (int32, error) {
	if err := r.start(cs); err != nil {
		return -1, err
	}
	r.mu.Lock()
	p := cs.proc
	r.mu.Unlock()
	select {
	case <-p.done:
	case <-r.ctx.Done():
		p.stop(time.Second)
	}
	return r.exited(cs), nil
}

// supervise runs a container and restarts it by the pod's restart policy.
func (r *podRuntime) supervise(cs *containerState) {
	for attempt := 0; ; attempt++ {
		if r.ctx.Err() != nil {
			return
		}
		if err := r.start(cs); err != nil {
			logf("pod %s: container %s: %v", r.key, cs.spec.Name, err)
			r.notify()
			return
		}
		r.notify()
		r.mu.Lock()
		p := cs.proc
		r.mu.Unlock()
		select {
		case <-p.done:
		case <-r.ctx.Done():
			return // kill stops the process
		}
		if r.ctx.Err() != nil {
			return
		}
		code := r.exited(cs)
		r.mu.Lock()
		policy := r.pod.Spec.RestartPolicy
		r.mu.Unlock()
		restart := policy == corev1.RestartPolicyAlways || policy == "" || (policy == corev1.RestartPolicyOnFailure && code != 0)
		if !restart {
			r.notify()
			return
		}
		r.mu.Lock()
		cs.restarts++
		cs.waiting = &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("exited with code %d; log in %s", code, filepath.Join(r.dir, cs.spec.Name+".log")),
		}
		r.mu.Unlock()
		r.notify()
		if !sleepCtx(r.ctx, backoff(attempt)) {
			return
		}
	}
}

func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt, 5)
	return min(d, 30*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// probe runs a container's readiness probe (httpGet or tcpSocket from the host to the
// pod address, or exec in the pod's network namespace).
func (r *podRuntime) probe(cs *containerState) {
	pr := cs.spec.ReadinessProbe
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	if pr.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	succThreshold, failThreshold := max(pr.SuccessThreshold, 1), max(pr.FailureThreshold, 1)
	if pr.FailureThreshold == 0 {
		failThreshold = 3
	}
	if !sleepCtx(r.ctx, time.Duration(pr.InitialDelaySeconds)*time.Second) {
		return
	}
	var succ, fail int32
	var lastStart metav1.Time
	for {
		r.mu.Lock()
		running, ready, started := cs.running, cs.ready, cs.started
		r.mu.Unlock()
		if running {
			if started != lastStart { // restarted: start over
				lastStart, succ, fail = started, 0, 0
			}
			err := r.probeOnce(cs, pr, timeout)
			newReady := ready
			if err == nil {
				succ, fail = succ+1, 0
				if succ >= succThreshold {
					newReady = true
				}
			} else {
				succ, fail = 0, fail+1
				if fail >= failThreshold {
					newReady = false
				}
			}
			if newReady != ready {
				r.mu.Lock()
				if cs.running && cs.started == started {
					cs.ready = newReady
				}
				r.mu.Unlock()
				r.notify()
			}
		}
		// Probe quickly until first ready, so that new pods join endpoints fast.
		wait := period
		if !ready && wait > time.Second {
			wait = time.Second
		}
		if !sleepCtx(r.ctx, wait) {
			return
		}
	}
}

func (r *podRuntime) probeOnce(cs *containerState, pr *corev1.Probe, timeout time.Duration) error {
	r.mu.Lock()
	ip := r.ip.String()
	r.mu.Unlock()
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := resolvePort(g.Port, cs.spec)
		if err != nil {
			return err
		}
		host := ip
		if g.Host != "" {
			host = g.Host
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		cl := http.Client{Timeout: timeout}
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := resolvePort(pr.TCPSocket.Port, cs.spec)
		if err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), timeout)
		if err != nil {
			return err
		}
		return c.Close()
	case pr.Exec != nil && len(pr.Exec.Command) > 0:
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		defer cancel()
		// As a kubelet runs it in the container: the command's binary from the
		// container's image (mapped to bin/ like the container's own command), with the
		// container's volumes, network namespace, user and capabilities.
		argv := slices.Clone(pr.Exec.Command)
		if bin, err := r.a.c.imageBinary(cs.spec.Image, argv[:1]); err == nil {
			argv[0] = bin
		}
		argv, err := r.launcher(cs.spec, argv)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = cs.env
		cmd.Dir = r.dir
		return cmd.Run()
	}
	return nil // unsupported probe kinds pass
}

func resolvePort(p intstr.IntOrString, c corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

// notify asks the status writer to publish the pod's status.
func (r *podRuntime) notify() {
	select {
	case r.statusCh <- struct{}{}:
	default:
	}
}

// statusWriter publishes the pod status whenever notified, until the pod is killed.
func (r *podRuntime) statusWriter() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.statusCh:
		}
		err := retry.OnError(retry.DefaultBackoff, func(err error) bool { return !apierrors.IsNotFound(err) && r.ctx.Err() == nil }, func() error {
			r.mu.Lock()
			ns, name := r.pod.Namespace, r.pod.Name
			r.mu.Unlock()
			cur, err := r.a.client.CoreV1().Pods(ns).Get(r.ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.UID != r.pod.UID {
				return nil
			}
			cur.Status = r.status(cur)
			_, err = r.a.client.CoreV1().Pods(ns).UpdateStatus(r.ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil && r.ctx.Err() == nil && !apierrors.IsNotFound(err) {
			logf("pod %s: updating status: %v", r.key, err)
		}
	}
}

// status computes the pod status from the runtime state, keeping transition times of
// unchanged conditions from cur.
func (r *podRuntime) status(cur *corev1.Pod) corev1.PodStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	nodeIP := r.a.c.net.nodeIP.String()
	st := corev1.PodStatus{
		Phase:     r.phase,
		Message:   r.message,
		HostIP:    nodeIP,
		HostIPs:   []corev1.HostIP{{IP: nodeIP}},
		StartTime: &r.startTime,
		QOSClass:  cur.Status.QOSClass,
	}
	if r.ip.IsValid() {
		st.PodIP = r.ip.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	allReady := len(r.containers) == len(r.pod.Spec.Containers) && len(r.containers) > 0
	anyRunning, allDone, anyFailed := false, len(r.containers) == len(r.pod.Spec.Containers), false
	for _, cs := range r.containers {
		s := corev1.ContainerStatus{
			Name: cs.spec.Name, Image: cs.spec.Image, ImageID: "local://" + cs.spec.Image,
			Ready: cs.ready, RestartCount: cs.restarts, Started: ptrBool(cs.running),
			LastTerminationState: corev1.ContainerState{Terminated: cs.last},
		}
		switch {
		case cs.running:
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: cs.started}
			s.ContainerID = "local://" + strconv.Itoa(cs.proc.cmd.Process.Pid)
			anyRunning = true
		case cs.waiting != nil:
			s.State.Waiting = cs.waiting
		case cs.term != nil:
			s.State.Terminated = cs.term
			anyFailed = anyFailed || cs.term.ExitCode != 0
		default:
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if cs.term == nil || cs.waiting != nil || cs.running {
			allDone = false
		}
		if !cs.ready {
			allReady = false
		}
		st.ContainerStatuses = append(st.ContainerStatuses, s)
	}
	if st.Phase == corev1.PodPending {
		switch {
		case anyRunning:
			st.Phase = corev1.PodRunning
		case allDone && anyFailed:
			st.Phase = corev1.PodFailed
		case allDone:
			st.Phase = corev1.PodSucceeded
		}
	}
	if st.Phase == corev1.PodRunning && !anyRunning && allDone {
		st.Phase = corev1.PodSucceeded
		if anyFailed {
			st.Phase = corev1.PodFailed
		}
	}
	for _, ic := range r.pod.Spec.InitContainers {
		s := corev1.ContainerStatus{Name: ic.Name, Image: ic.Image, ImageID: "local://" + ic.Image, Started: ptrBool(false)}
		if r.initialized {
			s.Ready = true
			s.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed"}
		} else {
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, s)
	}
	boolCond := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	conds := []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: boolCond(r.initialized || len(r.pod.Spec.InitContainers) == 0)},
		{Type: corev1.ContainersReady, Status: boolCond(allReady)},
		{Type: corev1.PodReady, Status: boolCond(allReady)},
	}
	now := metav1.Now()
	for i := range conds {
		conds[i].LastTransitionTime = now
		for _, old := range cur.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
		if conds[i].Status == corev1.ConditionFalse && (conds[i].Type == corev1.PodReady || conds[i].Type == corev1.ContainersReady) {
			conds[i].Reason = "ContainersNotReady"
		}
	}
	st.Conditions = conds
	return st
}

func ptrBool(b bool) *bool { return &b }

// errNoMapping is returned for images without a local binary.
var errNoMapping = errors.New("no local binary mapping")

// imageBinary maps an image (and the container's command) to a local binary: images
// naming echo-basic run bin/echo-basic, images naming flax run bin/flax-controller or
// bin/flax-dataplane (chosen by the command, then by the image name; the image's
// entrypoint is flax-dataplane).
func (c *cluster) imageBinary(image string, command []string) (string, error) {
	var name string
	switch {
	case strings.Contains(image, "echo-basic"):
		name = "echo-basic"
	case strings.Contains(image, "coredns"):
		name = "coredns"
	case strings.Contains(image, "flax"):
		name = "flax-dataplane"
		if strings.Contains(image, "controller") {
			name = "flax-controller"
		}
		if len(command) > 0 {
			switch b := filepath.Base(command[0]); b {
			case "flax-controller", "flax-dataplane":
				name = b
			}
		}
	default:
		return "", fmt.Errorf("image %s has no local binary mapping (localcluster runs only echo-basic and flax images)", image)
	}
	if len(command) > 0 && filepath.Base(command[0]) != name {
		return "", fmt.Errorf("image %s: command %q is not available locally (the image maps to %s): %w", image, command[0], name, errNoMapping)
	}
	return filepath.Join(c.cfg.binDir, name), nil
}

// liveness runs a container's liveness probe: after failureThreshold failures in a row the
// container is stopped (SIGTERM, SIGKILL after the pod's grace period) and supervise
// restarts it by the pod's restart policy.
func (r *podRuntime) liveness(cs *containerState) {
	pr := cs.spec.LivenessProbe
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	if pr.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	failThreshold := max(pr.FailureThreshold, 1)
	if pr.FailureThreshold == 0 {
		failThreshold = 3
	}
	var fail int32
	var lastStart metav1.Time
	for {
		r.mu.Lock()
		running, started, proc := cs.running, cs.started, cs.proc
		grace := time.Duration(ptrDeref(r.pod.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
		r.mu.Unlock()
		if running && started != lastStart { // (re)started: wait the initial delay again
			lastStart, fail = started, 0
			if !sleepCtx(r.ctx, time.Duration(pr.InitialDelaySeconds)*time.Second) {
				return
			}
		}
		if running {
			if err := r.probeOnce(cs, pr, timeout); err != nil {
				fail++
				if fail >= failThreshold {
					logf("pod %s: container %s failed its liveness probe %d times (%v); restarting it", r.key, cs.spec.Name, fail, err)
					fail = 0
					proc.stop(grace)
				}
			} else {
				fail = 0
			}
		}
		if !sleepCtx(r.ctx, period) {
			return
		}
	}
}

func ptrDeref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
