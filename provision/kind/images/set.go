// Package images names and builds the container images a kind cluster runs:
// the pinned upstream set (kind's node image, Cilium's images from quay.io)
// or the offline set that `secprov images build` produces from pinned
// sources only (Debian packages, the Go module proxy), for air-gapped sites.
package images

// Ref is an image repository and tag.
type Ref struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

// String is repository:tag ("" for the zero Ref).
func (r Ref) String() string {
	if r.Repository == "" {
		return ""
	}
	return r.Repository + ":" + r.Tag
}

// Set is the images one kind cluster runs.
type Set struct {
	// Offline is true for the set secprov built from pinned sources.
	Offline bool `json:"offline"`
	// Node is the kind node image.
	Node Ref `json:"node"`
	// CiliumAgent and CiliumOperator are the Cilium images the chart runs;
	// in the offline set they are preloaded into Node.
	CiliumAgent    Ref `json:"ciliumAgent"`
	CiliumOperator Ref `json:"ciliumOperator"`
	// KubeImageRepository is kubeadm's imageRepository for the control-plane
	// images preloaded into Node ("" keeps kubeadm's default); Etcd and
	// CoreDNS override kubeadm's etcd and DNS images (zero keeps its
	// default). The offline node image carries exactly these.
	KubeImageRepository string `json:"kubeImageRepository,omitempty"`
	Etcd                Ref    `json:"etcd,omitzero"`
	CoreDNS             Ref    `json:"coreDNS,omitzero"`
	// Pause is the sandbox image containerd in Node is configured with.
	Pause Ref `json:"pause,omitzero"`
	// Probe is the network probe image verify runs its test traffic with
	// (only the offline set has one). It is not preloaded: verify loads
	// it into the nodes when it first needs it.
	Probe Ref `json:"probe,omitzero"`
}

// KubeadmEtcd returns the imageRepository and imageTag to put in kubeadm's
// etcd.local so that kubeadm asks for exactly Etcd: kubeadm forms
// REPOSITORY/etcd:TAG, so the repository is Etcd's without its last
// element. Both are "" when Etcd is zero (keep kubeadm's default).
func (s Set) KubeadmEtcd() (repository, tag string) {
	return kubeadmParent(s.Etcd, "etcd")
}

// KubeadmDNS returns the imageRepository and imageTag to put in kubeadm's
// dns section so that kubeadm asks for exactly CoreDNS. kubeadm forms
// REPOSITORY/coredns:TAG for any repository other than its default one
// (to which alone it adds a second "/coredns"), so the repository is
// CoreDNS's without its last element. Both are "" when CoreDNS is zero.
func (s Set) KubeadmDNS() (repository, tag string) {
	return kubeadmParent(s.CoreDNS, "coredns")
}

func kubeadmParent(r Ref, name string) (string, string) {
	parent, last := splitLast(r.Repository)
	if parent == "" || last != name {
		return "", ""
	}
	return parent, r.Tag
}

func splitLast(repo string) (string, string) {
	for i := len(repo) - 1; i >= 0; i-- {
		if repo[i] == '/' {
			return repo[:i], repo[i+1:]
		}
	}
	return "", repo
}

// Pinned upstream versions.
const (
	KubernetesVersion = "v1.37.2"
	CiliumVersion     = "v1.20.2"
	EtcdVersion       = "v3.7.3"
)

// Upstream is the pinned upstream image set users get by default, by tag:
// neither kind v0.33.0 (whose default node image is v1.37.0) nor Cilium's
// v1.20.2 chart (its digest fields are empty) records the digests of these
// images. kubeadm's own defaults pick the control-plane, etcd, CoreDNS and
// pause images, which the upstream node image carries.
func Upstream() Set {
	return Set{
		Node:           Ref{Repository: "kindest/node", Tag: KubernetesVersion},
		CiliumAgent:    Ref{Repository: "quay.io/cilium/cilium", Tag: CiliumVersion},
		CiliumOperator: Ref{Repository: "quay.io/cilium/operator-generic", Tag: CiliumVersion},
	}
}

// kubeadmDefaultRepository is where kubeadm takes the control-plane, etcd,
// CoreDNS and pause images from unless told otherwise.
const kubeadmDefaultRepository = "registry.k8s.io"

// Own lists the images the set runs as pods in a cluster (Cilium, the
// control plane, etcd, CoreDNS, pause), repository:tag, for the image
// guardrail to allow. The node image runs as a container, not a pod.
func (s Set) Own() []string {
	repo := s.KubeImageRepository
	if repo == "" {
		repo = kubeadmDefaultRepository
	}
	out := []string{s.CiliumAgent.String(), s.CiliumOperator.String()}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		out = append(out, repo+"/"+c+":"+KubernetesVersion)
	}
	for _, r := range []struct {
		ref  Ref
		dflt string
	}{{s.Etcd, "etcd"}, {s.CoreDNS, "coredns/coredns"}, {s.Pause, "pause"}} {
		if r.ref.Repository != "" {
			out = append(out, r.ref.String())
		} else {
			out = append(out, kubeadmDefaultRepository+"/"+r.dflt)
		}
	}
	if s.Probe.Repository != "" {
		out = append(out, s.Probe.String())
	}
	if !s.Offline {
		// The upstream node image deploys kind's local-path provisioner
		// for its default StorageClass; the offline one does not.
		out = append(out, "docker.io/kindest/local-path-provisioner", "docker.io/kindest/local-path-helper")
	}
	return out
}
