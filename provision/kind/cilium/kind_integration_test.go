//go:build kind

package cilium

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"secprov.dev/secprov/provision/kind/images"
)

// TestInstallOnKind installs Cilium into a real two-node kind cluster made
// from the offline images (`secprov images build`), the way the kind
// provider will: first with an agent image the nodes do not have, which
// must fail naming the pod and ErrImageNeverPull; then with the right set,
// which upgrades the failed release and gets every node Ready; then again,
// which must change nothing; then Uninstall. It skips when Docker or the
// offline images are missing.
//
// go test -tags kind -run TestInstallOnKind -v -timeout 30m ./provision/kind/cilium
func TestInstallOnKind(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a kind cluster: not in -short")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	set, err := images.Offline(ctx)
	if err != nil {
		t.Skipf("no offline images (%v): run secprov images build first", err)
	}
	chartDir, err := chartDirOnce()
	if err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("secprov-cil-%d", os.Getpid()%100000)
	_, spec := kindSpec(t, "test.yaml", 1)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	createCluster(t, name, set, spec.Network.PodCIDR, spec.Network.ServiceCIDR, kubeconfig)
	node := name + "-control-plane"

	bounding, err := capBnd(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	in := Inputs{
		Spec:             spec,
		ClusterName:      name,
		APIServerHost:    node,
		APIServerPort:    6443,
		Images:           set,
		DropCapabilities: UngrantableCapabilities(bounding),
	}
	t.Logf("node capability bounding set %#x: dropping %v", bounding, in.DropCapabilities)
	opts := InstallOptions{Kubeconfig: kubeconfig, ChartDir: chartDir, Progress: testWriter{t}}

	// An agent image the nodes do not have: a clear error, quickly.
	bad := opts
	bad.Inputs = in
	bad.Inputs.Images.CiliumAgent.Tag += "-absent"
	bad.Timeout = 90 * time.Second
	err = Install(ctx, bad)
	var nr *NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("install with an absent image: want a *NotReadyError, got %v", err)
	}
	t.Logf("install with an absent image failed as expected:\n%v", err)
	if nr.Reason != "ErrImageNeverPull" || !strings.HasPrefix(nr.Pod, Namespace+"/cilium-") || !strings.Contains(nr.Next, "secprov images build") {
		t.Errorf("the error does not name the agent pod, ErrImageNeverPull and the fix: %+v", nr)
	}

	// The right images: the failed release is upgraded and the cluster
	// gets ready.
	opts.Inputs = in
	opts.Timeout = 10 * time.Minute
	start := time.Now()
	if err := Install(ctx, opts); err != nil {
		dumpCilium(t, node)
		t.Fatal(err)
	}
	t.Logf("install (upgrade of the failed release) and ready: %s", time.Since(start).Round(100*time.Millisecond))

	var out strings.Builder
	start = time.Now()
	again := opts
	again.Progress = &out
	if err := Install(ctx, again); err != nil {
		t.Fatal(err)
	}
	t.Logf("second install: %s\n%s", time.Since(start).Round(100*time.Millisecond), out.String())
	if !strings.Contains(out.String(), "is up to date") {
		t.Errorf("a second install with the same inputs did not leave the release alone:\n%s", out.String())
	}

	// What runs is what was rendered.
	cs := clientset(t, kubeconfig)
	pods, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=cilium"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Errorf("%d agent pods, want one per node (2)", len(pods.Items))
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if c.Image != set.CiliumAgent.String() {
				t.Errorf("pod %s container %s runs %s, want %s", p.Name, c.Name, c.Image, set.CiliumAgent)
			}
		}
	}
	// Cluster health is cilium-health probing every node through the
	// VXLAN tunnel: both reachable means pod traffic crosses nodes. Its
	// first probe round follows the agent's readiness by a little.
	var status string
	healthStart := time.Now()
	for {
		status, err = kubectl(ctx, node, "-n", Namespace, "exec", "ds/"+AgentDaemonSet, "-c", agentContainer, "--", "cilium-dbg", "status")
		if err == nil && strings.Contains(status, "2/2 reachable") || time.Since(healthStart) > 3*time.Minute {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("cilium-dbg status: %v\n%s", err, status)
	}
	t.Logf("cilium-dbg status (%s after ready):\n%s", time.Since(healthStart).Round(time.Second), status)
	for _, want := range []string{"KubeProxyReplacement:    True", "Cluster health:          2/2 reachable", "Hubble:                  Ok", "Routing:                 Network: Tunnel [vxlan]"} {
		if !strings.Contains(status, want) {
			t.Errorf("cilium-dbg status does not say %q", want)
		}
	}

	if err := Uninstall(ctx, UninstallOptions{Kubeconfig: kubeconfig, Progress: testWriter{t}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().DaemonSets(Namespace).Get(ctx, AgentDaemonSet, metav1.GetOptions{}); err == nil {
		t.Error("the agent DaemonSet is still there after Uninstall")
	}
	out.Reset()
	if err := Uninstall(ctx, UninstallOptions{Kubeconfig: kubeconfig, Progress: &out}); err != nil || !strings.Contains(out.String(), "not installed") {
		t.Errorf("a second Uninstall: %v, %q", err, out.String())
	}
}

// createCluster makes a kind cluster of one control-plane and one worker
// from the offline set, with no CNI and no kube-proxy, as the kind
// provider does (without its hardening, which Cilium does not depend on).
func createCluster(t *testing.T, name string, set images.Set, podCIDR, svcCIDR, kubeconfig string) {
	t.Helper()
	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(kindLogger{t}))
	etcdRepo, etcdTag := set.KubeadmEtcd()
	dnsRepo, dnsTag := set.KubeadmDNS()
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Nodes: []v1alpha4.Node{
			{Role: v1alpha4.ControlPlaneRole, Image: set.Node.String()},
			{Role: v1alpha4.WorkerRole, Image: set.Node.String()},
		},
		Networking: v1alpha4.Networking{
			DisableDefaultCNI: true,
			KubeProxyMode:     v1alpha4.ProxyMode("none"),
			APIServerAddress:  "127.0.0.1",
			PodSubnet:         podCIDR,
			ServiceSubnet:     svcCIDR,
		},
		KubeadmConfigPatches: []string{
			fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: %s\netcd:\n  local:\n    imageRepository: %s\n    imageTag: %s\ndns:\n  imageRepository: %s\n  imageTag: %s\n",
				set.KubeImageRepository, etcdRepo, etcdTag, dnsRepo, dnsTag),
			// These hosts run cgroup v1.
			"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\n",
		},
	}
	t.Cleanup(func() {
		if err := provider.Delete(name, kubeconfig); err != nil {
			t.Errorf("deleting kind cluster %s: %v", name, err)
		}
	})
	start := time.Now()
	if err := provider.Create(name,
		cluster.CreateWithV1Alpha4Config(cfg),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	); err != nil {
		t.Fatalf("kind create: %v", err)
	}
	t.Logf("kind cluster %s created in %s", name, time.Since(start).Round(100*time.Millisecond))
}

