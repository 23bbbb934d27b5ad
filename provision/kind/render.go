package kind

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/kind/images"
)

// HostFacts are what the Docker host decides about the nodes: they share
// its kernel.
type HostFacts struct {
	// CgroupV1: the Docker engine runs containers on cgroup v1.
	CgroupV1 bool `json:"cgroupV1"`
	// KernelDefaults: the host's kernel already holds the sysctl values
	// the kubelet needs, so protectKernelDefaults can be on (the nodes
	// share those sysctls with the host; the kubelet would otherwise set
	// them host-wide, or refuse to start with protection on).
	KernelDefaults bool `json:"kernelDefaults"`
}

// RenderInput is everything the kind configuration is rendered from.
type RenderInput struct {
	Name string
	Spec v1alpha1.Spec // defaulted
	// Dir is the cluster's directory (absolute): the CA, rendered config
	// files, audit log and kubeadm patches are mounted from it.
	Dir    string
	Images images.Set
	// APIServerPort is the host port the API server is published on.
	APIServerPort int
	Host          HostFacts
	// Tweak, if set, changes a component's flags after the kind
	// adjustments (tests build weakened clusters with it).
	Tweak func(component string, flags hardening.Flags) hardening.Flags
	// KMSSocket is the KMS v2 plugin's socket on this machine when the
	// cluster encrypts with vault-kms: the plugin runs here, next to
	// Vault, and its socket's directory is mounted into the control-plane
	// node and the API server's pod at the same path, so the
	// EncryptionConfiguration names one path on both sides.
	KMSSocket string
}

// File is a file the kind cluster needs on the host before create.
type File struct {
	Path string
	Data []byte
}

// Rendered is a cluster's kind configuration.
type Rendered struct {
	// Config is the kind Cluster (kind.x-k8s.io/v1alpha4), YAML.
	Config []byte
	// Files are written (0600, in 0700 directories) before create:
	// kubeadm's static pod patches and the workers' discovery kubeconfig.
	Files []File
	// Nodes are the node names, the control plane first.
	Nodes []string
}

// Kubernetes API versions of what is rendered for kubeadm in the node:
// kind v0.33 writes kubeadm's v1beta4 config for Kubernetes 1.36+.
const (
	kubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"
	kindAPIVersion    = "kind.x-k8s.io/v1alpha4"
)

// nodeIPEnv is set in the API server's static pod to the node's address
// (status.hostIP), which the kubelet expands in $(…) references of the
// command.
const nodeIPEnv = "SECPROV_NODE_IP"

// joinToken is the bootstrap token the workers join with. It is fixed (no
// secret is rendered into a resource input), lives 15 minutes, and the
// cluster resource deletes it as soon as every node has joined, so it
// grants nothing afterwards.
const (
	joinTokenID     = "secprv"
	joinToken       = joinTokenID + ".kindnodejoin0001"
	joinTokenTTL    = "15m0s"
	joinTokenGroups = "system:bootstrappers:kubeadm:default-node-token"
)

// nodePorts are where the components listen inside the control-plane
// node: kubeadm's ports. Only the API server's is published to the host.
var nodePorts = hardening.Ports{APIServer: APIServerNodePort, EtcdClient: 2379, EtcdPeer: 2380, ControllerManager: 10257, Scheduler: 10259}

// ControlPlane is the hardened control plane of a kind cluster, as
// hardening renders it (before the kubeadm adjustments of kubeadmFlags).
func ControlPlane(name string, spec v1alpha1.Spec, dir string) *hardening.ControlPlane {
	return &hardening.ControlPlane{Topology: topology, Name: name, Spec: spec, Ports: nodePorts,
		Files: files(newLayout(dir)), EncryptionProvider: spec.EncryptionAtRest.Provider}
}

