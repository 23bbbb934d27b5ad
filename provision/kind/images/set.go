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
}
