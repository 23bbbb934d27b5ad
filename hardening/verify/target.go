package verify

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/vault"
)

// Info describes the cluster under test as its provider created it.
type Info struct {
	Name        string
	Environment string
	Provider    string        // local, kind, …
	Spec        v1alpha1.Spec // the defaulted blueprint spec it was created from
	// EncryptionProvider actually configured (vault-kms may fall back to
	// secretbox where the provider has no Vault yet).
	EncryptionProvider string
	KMSName            string
	Files              hardening.Files
	// Topology is where the provider runs the control plane, as it told
	// hardening when it rendered the flags.
	Topology     hardening.Topology
	APIServerURL string // https://host:port
	// PrivateFiles hold credentials beyond Files (client kubeconfigs, key
	// stores, CA keys the control plane never reads) and must be owner-only.
	PrivateFiles []string
	// PrivateDirs hold keys or state and must be 0700.
	PrivateDirs []string
	// OwnImages are the images secprov runs in the cluster itself; the
	// image guardrail allows their registries.
	OwnImages []string
	// Rendering is how the provider realised the blueprint's objects:
	// the checks compare the live cluster with the same rendering.
	Rendering hardening.Options
}

// Control-plane component names, as Target.Component takes them (defined
// in hardening).
const (
	Etcd              = hardening.Etcd
	APIServer         = hardening.APIServer
	ControllerManager = hardening.ControllerManager
	Scheduler         = hardening.Scheduler
)

// Component is a running control-plane process as seen from its host.
type Component struct {
	Name   string
	Args   []string         // argv without the program name
	Listen []netip.AddrPort // TCP sockets it listens on
}

// Credential is a client identity of another cluster.
type Credential struct {
	Cluster     string
	Environment string
	CertPEM     []byte
	KeyPEM      hardening.Secret
}

// Capability is one way a Target can look at a cluster. Each check
// declares the capabilities it needs (Check.Needs); the runner skips a
// check whose needs the target does not offer, naming what is missing, so
// no check discovers what a target can do by trying and failing.
type Capability string

// The closed set of capabilities. Each names the Target methods (or the
// network access) it stands for; a Target returns a *CapabilityError from a
// method whose capability it does not offer.
const (
	// API: the Kubernetes API as secprov's admin (RESTConfig, Client) and
	// the API server's own TLS endpoint.
	API Capability = "api"
	// Processes: the running control-plane processes, their arguments and
	// listening sockets (Component).
	Processes Capability = "processes"
	// Files: read and stat the control-plane hosts' files (ReadFile, Stat).
	Files Capability = "files"
	// RawEtcd: the raw values the API server stored in etcd (EtcdGet,
	// EtcdKeys).
	RawEtcd Capability = "raw-etcd"
	// ComponentEndpoints: connect from here to the components' own ports
	// and sockets (etcd's client and peer URLs, the controller manager's
	// and scheduler's secure ports, the KMS plugin's socket).
	ComponentEndpoints Capability = "component-endpoints"
	// ForeignCredentials: admin credentials of clusters of other
	// environments (ForeignCredentials).
	ForeignCredentials Capability = "foreign-credentials"
	// VaultAccess: the cluster's Vault objects and how to reach them
	// (Vault).
	VaultAccess Capability = "vault"
	// Nodes: the cluster has nodes that run pods.
	Nodes Capability = "nodes"
	// NetworkProbes: run pods and send traffic between them, to observe
	// network policy enforcement.
	NetworkProbes Capability = "network-probes"
	// HostFirewall: the packet filter of the host the API server runs on
	// (FirewallReader).
	HostFirewall Capability = "host-firewall"
)

// FirewallReader is what a Target offering HostFirewall implements
// besides Target.
type FirewallReader interface {
	// NFTTable returns `nft -j list table inet NAME` of the API server's
	// host; found is false when there is no such table.
	NFTTable(ctx context.Context, name string) (data []byte, found bool, err error)
}

// AllCapabilities is every capability there is, in documentation order.
func AllCapabilities() []Capability {
	return []Capability{API, Processes, Files, RawEtcd, ComponentEndpoints, ForeignCredentials, VaultAccess, Nodes, NetworkProbes, HostFirewall}
}

// Missing returns the capabilities of need that have does not contain.
func Missing(have, need []Capability) []Capability {
	var out []Capability
	for _, c := range need {
		if !slices.Contains(have, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// CapabilityError is what a Target returns from a method whose capability
// it does not offer. A check that gets one did not declare what it needs:
// the result is an error (a bug in the check), never a skip or a pass.
type CapabilityError struct {
	Provider   string
	Capability Capability
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("provider %s does not offer %s (a check that calls this must declare it in Needs)", e.Provider, e.Capability)
}

// Target is the narrow view of a live cluster the checks need. Providers
// implement it: local reads /proc and files directly, kind will use docker
// exec. Every method but Info and Capabilities belongs to a capability.
type Target interface {
	Info() Info
	// Capabilities are what this target offers; they do not change
	// while it is open.
	Capabilities() []Capability
	// RESTConfig authenticates as secprov's admin (never system:masters).
	// API.
	RESTConfig() (*rest.Config, error)
	// Client is the admin clientset. API.
	Client() (kubernetes.Interface, error)
	// Component returns a running control-plane process: etcd,
	// kube-apiserver, kube-controller-manager, kube-scheduler. Processes.
	Component(ctx context.Context, name string) (*Component, error)
	// ReadFile and Stat read the control-plane hosts' files. Files.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// EtcdGet reads the raw value the API server stored under key. RawEtcd.
	EtcdGet(ctx context.Context, key string) (value []byte, found bool, err error)
	// EtcdKeys lists keys under prefix. RawEtcd.
	EtcdKeys(ctx context.Context, prefix string) ([]string, error)
	// ForeignCredentials are admin credentials of clusters of other
	// environments, to prove this cluster rejects them. ForeignCredentials.
	ForeignCredentials(ctx context.Context) ([]Credential, error)
	// Vault describes the cluster's Vault objects and how to reach them;
	// an error when the cluster has no Vault. VaultAccess.
	Vault(ctx context.Context) (*Vault, error)
	// NodeAccess reaches the nodes (Nodes, NetworkProbes).
	NodeAccess
}

// Vault is what the Vault and KMS checks see of a cluster's Vault.
type Vault struct {
	// Admin may read the cluster's Vault configuration: the local Vault's
	// root token, or the operator's own token for an external Vault.
	Admin vault.Access
	// KMSToken is the KMS plugin's own narrow token (empty when the
	// cluster does not encrypt with vault-kms).
	KMSToken  vault.Access
	KMSSocket string
	Names     vault.Names
	// Peers are the clusters of other environments in the same Vault.
	Peers []VaultPeer
}

// VaultPeer is another environment's cluster sharing this Vault.
type VaultPeer struct {
	Cluster, Environment string
	Names                vault.Names
}

// Args parses "--name=value" and "--name value" arguments into a map; a
// flag given twice keeps the last value, as the components do.
func Args(argv []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimLeft(a, "-")
		if name, val, ok := strings.Cut(a, "="); ok {
			out[name] = val
			continue
		}
		if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			out[a] = argv[i+1]
			i++
			continue
		}
		out[a] = "true"
	}
	return out
}