// capBnd reads the capability bounding set of the node's PID 1.
func capBnd(ctx context.Context, node string) (uint64, error) {
	out, err := exec.CommandContext(ctx, "docker", "exec", node, "cat", "/proc/1/status").Output()
	if err != nil {
		return 0, fmt.Errorf("reading the node's /proc/1/status: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapBnd line in the node's /proc/1/status")
}

func kubectl(ctx context.Context, node string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", node, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}, args...)...).CombinedOutput()
	return string(out), err
}

func clientset(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func dumpCilium(t *testing.T, node string) {
	for _, args := range [][]string{
		{"-n", Namespace, "get", "pods", "-o", "wide"},
		{"-n", Namespace, "logs", "ds/" + AgentDaemonSet, "-c", agentContainer, "--tail=60"},
		{"-n", Namespace, "logs", "deploy/" + OperatorDeployment, "--tail=30"},
	} {
		out, _ := kubectl(context.Background(), node, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// kindLogger sends kind's status lines to the test log.
type kindLogger struct{ t *testing.T }

func (l kindLogger) Warn(m string)                            { l.t.Log("kind: " + m) }
func (l kindLogger) Warnf(f string, a ...any)                 { l.t.Logf("kind: "+f, a...) }
func (l kindLogger) Error(m string)                           { l.t.Log("kind: " + m) }
func (l kindLogger) Errorf(f string, a ...any)                { l.t.Logf("kind: "+f, a...) }
func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger { return kindInfo{l.t, level <= 0} }

type kindInfo struct {
	t  *testing.T
	on bool
}

func (i kindInfo) Info(m string) {
	if i.on {
		i.t.Log("kind: " + m)
	}
}

func (i kindInfo) Infof(f string, a ...any) {
	if i.on {
		i.t.Logf("kind: "+f, a...)
	}
}

func (i kindInfo) Enabled() bool { return i.on }
