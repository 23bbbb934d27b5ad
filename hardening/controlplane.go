// Package hardening renders each hardening control — control-plane flags,
// EncryptionConfiguration, audit policy, Pod Security admission, RBAC,
// network policy — from a blueprint. Each rendered piece carries the stable
// control ID (SP-…) that review rules and verify checks share, so a check
// can tell exactly which control a missing flag belongs to.
package hardening

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Flag is one command-line flag and the controls it implements (empty for
// plumbing flags such as ports).
type Flag struct {
	Name     string // without leading dashes
	Value    string // rendered as --name=value
	Controls []blueprints.ControlID
}

// Flags is an ordered flag list.
type Flags []Flag

// Args renders the flags as process arguments.
func (fs Flags) Args() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = "--" + f.Name + "=" + f.Value
	}
	return out
}

// Get returns the value of a flag.
func (fs Flags) Get(name string) (string, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Without returns the flags minus the named ones. Tests use it to build a
// control plane with one control removed.
func (fs Flags) Without(names ...string) Flags {
	return slices.DeleteFunc(slices.Clone(fs), func(f Flag) bool { return slices.Contains(names, f.Name) })
}

// With returns the flags with name set to value (replaced or appended).
func (fs Flags) With(name, value string) Flags {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].Name == name {
			out[i].Value = value
			return out
		}
	}
	return append(out, Flag{Name: name, Value: value})
}

// ForControl returns the flags that implement a control.
func (fs Flags) ForControl(id blueprints.ControlID) Flags {
	var out Flags
	for _, f := range fs {
		if slices.Contains(f.Controls, id) {
			out = append(out, f)
		}
	}
	return out
}

// Files are the absolute paths of everything the control plane reads.
// The provider fills them in from its PKI and config layout.
type Files struct {
	CACert, CAKey                 string // cluster CA
	EtcdCACert                    string // dedicated etcd CA
	EtcdServerCert, EtcdServerKey string
	EtcdPeerCert, EtcdPeerKey     string
	// etcd's own client identity for its gRPC gateway loopback; keeps the
	// server certificate server-only.
	EtcdSelfClientCert, EtcdSelfClientKey string
	APIServerEtcdCert, APIServerEtcdKey   string // apiserver → etcd client
	APIServerCert, APIServerKey           string
	KubeletClientCert, KubeletClientKey   string
	FrontProxyCACert                      string
	FrontProxyClientCert                  string
	FrontProxyClientKey                   string
	ServiceAccountKey, ServiceAccountPub  string

	ControllerManagerKubeconfig string
	SchedulerKubeconfig         string

	EncryptionConfig string
	AuditPolicy      string
	AuditLog         string
	AdmissionConfig  string
	EtcdDataDir      string
}