// kubeadmFlags are the hardened flags of each component as kubeadm gets
// them: hardening's render, minus what kubeadm owns and sets itself from
// the same facts, with the API server's bind address on the node's own
// address. Everything else is hardening's render, unchanged: it overrides
// kubeadm's default of the same name.
func kubeadmFlags(cp *hardening.ControlPlane, tweak func(string, hardening.Flags) hardening.Flags) map[string]hardening.Flags {
	out := map[string]hardening.Flags{}
	for _, comp := range Components {
		f := cp.Flags(comp)
		if comp == hardening.APIServer {
			// kubeadm owns these: it sets advertise-address from
			// localAPIEndpoint.advertiseAddress (kind fills in the node's
			// address, known only once the container exists) and
			// secure-port from localAPIEndpoint.bindPort (6443, the port
			// kind publishes).
			f = f.Without("advertise-address", "secure-port")
			// A private endpoint binds the node's own address, not
			// loopback: the kubelets of the other nodes, the pods (through
			// the kubernetes Service) and kind's published host port all
			// reach the API server there, over the cluster's own Docker
			// network; from this machine it is published on loopback only.
			// The address is known only inside the node, so it is the
			// kubelet that fills it in (nodeIPEnv). A public endpoint keeps
			// hardening's all-interfaces address.
			if v, ok := f.Get("bind-address"); ok && v == topology.Host {
				f = f.With("bind-address", "$("+nodeIPEnv+")")
			}
		}
		// etcd keeps every flag, name and initial-cluster included:
		// kubeadm would name the member after the node and put its peer
		// URL on the node's address, but hardening keeps the single
		// member's peer and client URLs on loopback, and a member's name,
		// peer URLs and initial cluster must agree. kubeadm only uses them
		// to join or remove further control-plane members, which kind
		// clusters made by secprov never have.
		if tweak != nil {
			f = tweak(comp, f)
		}
		out[comp] = f
	}
	return out
}

// extraArgs renders flags as kubeadm v1beta4 extraArgs.
func extraArgs(f hardening.Flags) []any {
	out := make([]any, 0, len(f))
	for _, fl := range f {
		out = append(out, map[string]any{"name": fl.Name, "value": fl.Value})
	}
	return out
}

// kubeadmImage splits an image whose repository ends in /name into the
// imageRepository and imageTag kubeadm takes (it appends /name itself).
func kubeadmImage(r images.Ref, name string) (repo, tag string, err error) {
	i := strings.LastIndex(r.Repository, "/")
	if i < 0 || r.Repository[i+1:] != name {
		return "", "", fmt.Errorf("image %s: kubeadm needs a repository ending in /%s", r, name)
	}
	return r.Repository[:i], r.Tag, nil
}

// kmsDir is the directory of the KMS plugin's socket, or "" when the
// cluster does not encrypt with vault-kms.
func kmsDir(in RenderInput) string {
	if in.Spec.EncryptionAtRest.Provider != v1alpha1.EncryptionVaultKMS || in.KMSSocket == "" {
		return ""
	}
	return filepath.Dir(in.KMSSocket)
}

