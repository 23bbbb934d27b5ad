//go:build kind

package provision_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/kind/cilium"
	"secprov.dev/secprov/provision/kind/images"
	"secprov.dev/secprov/provision/providers"
)

// The kind benchmarks need a Docker engine and the offline images
// (`secprov images build`); .ci/bench runs them with -tags kind.

func kindExamples(b *testing.B, names ...string) []*blueprints.Blueprint {
	b.Helper()
	if _, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		b.Skip("no Docker engine")
	}
	var files []string
	for _, n := range names {
		files = append(files, filepath.Join("..", "blueprints", "examples", "kind", n))
	}
	bps, err := blueprints.Load(files...)
	if err != nil {
		b.Fatal(err)
	}
	off := false
	for _, bp := range bps {
		bp.Spec.Provider.Kind.Images = v1alpha1.KindImagesOffline
		bp.Spec.Vault.Enabled = &off
	}
	return bps
}

func offlineSet(b *testing.B) images.Set {
	b.Helper()
	set, err := images.Offline(context.Background())
	if err != nil {
		b.Skipf("no offline images: %v", err)
	}
	return set
}

// kindUp brings bps up on kind in a fresh state directory and returns how
// long up took, then runs after (untimed) and takes the clusters down.
func kindUp(b *testing.B, bps []*blueprints.Blueprint, after func(p *provision.Provisioner)) time.Duration {
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry()})
	names := make([]string, len(bps))
	for i, bp := range bps {
		names[i] = bp.Name()
	}
	defer p.Down(context.Background(), names, nil)
	start := time.Now()
	for _, r := range p.Up(ctx, bps, nil) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	d := time.Since(start)
	if after != nil {
		after(p)
	}
	return d
}

// plainKind is the baseline: the kind library's create of a cluster with
// the same node image and node count and no hardening (kind's defaults,
// its CNI and kube-proxy left out for Cilium), then the same Cilium
// install, timed to the same point: agents, operator and nodes ready.
func plainKind(b *testing.B, set images.Set, spec v1alpha1.Spec, workers int) time.Duration {
	ctx := context.Background()
	name := fmt.Sprintf("plain-%d", time.Now().UnixNano()%100000)
	etcdRepo, etcdTag := set.KubeadmEtcd()
	dnsRepo, dnsTag := set.KubeadmDNS()
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Nodes:    []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole, Image: set.Node.String()}},
		Networking: v1alpha4.Networking{DisableDefaultCNI: true, KubeProxyMode: v1alpha4.ProxyMode("none"),
			PodSubnet: spec.Network.PodCIDR, ServiceSubnet: spec.Network.ServiceCIDR},
		// Not hardening: what any cluster from this node image needs on
		// this host (offline image names; the host runs cgroup v1).
		KubeadmConfigPatches: []string{"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\n"},
	}
	for range workers {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: set.Node.String()})
	}
	if set.KubeImageRepository != "" {
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches, fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: %s\netcd:\n  local:\n    imageRepository: %s\n    imageTag: %s\ndns:\n  imageRepository: %s\n  imageTag: %s\n",
			set.KubeImageRepository, etcdRepo, etcdTag, dnsRepo, dnsTag))
	}
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	kubeconfig := filepath.Join(b.TempDir(), "kubeconfig")
	defer kp.Delete(name, kubeconfig)
	start := time.Now()
	if err := kp.Create(name, kindcluster.CreateWithV1Alpha4Config(cfg), kindcluster.CreateWithKubeconfigPath(kubeconfig),
		kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false)); err != nil {
		b.Fatalf("plain kind create: %v", err)
	}
	drop := ungrantable(b, name+"-control-plane")
	if err := cilium.Install(ctx, cilium.InstallOptions{Kubeconfig: kubeconfig, Inputs: cilium.Inputs{
		Spec: spec, ClusterName: name, APIServerHost: name + "-control-plane", APIServerPort: 6443, Images: set, DropCapabilities: drop,
	}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		b.Fatalf("plain kind: cilium: %v", err)
	}
	return time.Since(start)
}

func ungrantable(b *testing.B, node string) []string {
	out, err := exec.Command("docker", "exec", node, "grep", "^CapBnd:", "/proc/1/status").Output()
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(out))
	v, err := strconv.ParseUint(f[len(f)-1], 16, 64)
	if err != nil {
		b.Fatal(err)
	}
	return cilium.UngrantableCapabilities(v)
}

// BenchmarkKindUpVsPlain alternates plain kind (+ Cilium) and secprov up
// of the same one-worker cluster in every iteration and reports the ratio.
func BenchmarkKindUpVsPlain(b *testing.B) {
	bps := kindExamples(b, "test.yaml")
	set := offlineSet(b)
	workers := *bps[0].Spec.Provider.Kind.Workers // loaded blueprints are defaulted
	var up, plain time.Duration
	n := 0
	for b.Loop() {
		plain += plainKind(b, set, bps[0].Spec, workers)
		up += kindUp(b, bps, nil)
		n++
	}
	b.ReportMetric(up.Seconds()/float64(n), "up-s/op")
	b.ReportMetric(plain.Seconds()/float64(n), "plain-s/op")
	b.ReportMetric(up.Seconds()/plain.Seconds(), "up/plain")
}

// BenchmarkKindProdTest alternates up of prod and test together and of
// test alone, reports the ratio, the memory the four node containers use
// together (docker stats) and the time of a second, no-op up of both.
func BenchmarkKindProdTest(b *testing.B) {
	both, one := kindExamples(b, "prod.yaml", "test.yaml"), kindExamples(b, "test.yaml")
	offlineSet(b)
	var tBoth, tOne, noop time.Duration
	var rss float64
	n := 0
	for b.Loop() {
		tOne += kindUp(b, one, nil)
		tBoth += kindUp(b, both, func(p *provision.Provisioner) {
			rss += nodeMemory(b, both)
			start := time.Now()
			for _, r := range p.Up(context.Background(), both, nil) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			noop += time.Since(start)
		})
		n++
	}
	b.ReportMetric(tBoth.Seconds()/float64(n), "both-s/op")
	b.ReportMetric(tOne.Seconds()/float64(n), "one-s/op")
	b.ReportMetric(tBoth.Seconds()/tOne.Seconds(), "both/one")
	b.ReportMetric(rss/float64(n), "GiB-nodes")
	b.ReportMetric(noop.Seconds()/float64(n), "noop-s/op")
}

// nodeMemory sums the memory use docker stats reports for every node
// container of bps's clusters, in GiB.
func nodeMemory(b *testing.B, bps []*blueprints.Blueprint) float64 {
	total := 0.0
	for _, bp := range bps {
		out, err := exec.Command("docker", "ps", "-q", "--filter", "label=io.x-k8s.kind.cluster="+bp.Name()).Output()
		if err != nil {
			b.Fatal(err)
		}
		ids := strings.Fields(string(out))
		stats, err := exec.Command("docker", append([]string{"stats", "--no-stream", "--format", "{{.MemUsage}}"}, ids...)...).Output()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(stats)), "\n") {
			used := strings.TrimSpace(strings.Split(line, "/")[0])
			total += parseMem(used)
		}
	}
	return total
}

func parseMem(s string) float64 {
	units := []struct {
		suffix string
		gib    float64
	}{{"GiB", 1}, {"MiB", 1.0 / 1024}, {"KiB", 1.0 / (1024 * 1024)}, {"B", 1.0 / (1024 * 1024 * 1024)}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil {
				return 0
			}
			return v * u.gib
		}
	}
	return 0
}
