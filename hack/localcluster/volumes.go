package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// containerEnv builds a container's environment: a base PATH and HOSTNAME, then envFrom,
// then env (values, field references, Secret and ConfigMap keys), with $(VAR) expanded.
func (r *podRuntime) containerEnv(c corev1.Container) ([]string, error) {
	r.mu.Lock()
	pod, ip := r.pod, r.ip
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	set("HOSTNAME", pod.Name)
	set("HOME", "/root")
	if pod.Spec.HostNetwork {
		// In-cluster config, as the kubelet gives every pod. Only host-network pods can
		// reach the API server (it listens on the host's 127.0.0.1, which its serving
		// certificate covers).
		port := strconv.Itoa(r.a.c.apiPort)
		set("KUBERNETES_SERVICE_HOST", "127.0.0.1")
		set("KUBERNETES_SERVICE_PORT", port)
		set("KUBERNETES_SERVICE_PORT_HTTPS", port)
	}
	for _, ef := range c.EnvFrom {
		var data map[string]string
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := r.a.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ef.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && ptr.Deref(ef.ConfigMapRef.Optional, false) {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %s: %w", ef.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case ef.SecretRef != nil:
			s, err := r.a.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ef.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && ptr.Deref(ef.SecretRef.Optional, false) {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %s: %w", ef.SecretRef.Name, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, vars))
			continue
		}
		v, skip, err := r.envValueFrom(ctx, pod, ip.String(), e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if !skip {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out, nil
}

func (r *podRuntime) envValueFrom(ctx context.Context, pod *corev1.Pod, ip string, vf *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := fieldValue(pod, vf.FieldRef.FieldPath, ip, r.a.c.net.nodeIP.String())
		return v, false, err
	case vf.ResourceFieldRef != nil:
		return "0", false, nil
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := r.a.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, false, nil
			}
			err = fmt.Errorf("configmap %s has no key %s", ref.Name, ref.Key)
		}
		if ptr.Deref(ref.Optional, false) {
			return "", true, nil
		}
		return "", false, err
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		s, err := r.a.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), false, nil
			}
			err = fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
		}
		if ptr.Deref(ref.Optional, false) {
			return "", true, nil
		}
		return "", false, err
	}
	return "", true, nil
}

// fieldValue resolves a downward API field path.
func fieldValue(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("field path %q is not supported", path)
}

// expandVars replaces $(NAME) with defined variables; $$ escapes a dollar sign.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// writeVolumes writes the pod's volumes under its folder and returns the host path of
// each. Supported: configMap, secret, emptyDir, hostPath, downwardAPI and projected
// (configMap, secret, downwardAPI, serviceAccountToken). The projected kube-root-ca.crt
// ConfigMap is served from the cluster CA when the API has none (the root-ca publisher
// controller does not run).
func (r *podRuntime) writeVolumes(pod *corev1.Pod) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(r.dir, "volumes", v.Name)
		files := map[string][]byte{}
		mode := int32(0o644)
		var err error
		switch {
		case v.HostPath != nil:
			if err := ensureHostPath(r.a.c.cfg.dir, v.HostPath); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			out[v.Name] = v.HostPath.Path
			continue
		case v.EmptyDir != nil:
			mode = 0o777 // the folder, as the kubelet makes it: writable by any user
		case v.ConfigMap != nil:
			mode = ptr.Deref(v.ConfigMap.DefaultMode, mode)
			err = r.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, ptr.Deref(v.ConfigMap.Optional, false), files)
		case v.Secret != nil:
			mode = ptr.Deref(v.Secret.DefaultMode, mode)
			err = r.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, ptr.Deref(v.Secret.Optional, false), files)
		case v.DownwardAPI != nil:
			err = r.downwardFiles(pod, v.DownwardAPI.Items, files)
		case v.Projected != nil:
			mode = ptr.Deref(v.Projected.DefaultMode, mode)
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					err = r.configMapFiles(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, ptr.Deref(s.ConfigMap.Optional, false), files)
				case s.Secret != nil:
					err = r.secretFiles(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, ptr.Deref(s.Secret.Optional, false), files)
				case s.DownwardAPI != nil:
					err = r.downwardFiles(pod, s.DownwardAPI.Items, files)
				case s.ServiceAccountToken != nil:
					err = r.tokenFile(ctx, pod, s.ServiceAccountToken, files)
				}
				if err != nil {
					break
				}
			}
		default:
			continue // unsupported: a mount of it fails the container with a clear message
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if v.EmptyDir != nil {
			if err := os.Chmod(dir, 0o777); err != nil {
				return nil, err
			}
		}
		for name, b := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, b, fs.FileMode(mode)&0o777); err != nil {
				return nil, err
			}
		}
		out[v.Name] = dir
	}
	return out, nil
}

func keyFiles(data map[string][]byte, items []corev1.KeyToPath, files map[string][]byte) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = v
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s not found", it.Key)
		}
		files[it.Path] = v
	}
	return nil
}

