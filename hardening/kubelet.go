package hardening

// Kubelet is what a provider with nodes tells hardening about them, so
// the kubelet's configuration is rendered here, once, for the provider
// and for the checks that judge a node against it.
type Kubelet struct {
	// ClientCAFile is the cluster CA on the node: the kubelet accepts
	// client certificates it issued (the API server's kubelet client).
	ClientCAFile string
	// ServingCertsApproved: the provider approves the kubelets' serving
	// certificate requests (signer kubernetes.io/kubelet-serving), so the
	// kubelets may ask the cluster CA for serving certificates
	// (serverTLSBootstrap) and the API server can verify them
	// (--kubelet-certificate-authority). Without an approver the kubelets
	// would never get one.
	ServingCertsApproved bool
	// ProtectKernelDefaults: the node's kernel already holds the sysctl
	// values the kubelet needs, so the kubelet may refuse to change them
	// (CIS 4.2.6). Where the node shares the host's kernel settings and
	// they differ, the kubelet would not start with it on.
	ProtectKernelDefaults bool
	// CgroupV1: the node runs on cgroup v1, which this Kubernetes refuses
	// unless told not to (failCgroupV1: false).
	CgroupV1 bool
}

// Kubelet configuration values the checks compare against.
const (
	// KubeletStreamingIdleTimeout closes idle exec/attach/port-forward
	// streams (CIS 4.2.5: not 0).
	KubeletStreamingIdleTimeout = "5m0s"
	// KubeletEventQPS and KubeletEventBurst bound how fast a kubelet
	// records events (CIS 4.2.9: set, and not 0, so events are neither
	// unbounded nor dropped wholesale).
	KubeletEventQPS   = 50
	KubeletEventBurst = 100
	// KubeletPodPidsLimit bounds the processes of one pod, so a fork bomb
	// cannot exhaust the node (CIS 4.2.13 in 1.9).
	KubeletPodPidsLimit = 4096
)

// KubeletConfig renders the hardened fields of a KubeletConfiguration
// (kubelet.config.k8s.io/v1beta1), CIS Kubernetes benchmark section 4.2;
// fields it does not name keep the provider's or the kubelet's defaults.
func KubeletConfig(k Kubelet) map[string]any {
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// 4.2.1–4.2.3: no anonymous requests, every request authorised
		// by the API server, client certificates of the cluster CA.
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": k.ClientCAFile},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		// 4.2.4: no unauthenticated read-only port.
		"readOnlyPort": 0,
		// 4.2.5
		"streamingConnectionIdleTimeout": KubeletStreamingIdleTimeout,
		// 4.2.6
		"protectKernelDefaults": k.ProtectKernelDefaults,
		// 4.2.7
		"makeIPTablesUtilChains": true,
		// 4.2.9
		"eventRecordQPS": KubeletEventQPS,
		"eventBurst":     KubeletEventBurst,
		// 4.2.11: client certificate rotation.
		"rotateCertificates": true,
		// 4.2.13: strong TLS only on the kubelet's own port.
		"tlsMinVersion":   "VersionTLS12",
		"tlsCipherSuites": StrongCipherSuites,
		"podPidsLimit":    KubeletPodPidsLimit,
	}
	if k.ServingCertsApproved {
		// 4.2.10 and 4.2.12: serving certificates from the cluster CA,
		// rotated, instead of a self-signed one nobody can verify.
		cfg["serverTLSBootstrap"] = true
	}
	if k.CgroupV1 {
		cfg["failCgroupV1"] = false
	}
	return cfg
}
