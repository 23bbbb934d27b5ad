package images

import (
	"slices"
	"strings"
	"testing"
)

func TestSetKubeadmImages(t *testing.T) {
	tests := []struct {
		name              string
		set               Set
		etcdRepo, etcdTag string
		dnsRepo, dnsTag   string
	}{
		{"offline set", Set{
			Etcd:    Ref{Repository: "secprov.local/etcd", Tag: "v3.7.3"},
			CoreDNS: Ref{Repository: "secprov.local/coredns", Tag: "v1.14.6"},
		}, "secprov.local", "v3.7.3", "secprov.local", "v1.14.6"},
		{"nested repository", Set{
			Etcd:    Ref{Repository: "mirror.example/k8s/etcd", Tag: "3.7.0-0"},
			CoreDNS: Ref{Repository: "mirror.example/k8s/coredns", Tag: "v1.14.6"},
		}, "mirror.example/k8s", "3.7.0-0", "mirror.example/k8s", "v1.14.6"},
		{"kubeadm defaults", Set{}, "", "", "", ""},
		// kubeadm appends the image name itself: a repository whose last
		// element is not it cannot be expressed.
		{"unexpressible names", Set{
			Etcd:    Ref{Repository: "secprov.local/etcd-server", Tag: "v3.7.3"},
			CoreDNS: Ref{Repository: "coredns", Tag: "v1.14.6"},
		}, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, tag := tt.set.KubeadmEtcd()
			if r != tt.etcdRepo || tag != tt.etcdTag {
				t.Errorf("KubeadmEtcd() = %q, %q; want %q, %q", r, tag, tt.etcdRepo, tt.etcdTag)
			}
			r, tag = tt.set.KubeadmDNS()
			if r != tt.dnsRepo || tag != tt.dnsTag {
				t.Errorf("KubeadmDNS() = %q, %q; want %q, %q", r, tag, tt.dnsRepo, tt.dnsTag)
			}
			// What kubeadm will ask for, formed as kubeadm forms it.
			if r, tag := tt.set.KubeadmDNS(); r != "" && r+"/coredns:"+tag != tt.set.CoreDNS.String() {
				t.Errorf("kubeadm would ask for %s/coredns:%s, the set has %s", r, tag, tt.set.CoreDNS)
			}
		})
	}
}

func TestUpstream(t *testing.T) {
	u := Upstream()
	if u.Offline {
		t.Error("Upstream().Offline is true")
	}
	for name, r := range map[string]Ref{"node": u.Node, "agent": u.CiliumAgent, "operator": u.CiliumOperator} {
		if r.Repository == "" || r.Tag == "" {
			t.Errorf("Upstream().%s is incomplete: %+v", name, r)
		}
	}
	if got := u.Node.String(); got != "kindest/node:v1.37.2" {
		t.Errorf("node = %s", got)
	}
}

func TestOwnImages(t *testing.T) {
	up := Upstream().Own()
	for _, want := range []string{"quay.io/cilium/cilium:" + CiliumVersion, "registry.k8s.io/kube-apiserver:" + KubernetesVersion,
		"registry.k8s.io/coredns/coredns", "registry.k8s.io/pause", "docker.io/kindest/local-path-provisioner"} {
		if !slices.Contains(up, want) {
			t.Errorf("upstream Own() lacks %s: %v", want, up)
		}
	}
	off := Set{Offline: true, CiliumAgent: Ref{"secprov.local/cilium", "x"}, CiliumOperator: Ref{"secprov.local/cilium-operator-generic", "x"},
		KubeImageRepository: "secprov.local", Etcd: Ref{"secprov.local/etcd", "e"}, CoreDNS: Ref{"secprov.local/coredns", "c"}, Pause: Ref{"secprov.local/pause", "p"}}
	for _, img := range off.Own() {
		if !strings.HasPrefix(img, "secprov.local/") {
			t.Errorf("offline Own() names %s, outside secprov.local", img)
		}
	}
}