func (r *podRuntime) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional bool, files map[string][]byte) error {
	cm, err := r.a.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && name == "kube-root-ca.crt" {
		return keyFiles(map[string][]byte{"ca.crt": r.a.c.pki.caPEM}, items, files)
	}
	if apierrors.IsNotFound(err) && optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, files)
}

func (r *podRuntime) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional bool, files map[string][]byte) error {
	s, err := r.a.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return keyFiles(s.Data, items, files)
}

func (r *podRuntime) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, files map[string][]byte) error {
	for _, it := range items {
		if it.FieldRef == nil {
			continue
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath, r.ip.String(), r.a.c.net.nodeIP.String())
		if err != nil {
			return err
		}
		files[it.Path] = []byte(v)
	}
	return nil
}

// tokenFile requests a bound service-account token for the pod (not refreshed).
func (r *podRuntime) tokenFile(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, files map[string][]byte) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(ptr.Deref(src.ExpirationSeconds, 3607)),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := r.a.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("service account token for %s: %w", sa, err)
	}
	files[src.Path] = []byte(tr.Status.Token)
	return nil
}

// Mount points that did not exist on the host are created (bind mounts need a target)
// and listed in this file of the state folder, so that teardown removes them again.
const createdMountpointsFile = "created-mountpoints"

var mountpointMu sync.Mutex

// ensureMountpoint creates path (a folder, or an empty file if file) when missing and
// records the topmost created path.
func ensureMountpoint(stateDir, path string, file bool) error {
	mountpointMu.Lock()
	defer mountpointMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return createRecorded(filepath.Join(stateDir, createdMountpointsFile), path, file)
}

// createRecorded creates the missing path (a folder, or an empty file if file) with its
// missing parents, after appending the topmost path it creates to the list file.
// Callers hold mountpointMu.
func createRecorded(list, path string, file bool) error {
	top := path
	for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
	}
	f, err := os.OpenFile(list, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, top)
	f.Close()
	if err != nil {
		return err
	}
	if !file {
		return os.MkdirAll(path, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o644)
}

// removeCreatedMountpoints removes the recorded mount points that are still empty.
func removeCreatedMountpoints(stateDir string) {
	mountpointMu.Lock()
	defer mountpointMu.Unlock()
	list := filepath.Join(stateDir, createdMountpointsFile)
	b, err := os.ReadFile(list)
	if err != nil {
		return
	}
	for _, top := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if top != "" && filepath.IsAbs(top) && top != "/" {
			removeEmpty(top)
		}
	}
	_ = os.Remove(list)
}

// removeEmpty removes path if it is an empty file or a tree of empty folders.
func removeEmpty(path string) {
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	if fi.IsDir() {
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			removeEmpty(filepath.Join(path, e.Name()))
		}
		_ = os.Remove(path) // fails if something is left, which is what we want
		return
	}
	if fi.Mode().IsRegular() && fi.Size() == 0 {
		_ = os.Remove(path)
	}
}

// Host paths that a DirectoryOrCreate or FileOrCreate hostPath volume created are listed
// in this file of the state folder; teardown removes them with their content, so a pod
// that writes to the host (the Flax chart's seccomp profile installer) leaves nothing
// behind on this machine.
const createdHostPathsFile = "created-hostpaths"

// ensureHostPath creates a hostPath volume's path for the *OrCreate types and checks the
// type of an existing path for Directory and File, as the kubelet does.
func ensureHostPath(stateDir string, hp *corev1.HostPathVolumeSource) error {
	t := ptr.Deref(hp.Type, corev1.HostPathUnset)
	fi, err := os.Stat(hp.Path)
	switch {
	case err == nil && (t == corev1.HostPathDirectory || t == corev1.HostPathDirectoryOrCreate) && !fi.IsDir():
		return fmt.Errorf("hostPath %s is not a directory", hp.Path)
	case err == nil && (t == corev1.HostPathFile || t == corev1.HostPathFileOrCreate) && !fi.Mode().IsRegular():
		return fmt.Errorf("hostPath %s is not a file", hp.Path)
	case err == nil:
		return nil
	case !os.IsNotExist(err):
		return err
	case t == corev1.HostPathDirectory || t == corev1.HostPathFile:
		return fmt.Errorf("hostPath %s does not exist", hp.Path)
	case t != corev1.HostPathDirectoryOrCreate && t != corev1.HostPathFileOrCreate:
		return nil // unset: the bind mount of a missing path fails the container
	}
	mountpointMu.Lock()
	defer mountpointMu.Unlock()
	return createRecorded(filepath.Join(stateDir, createdHostPathsFile), hp.Path, t == corev1.HostPathFileOrCreate)
}

// removeCreatedHostPaths removes the recorded host paths with everything in them.
func removeCreatedHostPaths(stateDir string) {
	mountpointMu.Lock()
	defer mountpointMu.Unlock()
	list := filepath.Join(stateDir, createdHostPathsFile)
	b, err := os.ReadFile(list)
	if err != nil {
		return
	}
	for _, top := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// Only paths at least two levels deep: never /, /var or the like.
		if filepath.IsAbs(top) && strings.Count(filepath.Clean(top), "/") >= 2 {
			_ = os.RemoveAll(top)
		}
	}
	_ = os.Remove(list)
}
