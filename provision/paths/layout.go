package paths

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

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
func (l Layout) RecordFile() string              { return l.path("cluster.json") }
func (l Layout) AdminKubeconfig() string         { return l.path("admin.kubeconfig") }
func (l Layout) SuperAdminKubeconfig() string    { return l.path("super-admin.kubeconfig") }
func (l Layout) EncryptionConfig() string        { return l.path("config", "encryption.yaml") }
func (l Layout) EncryptionKeys() string          { return l.path("config", "encryption-keys.json") }
func (l Layout) AuditPolicy() string             { return l.path("config", "audit-policy.yaml") }
func (l Layout) AdmissionConfig() string         { return l.path("config", "admission.yaml") }
func (l Layout) AuditLog() string                { return l.path("logs", "audit.log") }
func (l Layout) VaultDir() string                { return l.path("vault") }
func (l Layout) KMSToken() string                { return l.path("vault", "kms-token") }
func (l Layout) EvidenceToken() string           { return l.path("vault", "evidence-token") }
func (l Layout) PidFile(component string) string { return l.path("run", component+".pid") }
func (l Layout) LogFile(component string) string { return l.path("logs", component+".log") }
func (l Layout) Kubeconfig(component string) string {
	return l.path(component + ".kubeconfig")
}

// KMSSocket is where the cluster's KMS plugin listens. A unix socket path
// must fit in 108 bytes; a cluster directory that deep (long test temp
// dirs) gets a private directory under the system temp dir instead, named
// by a hash of the cluster directory so every run finds the same one.
// The socket's directory holds nothing else: the kind provider mounts it
// into the control-plane node.
func (l Layout) KMSSocket() string {
	p := l.path("run", "kms", "kms.sock")
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(l.Dir))
	return filepath.Join(os.TempDir(), "secprov-"+hex.EncodeToString(sum[:8]), "kms.sock")
}