// Ports the control plane listens on.
type Ports struct {
	APIServer         int `json:"apiServer"`
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

// Topology is what a provider tells hardening about where the control
// plane runs. hardening never looks the provider up: the local provider
// and the kind provider render the same flags onto different hosts.
type Topology struct {
	// Host is the address every component binds to (the API server too,
	// when its endpoint is private) and reaches the others on.
	Host string `json:"host"`
	// AdvertiseAddress is the address the API server publishes for
	// itself (the kubernetes Service's endpoint).
	AdvertiseAddress string `json:"advertiseAddress"`
	// NoEndpointReconciler turns endpoint reconciliation off: a single
	// API server on a loopback advertise address needs it off, or it
	// refuses to start.
	NoEndpointReconciler bool `json:"noEndpointReconciler,omitempty"`
	// AllowPrivileged lets the API server admit privileged pods: only
	// where nodes run system pods that need it (the CNI agent). Pod
	// Security still keeps them out of workload namespaces.
	AllowPrivileged bool `json:"allowPrivileged,omitempty"`
}

// Control-plane component names: the one definition verify, the
// providers and status use.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// Components lists the control-plane components in start order.
func Components() []string { return []string{Etcd, APIServer, ControllerManager, Scheduler} }

// Flags renders the flags of one component (one of Components).
func (cp *ControlPlane) Flags(component string) Flags {
	switch component {
	case Etcd:
		return cp.EtcdFlags()
	case APIServer:
		return cp.APIServerFlags()
	case ControllerManager:
		return cp.ControllerManagerFlags()
	case Scheduler:
		return cp.SchedulerFlags()
	}
	return nil
}

// ControlPlane is everything needed to render a cluster's control plane.
type ControlPlane struct {
	Name     string
	Spec     v1alpha1.Spec // defaulted
	Files    Files
	Ports    Ports
	Topology Topology
	// EncryptionProvider is the provider actually configured, which differs
	// from Spec.EncryptionAtRest.Provider where a provider cannot offer it
	// yet (vault-kms without Vault falls back to secretbox).
	EncryptionProvider string
}

// BindAddress is where the API server listens: the provider's host for a
// private endpoint, all interfaces for a public one.
func (cp *ControlPlane) BindAddress() string {
	if cp.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic {
		return "0.0.0.0"
	}
	return cp.Topology.Host
}

// StrongCipherSuites are the AEAD suites with forward secrecy, as Go names
// them; kube components and etcd accept these names.
var StrongCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// AdmissionPlugins enabled on the API server (SP-APISRV-003). Not
// AlwaysPullImages: kind clusters here load images without a registry.
var AdmissionPlugins = []string{
	"NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction",
	"PodSecurity", "EventRateLimit", "DenyServiceExternalIPs",
	"DefaultStorageClass", "ResourceQuota",
}

// ServiceAccountIssuer is the issuer of service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// EtcdFlags renders etcd's flags (SP-ETCD-001..003).
func (cp *ControlPlane) EtcdFlags() Flags {
	f := cp.Files
	client := fmt.Sprintf("https://%s:%d", cp.Topology.Host, cp.Ports.EtcdClient)
	peer := fmt.Sprintf("https://%s:%d", cp.Topology.Host, cp.Ports.EtcdPeer)
	return Flags{
		{Name: "name", Value: cp.Name},
		{Name: "data-dir", Value: f.EtcdDataDir, Controls: []blueprints.ControlID{blueprints.FilesPrivate}},
		{Name: "listen-client-urls", Value: client, Controls: []blueprints.ControlID{blueprints.EtcdLoopback}},
		{Name: "advertise-client-urls", Value: client},
		{Name: "listen-peer-urls", Value: peer, Controls: []blueprints.ControlID{blueprints.EtcdLoopback}},
		{Name: "initial-advertise-peer-urls", Value: peer},
		{Name: "initial-cluster", Value: cp.Name + "=" + peer},
		{Name: "initial-cluster-token", Value: cp.Name},
		{Name: "initial-cluster-state", Value: "new"},
		{Name: "cert-file", Value: f.EtcdServerCert, Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "key-file", Value: f.EtcdServerKey, Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "client-cert-auth", Value: "true", Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "trusted-ca-file", Value: f.EtcdCACert, Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "auto-tls", Value: "false", Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "client-cert-file", Value: f.EtcdSelfClientCert},
		{Name: "client-key-file", Value: f.EtcdSelfClientKey},
		{Name: "peer-cert-file", Value: f.EtcdPeerCert, Controls: []blueprints.ControlID{blueprints.EtcdPeerTLS}},
		{Name: "peer-key-file", Value: f.EtcdPeerKey, Controls: []blueprints.ControlID{blueprints.EtcdPeerTLS}},
		{Name: "peer-client-cert-auth", Value: "true", Controls: []blueprints.ControlID{blueprints.EtcdPeerTLS}},
		{Name: "peer-trusted-ca-file", Value: f.EtcdCACert, Controls: []blueprints.ControlID{blueprints.EtcdPeerTLS}},
		{Name: "peer-auto-tls", Value: "false", Controls: []blueprints.ControlID{blueprints.EtcdPeerTLS}},
		{Name: "tls-min-version", Value: "TLS1.2", Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "cipher-suites", Value: strings.Join(StrongCipherSuites, ","), Controls: []blueprints.ControlID{blueprints.EtcdClientTLS}},
		{Name: "log-level", Value: "warn"},
	}
}

// APIServerFlags renders kube-apiserver's flags.
func (cp *ControlPlane) APIServerFlags() Flags {
	f := cp.Files
	s := cp.Spec
	fl := Flags{{Name: "advertise-address", Value: cp.Topology.AdvertiseAddress}}
	if cp.Topology.NoEndpointReconciler {
		fl = append(fl, Flag{Name: "endpoint-reconciler-type", Value: "none"})
	}
	fl = append(fl, Flags{
		{Name: "bind-address", Value: cp.BindAddress(), Controls: []blueprints.ControlID{blueprints.APIEndpointPrivate}},
		{Name: "secure-port", Value: fmt.Sprint(cp.Ports.APIServer)},
		{Name: "anonymous-auth", Value: "false", Controls: []blueprints.ControlID{blueprints.APIServerNoAnonymous}},
		{Name: "authorization-mode", Value: "Node,RBAC", Controls: []blueprints.ControlID{blueprints.APIServerAuthorization}},
		{Name: "enable-admission-plugins", Value: strings.Join(AdmissionPlugins, ","), Controls: []blueprints.ControlID{blueprints.APIServerAdmission}},
		{Name: "admission-control-config-file", Value: f.AdmissionConfig, Controls: []blueprints.ControlID{blueprints.APIServerAdmission, blueprints.PodSecurityRestricted}},
		{Name: "profiling", Value: "false", Controls: []blueprints.ControlID{blueprints.ProfilingOff}},
		{Name: "service-account-lookup", Value: "true", Controls: []blueprints.ControlID{blueprints.APIServerServiceAccountTokens}},
		{Name: "service-account-key-file", Value: f.ServiceAccountPub, Controls: []blueprints.ControlID{blueprints.APIServerServiceAccountTokens}},
		{Name: "service-account-signing-key-file", Value: f.ServiceAccountKey, Controls: []blueprints.ControlID{blueprints.APIServerServiceAccountTokens}},
		{Name: "service-account-issuer", Value: ServiceAccountIssuer, Controls: []blueprints.ControlID{blueprints.APIServerServiceAccountTokens}},
		{Name: "tls-cert-file", Value: f.APIServerCert, Controls: []blueprints.ControlID{blueprints.APIServerTLS}},
		{Name: "tls-private-key-file", Value: f.APIServerKey, Controls: []blueprints.ControlID{blueprints.APIServerTLS}},
		{Name: "client-ca-file", Value: f.CACert, Controls: []blueprints.ControlID{blueprints.APIServerTLS}},
		{Name: "tls-min-version", Value: "VersionTLS12", Controls: []blueprints.ControlID{blueprints.APIServerTLS}},
		{Name: "tls-cipher-suites", Value: strings.Join(StrongCipherSuites, ","), Controls: []blueprints.ControlID{blueprints.APIServerTLS}},
		{Name: "etcd-servers", Value: fmt.Sprintf("https://%s:%d", cp.Topology.Host, cp.Ports.EtcdClient), Controls: []blueprints.ControlID{blueprints.APIServerEtcdTLS}},
		{Name: "etcd-cafile", Value: f.EtcdCACert, Controls: []blueprints.ControlID{blueprints.APIServerEtcdTLS}},
		{Name: "etcd-certfile", Value: f.APIServerEtcdCert, Controls: []blueprints.ControlID{blueprints.APIServerEtcdTLS}},
		{Name: "etcd-keyfile", Value: f.APIServerEtcdKey, Controls: []blueprints.ControlID{blueprints.APIServerEtcdTLS}},
		{Name: "kubelet-client-certificate", Value: f.KubeletClientCert, Controls: []blueprints.ControlID{blueprints.APIServerKubeletAndLimits}},
		{Name: "kubelet-client-key", Value: f.KubeletClientKey, Controls: []blueprints.ControlID{blueprints.APIServerKubeletAndLimits}},
		{Name: "kubelet-certificate-authority", Value: f.CACert, Controls: []blueprints.ControlID{blueprints.APIServerKubeletAndLimits}},
		{Name: "request-timeout", Value: "60s", Controls: []blueprints.ControlID{blueprints.APIServerKubeletAndLimits}},
		{Name: "service-cluster-ip-range", Value: s.Network.ServiceCIDR},
		{Name: "requestheader-client-ca-file", Value: f.FrontProxyCACert},
		{Name: "requestheader-allowed-names", Value: "front-proxy-client"},
		{Name: "requestheader-username-headers", Value: "X-Remote-User"},
		{Name: "requestheader-group-headers", Value: "X-Remote-Group"},
		{Name: "requestheader-extra-headers-prefix", Value: "X-Remote-Extra-"},
		{Name: "proxy-client-cert-file", Value: f.FrontProxyClientCert},
		{Name: "proxy-client-key-file", Value: f.FrontProxyClientKey},
		{Name: "allow-privileged", Value: fmt.Sprint(cp.Topology.AllowPrivileged)},
	}...)
	if cp.EncryptionProvider != "" && cp.EncryptionProvider != v1alpha1.EncryptionNone {
		fl = append(fl,
			Flag{Name: "encryption-provider-config", Value: f.EncryptionConfig, Controls: []blueprints.ControlID{blueprints.EncryptionAtRestOn, blueprints.EncryptionCoversSecrets}},
			Flag{Name: "encryption-provider-config-automatic-reload", Value: "true", Controls: []blueprints.ControlID{blueprints.EncryptionAtRestOn}},
		)
	}
	if s.Audit.IsEnabled() {
		fl = append(fl,
			Flag{Name: "audit-policy-file", Value: f.AuditPolicy, Controls: []blueprints.ControlID{blueprints.AuditLogging}},
			Flag{Name: "audit-log-path", Value: f.AuditLog, Controls: []blueprints.ControlID{blueprints.AuditLogging}},
			Flag{Name: "audit-log-maxage", Value: fmt.Sprint(v1alpha1.Int(s.Audit.MaxAgeDays, v1alpha1.DefaultAuditMaxAgeDays)), Controls: []blueprints.ControlID{blueprints.AuditRetention}},
			Flag{Name: "audit-log-maxbackup", Value: fmt.Sprint(v1alpha1.Int(s.Audit.MaxBackups, v1alpha1.DefaultAuditMaxBackups)), Controls: []blueprints.ControlID{blueprints.AuditRetention}},
			Flag{Name: "audit-log-maxsize", Value: fmt.Sprint(v1alpha1.Int(s.Audit.MaxSizeMB, v1alpha1.DefaultAuditMaxSizeMB)), Controls: []blueprints.ControlID{blueprints.AuditRetention}},
		)
	}
	return fl
}

// ControllerManagerFlags renders kube-controller-manager's flags (SP-KCM-001).
func (cp *ControlPlane) ControllerManagerFlags() Flags {
	f := cp.Files
	kcm := []blueprints.ControlID{blueprints.ControllerManagerHardened}
	return Flags{
		{Name: "kubeconfig", Value: f.ControllerManagerKubeconfig},
		{Name: "authentication-kubeconfig", Value: f.ControllerManagerKubeconfig},
		{Name: "authorization-kubeconfig", Value: f.ControllerManagerKubeconfig},
		{Name: "client-ca-file", Value: f.CACert},
		{Name: "requestheader-client-ca-file", Value: f.FrontProxyCACert},
		{Name: "bind-address", Value: cp.Topology.Host, Controls: kcm},
		{Name: "secure-port", Value: fmt.Sprint(cp.Ports.ControllerManager)},
		{Name: "profiling", Value: "false", Controls: []blueprints.ControlID{blueprints.ProfilingOff, blueprints.ControllerManagerHardened}},
		{Name: "use-service-account-credentials", Value: "true", Controls: kcm},
		{Name: "service-account-private-key-file", Value: f.ServiceAccountKey, Controls: kcm},
		{Name: "root-ca-file", Value: f.CACert, Controls: kcm},
		{Name: "cluster-signing-cert-file", Value: f.CACert},
		{Name: "cluster-signing-key-file", Value: f.CAKey},
		{Name: "terminated-pod-gc-threshold", Value: "1000", Controls: kcm},
		{Name: "tls-min-version", Value: "VersionTLS12", Controls: kcm},
		{Name: "tls-cipher-suites", Value: strings.Join(StrongCipherSuites, ","), Controls: kcm},
		{Name: "cluster-name", Value: cp.Name},
		{Name: "service-cluster-ip-range", Value: cp.Spec.Network.ServiceCIDR},
		{Name: "leader-elect", Value: "false"},
	}
}

// SchedulerFlags renders kube-scheduler's flags (SP-SCHED-001).
func (cp *ControlPlane) SchedulerFlags() Flags {
	f := cp.Files
	return Flags{
		{Name: "kubeconfig", Value: f.SchedulerKubeconfig},
		{Name: "authentication-kubeconfig", Value: f.SchedulerKubeconfig},
		{Name: "authorization-kubeconfig", Value: f.SchedulerKubeconfig},
		{Name: "client-ca-file", Value: f.CACert},
		{Name: "requestheader-client-ca-file", Value: f.FrontProxyCACert},
		{Name: "bind-address", Value: cp.Topology.Host, Controls: []blueprints.ControlID{blueprints.SchedulerLoopback}},
		{Name: "secure-port", Value: fmt.Sprint(cp.Ports.Scheduler)},
		{Name: "profiling", Value: "false", Controls: []blueprints.ControlID{blueprints.ProfilingOff}},
		{Name: "tls-min-version", Value: "VersionTLS12", Controls: []blueprints.ControlID{blueprints.SchedulerLoopback}},
		{Name: "leader-elect", Value: "false"},
	}
}

// ServiceIP is the first usable address of the service CIDR: the
// kubernetes.default Service, which the apiserver certificate must name.
func ServiceIP(serviceCIDR string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
	}
	return p.Masked().Addr().Next(), nil
}
