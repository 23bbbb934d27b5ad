// Package local is secprov's embedded provider: per cluster, etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler run as
// supervised processes bound to loopback, each cluster in its own 0700
// directory with its own PKI, keys and ports. No Docker, no nodes: a real,
// hardened control plane for policy and API work.
package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/vault"
)

// Components in start order, named as verify names them.
const (
	Etcd              = verify.Etcd
	APIServer         = verify.APIServer
	ControllerManager = verify.ControllerManager
	Scheduler         = verify.Scheduler
)

// KMSPlugin is the KMS v2 plugin process (secprov kms-plugin) of a
// cluster that encrypts with vault-kms; it starts before the API server.
const KMSPlugin = "kms-plugin"

// Components lists the control-plane processes in start order.
var Components = []string{Etcd, APIServer, ControllerManager, Scheduler}

// processes are every process a cluster may run, in start order.
var processes = []string{KMSPlugin, Etcd, APIServer, ControllerManager, Scheduler}

// Layout names every path of one cluster's directory.
type Layout struct {
	Dir string
}

// NewLayout returns the layout of the cluster directory dir.
func NewLayout(dir string) Layout { return Layout{Dir: dir} }

func (l Layout) path(elem ...string) string {
	return filepath.Join(append([]string{l.Dir}, elem...)...)
}

// Directories and files.
func (l Layout) PKIDir() string                  { return l.path("pki") }
func (l Layout) ConfigDir() string               { return l.path("config") }
func (l Layout) LogDir() string                  { return l.path("logs") }
func (l Layout) RunDir() string                  { return l.path("run") }
func (l Layout) EtcdDataDir() string             { return l.path("etcd") }
func (l Layout) MetaFile() string                { return l.path("cluster.json") }
func (l Layout) AdminKubeconfig() string         { return l.path("admin.kubeconfig") }
func (l Layout) SuperAdminKubeconfig() string    { return l.path("super-admin.kubeconfig") }
func (l Layout) EncryptionConfig() string        { return l.path("config", "encryption.yaml") }
func (l Layout) EncryptionKeys() string          { return l.path("config", "encryption-keys.json") }
func (l Layout) AuditPolicy() string             { return l.path("config", "audit-policy.yaml") }
func (l Layout) AdmissionConfig() string         { return l.path("config", "admission.yaml") }
func (l Layout) AuditLog() string                { return l.path("logs", "audit.log") }
func (l Layout) VaultDir() string                { return l.path("vault") }
func (l Layout) KMSToken() string                { return l.path("vault", "kms-token") }
func (l Layout) PidFile(component string) string { return l.path("run", component+".pid") }
func (l Layout) LogFile(component string) string { return l.path("logs", component+".log") }
func (l Layout) Kubeconfig(component string) string {
	return l.path(component + ".kubeconfig")
}

// Bundle is the PKI bundle's paths for this layout, without touching disk.
func (l Layout) Files(b *pki.Bundle) hardening.Files {
	return hardening.Files{
		CACert: b.CACert, CAKey: b.CAKey, EtcdCACert: b.EtcdCACert,
		EtcdServerCert: b.EtcdServerCert, EtcdServerKey: b.EtcdServerKey,
		EtcdPeerCert: b.EtcdPeerCert, EtcdPeerKey: b.EtcdPeerKey,
		EtcdSelfClientCert: b.EtcdSelfClientCert, EtcdSelfClientKey: b.EtcdSelfClientKey,
		APIServerEtcdCert: b.APIServerEtcdClientCert, APIServerEtcdKey: b.APIServerEtcdClientKey,
		APIServerCert: b.APIServerCert, APIServerKey: b.APIServerKey,
		KubeletClientCert: b.APIServerKubeletClientCert, KubeletClientKey: b.APIServerKubeletClientKey,
		FrontProxyCACert: b.FrontProxyCACert, FrontProxyClientCert: b.FrontProxyClientCert, FrontProxyClientKey: b.FrontProxyClientKey,
		ServiceAccountKey: b.ServiceAccountKey, ServiceAccountPub: b.ServiceAccountPub,
		ControllerManagerKubeconfig: l.Kubeconfig(ControllerManager),
		SchedulerKubeconfig:         l.Kubeconfig(Scheduler),
		EncryptionConfig:            l.EncryptionConfig(),
		AuditPolicy:                 l.AuditPolicy(),
		AuditLog:                    l.AuditLog(),
		AdmissionConfig:             l.AdmissionConfig(),
		EtcdDataDir:                 l.EtcdDataDir(),
	}
}

// Meta is the non-secret description of a local cluster, kept in
// cluster.json so status, kubeconfig and verify work without the engine.
type Meta struct {
	Name        string          `json:"name"`
	Environment string          `json:"environment"`
	Ports       hardening.Ports `json:"ports"`
	// Blueprint is the defaulted blueprint spec the cluster was last
	// applied from, as JSON.
	Spec json.RawMessage `json:"spec,omitempty"`
	// EncryptionProvider actually configured.
	EncryptionProvider string `json:"encryptionProvider,omitempty"`
	APIServerURL       string `json:"apiServerURL,omitempty"`
	// Vault the cluster uses (nil: none). Paths only, never tokens.
	Vault *VaultMeta `json:"vault,omitempty"`
}

// VaultMeta says how the cluster reaches its Vault.
type VaultMeta struct {
	// Admin reaches the Vault as its administrator: the local Vault's root
	// token file, or, for an external Vault, no token file (the
	// operator's VAULT_TOKEN or AppRole).
	Admin vault.Access `json:"admin"`
	// KMSSocket is the KMS plugin's socket, when the cluster encrypts with
	// vault-kms.
	KMSSocket string `json:"kmsSocket,omitempty"`
}

// KMSSocket is where the cluster's KMS plugin listens. A unix socket path
// must fit in 108 bytes; a cluster directory that deep (long test temp
// dirs) gets a private directory under the system temp dir instead, named
// by a hash of the cluster directory so every run finds the same one.
func (l Layout) KMSSocket() string {
	p := l.path("run", "kms.sock")
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(l.Dir))
	return filepath.Join(os.TempDir(), "secprov-"+hex.EncodeToString(sum[:8]), "kms.sock")
}

// ErrNoCluster means the directory holds no local cluster.
var ErrNoCluster = errors.New("no local cluster")

// ReadMeta reads cluster.json.
func (l Layout) ReadMeta() (*Meta, error) {
	data, err := os.ReadFile(l.MetaFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", l.Dir, ErrNoCluster)
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w; run secprov down and up again", l.MetaFile(), err)
	}
	return &m, nil
}

// WriteMeta writes cluster.json (0600: it names ports and paths only, but
// nothing outside the owner needs it).
func (l Layout) WriteMeta(m *Meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(l.MetaFile(), append(data, '\n'), 0o600)
}
