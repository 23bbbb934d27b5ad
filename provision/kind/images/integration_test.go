//go:build kindimages

package images

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"
)

// TestOfflineNodeBootsUnderKind builds (or reuses) the offline images and
// creates a one-node cluster from them with the kind library, the way the
// kind provider will: no default CNI, no kube-proxy, kubeadm told to use
// the set's images, kubelet allowed on this cgroup-v1 host. The control
// plane must answer /readyz (the node stays NotReady: no CNI), and every
// preloaded image must be in the node's containerd.
//
// go test -tags kindimages -run TestOfflineNodeBootsUnderKind -v -timeout 90m ./provision/kind/images
func TestOfflineNodeBootsUnderKind(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and a kind cluster: not in -short")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()

	start := time.Now()
	set, err := Build(ctx, Options{
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress: ProgressFunc(func(e Event) {
			switch e.Kind {
			case EventDone, EventCached, EventFailed:
				t.Logf("%v %s %s %v", map[EventKind]string{EventDone: "built", EventCached: "cached", EventFailed: "FAILED"}[e.Kind], e.Step, e.Elapsed.Round(100*time.Millisecond), e.Err)
			}
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("images ready in %s: %+v", time.Since(start).Round(time.Second), set)
	got, err := Offline(ctx)
	if err != nil {
		t.Fatalf("Offline after Build: %v", err)
	}
	if got != set {
		t.Fatalf("Offline() = %+v, Build returned %+v", got, set)
	}

	name := fmt.Sprintf("secprov-img-%d", time.Now().Unix()%100000)
	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(kindLogger{t}))
	etcdRepo, etcdTag := set.KubeadmEtcd()
	dnsRepo, dnsTag := set.KubeadmDNS()
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Nodes:    []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole, Image: set.Node.String()}},
		Networking: v1alpha4.Networking{
			DisableDefaultCNI: true,
			KubeProxyMode:     v1alpha4.ProxyMode("none"),
			APIServerAddress:  "127.0.0.1",
		},
		KubeadmConfigPatches: []string{
			fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
imageRepository: %s
etcd:
  local:
    imageRepository: %s
    imageTag: %s
dns:
  imageRepository: %s
  imageTag: %s
`, set.KubeImageRepository, etcdRepo, etcdTag, dnsRepo, dnsTag),
			`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
`,
		},
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	t.Cleanup(func() {
		if err := provider.Delete(name, kubeconfig); err != nil {
			t.Errorf("deleting the cluster: %v", err)
		}
	})
	start = time.Now()
	if err := provider.Create(name,
		cluster.CreateWithV1Alpha4Config(cfg),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	); err != nil {
		dumpNode(t, name+"-control-plane")
		t.Fatalf("kind create: %v", err)
	}
	t.Logf("kind cluster created in %s", time.Since(start).Round(100*time.Millisecond))

	node := name + "-control-plane"
	kubectl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", node, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	var ready string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ready, err = kubectl("get", "--raw", "/readyz")
		if err == nil && ready == "ok" || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if ready != "ok" {
		dumpNode(t, node)
		t.Fatalf("/readyz = %q (%v)", ready, err)
	}
	t.Logf("control plane ready %s after create began", time.Since(start).Round(100*time.Millisecond))

	// The control plane runs our images, not upstream ones.
	images, err := kubectl("get", "pods", "-n", "kube-system", "-o", "jsonpath={range .items[*]}{.spec.containers[*].image}{\"\\n\"}{end}")
	if err != nil {
		t.Fatalf("listing pods: %v: %s", err, images)
	}
	for _, want := range []string{
		set.KubeImageRepository + "/kube-apiserver:" + KubernetesVersion,
		set.KubeImageRepository + "/kube-controller-manager:" + KubernetesVersion,
		set.KubeImageRepository + "/kube-scheduler:" + KubernetesVersion,
		set.Etcd.String(),
	} {
		if !strings.Contains(images, want) {
			t.Errorf("no kube-system pod runs %s; pods run:\n%s", want, images)
		}
	}

	out, err := exec.CommandContext(ctx, "docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images ls: %v: %s", err, out)
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, r := range []Ref{set.CiliumAgent, set.CiliumOperator, set.Etcd, set.CoreDNS, set.Pause} {
		if !have[r.String()] {
			t.Errorf("%s is not preloaded in the node; it has:\n%s", r, out)
		}
	}
}

func dumpNode(t *testing.T, node string) {
	for _, args := range [][]string{
		{"exec", node, "systemctl", "--no-pager", "status", "containerd", "kubelet"},
		{"exec", node, "journalctl", "--no-pager", "-n", "60", "-u", "kubelet"},
		{"exec", node, "ctr", "-n", "k8s.io", "containers", "ls"},
	} {
		out, _ := exec.Command("docker", args...).CombinedOutput()
		t.Logf("docker %s:\n%s", strings.Join(args, " "), out)
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
func (l kindLogger) Warnf(f string, a ...interface{})         { l.t.Logf("kind: "+f, a...) }
func (l kindLogger) Error(m string)                           { l.t.Log("kind: " + m) }
func (l kindLogger) Errorf(f string, a ...interface{})        { l.t.Logf("kind: "+f, a...) }
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

func (i kindInfo) Infof(f string, a ...interface{}) {
	if i.on {
		i.t.Logf("kind: "+f, a...)
	}
}

func (i kindInfo) Enabled() bool { return i.on }
