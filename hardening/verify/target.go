package verify

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
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
	APIServerURL       string // https://host:port
	HasNodes           bool
	// PrivateFiles hold credentials beyond Files (client kubeconfigs, key
	// stores, CA keys the control plane never reads) and must be owner-only.
	PrivateFiles []string
	// PrivateDirs hold keys or state and must be 0700.
	PrivateDirs []string
}

// Control-plane component names, as Target.Component takes them.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
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

// ErrNoAccess is returned by a Target that cannot reach a part of the
// control plane (e.g. a managed cloud control plane has no process list);
// checks turn it into a skip with the reason.
var ErrNoAccess = errors.New("not accessible through this provider")

// Target is the narrow view of a live cluster the checks need. Providers
// implement it: local reads /proc and files directly, kind will use docker
// exec.
type Target interface {
	Info() Info
	// RESTConfig authenticates as secprov's admin (never system:masters).
	RESTConfig() (*rest.Config, error)
	Client() (kubernetes.Interface, error)
	// Component returns a running control-plane process: etcd,
	// kube-apiserver, kube-controller-manager, kube-scheduler.
	Component(ctx context.Context, name string) (*Component, error)
	ReadFile(ctx context.Context, path string) ([]byte, error)
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// EtcdGet reads the raw value the API server stored under key.
	EtcdGet(ctx context.Context, key string) (value []byte, found bool, err error)
	// EtcdKeys lists keys under prefix.
	EtcdKeys(ctx context.Context, prefix string) ([]string, error)
	// ForeignCredentials are admin credentials of clusters of other
	// environments, to prove this cluster rejects them.
	ForeignCredentials(ctx context.Context) ([]Credential, error)
	// Vault describes the cluster's Vault objects and how to reach them;
	// ErrNoAccess when the cluster uses no Vault.
	Vault(ctx context.Context) (*Vault, error)
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