// clusterConfiguration is the kubeadm ClusterConfiguration patch: the
// hardened flags of every component, the API server's node address and
// mounts, and the image set's control-plane images.
func clusterConfiguration(in RenderInput, flags map[string]hardening.Flags) (map[string]any, error) {
	l := newLayout(in.Dir)
	volumes := []any{
		// The directory, not its files: config files are replaced by a
		// rename when they change, and a bind mount of a file would keep
		// showing the replaced one.
		map[string]any{"name": "secprov-config", "hostPath": l.ConfigDir(), "mountPath": l.ConfigDir(), "readOnly": true, "pathType": "Directory"},
	}
	if in.Spec.Audit.IsEnabled() {
		volumes = append(volumes, map[string]any{"name": "secprov-audit", "hostPath": l.LogDir(), "mountPath": l.LogDir(), "readOnly": false, "pathType": "DirectoryOrCreate"})
	}
	if kms := kmsDir(in); kms != "" {
		// The directory, not the socket: the plugin makes a new socket
		// each time it starts.
		volumes = append(volumes, map[string]any{"name": "secprov-kms", "hostPath": kms, "mountPath": kms, "readOnly": false, "pathType": "Directory"})
	}
	controllerManager := extraArgs(flags[hardening.ControllerManager])
	// kind turns the controller manager's hostPath provisioner on for its
	// development storage class; it provisions volumes on node paths
	// without any access control, so it stays off.
	controllerManager = append(controllerManager, map[string]any{"name": "enable-hostpath-provisioner", "value": nil})
	cc := map[string]any{
		"apiVersion": kubeadmAPIVersion,
		"kind":       "ClusterConfiguration",
		"etcd":       map[string]any{"local": map[string]any{"dataDir": etcdDataDir, "extraArgs": extraArgs(flags[hardening.Etcd])}},
		"apiServer": map[string]any{
			"extraArgs":    extraArgs(flags[hardening.APIServer]),
			"extraEnvs":    []any{map[string]any{"name": nodeIPEnv, "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "status.hostIP"}}}},
			"extraVolumes": volumes,
		},
		"controllerManager": map[string]any{"extraArgs": controllerManager},
		"scheduler": map[string]any{
			"extraArgs": extraArgs(flags[hardening.Scheduler]),
			// hardening has the scheduler verify client certificates
			// (client-ca-file, requestheader-client-ca-file); kubeadm
			// mounts only its kubeconfig into the scheduler's pod. The two
			// CA certificates, public and never replaced, are mounted
			// file by file.
			"extraVolumes": []any{
				map[string]any{"name": "secprov-ca", "hostPath": nodePath("ca.crt"), "mountPath": nodePath("ca.crt"), "readOnly": true, "pathType": "File"},
				map[string]any{"name": "secprov-front-proxy-ca", "hostPath": nodePath("front-proxy-ca.crt"), "mountPath": nodePath("front-proxy-ca.crt"), "readOnly": true, "pathType": "File"},
			},
		},
	}
	set := in.Images
	if set.KubeImageRepository != "" {
		cc["imageRepository"] = set.KubeImageRepository
	}
	if set.Etcd.Repository != "" {
		repo, tag, err := kubeadmImage(set.Etcd, "etcd")
		if err != nil {
			return nil, err
		}
		local := cc["etcd"].(map[string]any)["local"].(map[string]any)
		local["imageRepository"], local["imageTag"] = repo, tag
	}
	if set.CoreDNS.Repository != "" {
		repo, tag, err := kubeadmImage(set.CoreDNS, "coredns")
		if err != nil {
			return nil, err
		}
		cc["dns"] = map[string]any{"imageRepository": repo, "imageTag": tag}
	}
	return cc, nil
}

// apiServerProbes replaces the API server's HTTP probes (kubeadm's GET
// /livez, /readyz) with TCP probes of its port: with anonymous requests
// refused, as hardening renders, those GETs get 401 and the kubelet would
// restart a healthy API server forever. A TCP probe still sees a dead or
// wedged listener; secprov itself waits for /readyz with credentials.
func apiServerProbes() ([]byte, error) {
	probe := func(initialDelay, period, failures int) map[string]any {
		p := map[string]any{"tcpSocket": map[string]any{"port": APIServerNodePort}, "periodSeconds": period, "timeoutSeconds": 15, "failureThreshold": failures}
		if initialDelay > 0 {
			p["initialDelaySeconds"] = initialDelay
		}
		return p
	}
	ops := []any{
		map[string]any{"op": "replace", "path": "/spec/containers/0/livenessProbe", "value": probe(10, 10, 8)},
		map[string]any{"op": "replace", "path": "/spec/containers/0/readinessProbe", "value": probe(0, 1, 3)},
		map[string]any{"op": "replace", "path": "/spec/containers/0/startupProbe", "value": probe(10, 10, 24)},
	}
	data, err := json.MarshalIndent(ops, "", "  ")
	return append(data, '\n'), err
}

// discoveryKubeconfig is what the workers join with: the control plane's
// address on the cluster network, the cluster CA (mounted at the same
// path), and the join token. kubeadm's default, token discovery, reads
// the cluster-info ConfigMap anonymously, which the hardened API server
// refuses; an authenticated file discovery does not need it.
func discoveryKubeconfig(name, caFile string) ([]byte, error) {
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "join",
		"clusters": []any{map[string]any{"name": name, "cluster": map[string]any{
			"server":                fmt.Sprintf("https://%s:%d", ControlPlaneNode(name), APIServerNodePort),
			"certificate-authority": caFile,
		}}},
		"contexts": []any{map[string]any{"name": "join", "context": map[string]any{"cluster": name, "user": "join"}}},
		"users":    []any{map[string]any{"name": "join", "user": map[string]any{"token": joinToken}}},
	}
	return yaml.Marshal(cfg)
}

func yamlDoc(v any) (string, error) {
	data, err := yaml.Marshal(v)
	return string(data), err
}

// Render renders the kind configuration of a cluster. It is a pure
// function of its input.
func Render(in RenderInput) (*Rendered, error) {
	var errs []error
	if in.Images.Node.Repository == "" {
		errs = append(errs, errors.New("no node image: the image set names none"))
	}
	if in.APIServerPort <= 0 || in.APIServerPort > 65535 {
		errs = append(errs, fmt.Errorf("API server host port %d is not a port", in.APIServerPort))
	}
	if in.Spec.Provider.Kind == nil || in.Spec.Provider.Kind.Workers == nil {
		errs = append(errs, errors.New("spec.provider.kind.workers is not defaulted"))
	}
	if in.Spec.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS && in.KMSSocket == "" {
		errs = append(errs, errors.New("vault-kms needs the KMS plugin's socket, and none is given"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cluster %s: %w", in.Name, errors.Join(errs...))
	}
	l := newLayout(in.Dir)
	workers := *in.Spec.Provider.Kind.Workers
	flags := kubeadmFlags(ControlPlane(in.Name, in.Spec, in.Dir), in.Tweak)
	cc, err := clusterConfiguration(in, flags)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", in.Name, err)
	}
	initCfg := map[string]any{
		"apiVersion": kubeadmAPIVersion,
		"kind":       "InitConfiguration",
		"patches":    map[string]any{"directory": l.PatchesDir()},
		"bootstrapTokens": []any{map[string]any{"token": joinToken, "ttl": joinTokenTTL,
			"usages": []any{"authentication", "signing"}, "groups": []any{joinTokenGroups}}},
	}
	kubelet := hardening.KubeletConfig(hardening.Kubelet{ClientCAFile: nodePath("ca.crt"), ServingCertsApproved: true,
		ProtectKernelDefaults: in.Host.KernelDefaults, CgroupV1: in.Host.CgroupV1})
	join := map[string]any{
		"apiVersion": kubeadmAPIVersion,
		"kind":       "JoinConfiguration",
		"discovery": map[string]any{
			"bootstrapToken":    nil, // kind's token discovery, replaced
			"file":              map[string]any{"kubeConfigPath": l.DiscoveryKubeconfig()},
			"tlsBootstrapToken": joinToken,
		},
	}
	var patches []string
	for _, doc := range []any{cc, initCfg, kubelet} {
		s, err := yamlDoc(doc)
		if err != nil {
			return nil, err
		}
		patches = append(patches, s)
	}
	joinPatch, err := yamlDoc(join)
	if err != nil {
		return nil, err
	}

	endpoint := host
	if in.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic {
		endpoint = "0.0.0.0" // the blueprint's exception allows it; kind publishes there
	}
	image := in.Images.Node.String()
	cp := v1alpha4.Node{
		Role:  v1alpha4.ControlPlaneRole,
		Image: image,
		ExtraMounts: []v1alpha4.Mount{
			// The CA secprov made: kubeadm signs the cluster's
			// certificates with it instead of making its own, so the
			// workers can be given its certificate before they join.
			{HostPath: l.CACert(), ContainerPath: nodePath("ca.crt"), Readonly: true},
			{HostPath: l.CAKey(), ContainerPath: nodePath("ca.key"), Readonly: true},
			{HostPath: l.ConfigDir(), ContainerPath: l.ConfigDir(), Readonly: true},
			{HostPath: l.LogDir(), ContainerPath: l.LogDir()},
			{HostPath: l.PatchesDir(), ContainerPath: l.PatchesDir(), Readonly: true},
		},
	}
	if kms := kmsDir(in); kms != "" {
		cp.ExtraMounts = append(cp.ExtraMounts, v1alpha4.Mount{HostPath: kms, ContainerPath: kms})
	}
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: kindAPIVersion},
		Name:     in.Name,
		Nodes:    []v1alpha4.Node{cp},
		Networking: v1alpha4.Networking{
			IPFamily:         v1alpha4.IPv4Family,
			APIServerAddress: endpoint,
			APIServerPort:    int32(in.APIServerPort),
			PodSubnet:        in.Spec.Network.PodCIDR,
			ServiceSubnet:    in.Spec.Network.ServiceCIDR,
			// Cilium is the CNI and replaces kube-proxy.
			DisableDefaultCNI: true,
			KubeProxyMode:     "none",
		},
		KubeadmConfigPatches: patches,
	}
	for range workers {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{
			Role:  v1alpha4.WorkerRole,
			Image: image,
			ExtraMounts: []v1alpha4.Mount{
				// Public: the CA certificate and the join token (which
				// dies once the nodes have joined).
				{HostPath: l.CACert(), ContainerPath: l.CACert(), Readonly: true},
				{HostPath: l.DiscoveryKubeconfig(), ContainerPath: l.DiscoveryKubeconfig(), Readonly: true},
			},
			KubeadmConfigPatches: []string{joinPatch},
		})
	}
	config, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	probes, err := apiServerProbes()
	if err != nil {
		return nil, err
	}
	discovery, err := discoveryKubeconfig(in.Name, l.CACert())
	if err != nil {
		return nil, err
	}
	return &Rendered{
		Config: config,
		Files: []File{
			// kubeadm's patch file names: target, suffix (order), patch type.
			{Path: l.PatchesDir() + "/kube-apiserver0+json.json", Data: probes},
			{Path: l.DiscoveryKubeconfig(), Data: discovery},
		},
		Nodes: NodeNames(in.Name, workers),
	}, nil
}
