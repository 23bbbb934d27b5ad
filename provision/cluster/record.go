// Package cluster holds what every cluster provider shares: the cluster
// record written with each cluster, the Provider interface everything
// above the providers talks to, and the provider-neutral steps of bringing
// a cluster up (the in-cluster bootstrap, the rendered configuration and
// its key store, the order of the steps). Provider packages import it; it
// imports no provider.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/vault"
)

// Record is the provider-neutral description of one cluster, written
// (0600, atomically) into its directory whenever up changes it. status,
// verify, down, kubeconfig and the cross-cluster isolation checks read it,
// so they work without the engine and across providers: a prod cluster on
// kind and a test cluster on local see each other through their records.
// It names paths and addresses only, never a secret.
type Record struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	// Provider is the spec.provider.type that made the cluster; records
	// written before it existed are local.
	Provider string `json:"provider,omitempty"`
	// Spec is the defaulted blueprint spec the cluster was last applied
	// from, as JSON.
	Spec json.RawMessage `json:"spec,omitempty"`
	// EncryptionProvider is the encryption-at-rest provider actually
	// configured on the API server.
	EncryptionProvider string `json:"encryptionProvider,omitempty"`
	APIServerURL       string `json:"apiServerURL,omitempty"`
	// Kubeconfig is the admin kubeconfig (user secprov:admin).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Ports the provider chose for the control plane (local: every
	// component's; kind: the API server's host port).
	Ports hardening.Ports `json:"ports"`
	// Vault the cluster uses (nil: none). Paths only, never tokens.
	Vault *VaultRecord `json:"vault,omitempty"`
	// OwnImages are the images secprov runs in the cluster itself (kind:
	// Cilium, the control plane's); the image guardrail allows their
	// registries.
	OwnImages []string `json:"ownImages,omitempty"`
	// Rendering is how the provider realised the blueprint's objects
	// (Cilium's policy kinds or NetworkPolicies); verify compares the
	// live cluster with the same rendering.
	Rendering hardening.Options `json:"rendering,omitzero"`
	Created   time.Time         `json:"created,omitzero"`
	Updated   time.Time         `json:"updated,omitzero"`

	// Dir is the cluster's directory; not stored (the record lives in it).
	Dir string `json:"-"`
}

// VaultRecord says how the cluster reaches its Vault.
type VaultRecord struct {
	// Admin reaches the Vault as its administrator: the local Vault's root
	// token file, or, for an external Vault, no token file (the
	// operator's VAULT_TOKEN or AppRole).
	Admin vault.Access `json:"admin"`
	// KMSSocket is the KMS plugin's socket, when the cluster encrypts with
	// vault-kms.
	KMSSocket string `json:"kmsSocket,omitempty"`
}

// ProviderType returns the provider that made the cluster.
func (r *Record) ProviderType() string {
	if r.Provider == "" {
		return v1alpha1.ProviderLocal
	}
	return r.Provider
}

// DecodeSpec returns the blueprint spec the cluster was applied from.
func (r *Record) DecodeSpec() (v1alpha1.Spec, error) {
	var s v1alpha1.Spec
	if len(r.Spec) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(r.Spec, &s); err != nil {
		return s, fmt.Errorf("%s: spec: %w", paths.NewLayout(r.Dir).RecordFile(), err)
	}
	return s, nil
}

// ErrNoCluster means a directory holds no cluster record.
var ErrNoCluster = errors.New("no cluster")

// ReadRecord reads the record in a cluster directory.
func ReadRecord(dir string) (*Record, error) {
	file := paths.NewLayout(dir).RecordFile()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoCluster)
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w; run secprov down and up again", file, err)
	}
	r.Dir = dir
	if r.Kubeconfig == "" {
		r.Kubeconfig = paths.NewLayout(dir).AdminKubeconfig()
	}
	return &r, nil
}

// WriteRecord writes r into r.Dir, keeping the creation time of the record
// it replaces.
func WriteRecord(r *Record, now time.Time) error {
	if r.Dir == "" {
		return errors.New("cluster record without a directory")
	}
	if old, err := ReadRecord(r.Dir); err == nil && !old.Created.IsZero() {
		r.Created = old.Created
	}
	if r.Created.IsZero() {
		r.Created = now.UTC()
	}
	r.Updated = now.UTC()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(paths.NewLayout(r.Dir).RecordFile(), append(data, '\n'), 0o600)
}

// Dirs lists the cluster directories in the state root, sorted by name.
func Dirs(stateDir string) ([]string, error) {
	root := paths.ClustersDir(stateDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		// Entries that are not cluster names are nothing secprov made.
		if e.IsDir() && paths.CheckClusterName(e.Name()) == nil {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Records reads every cluster record in the state root. A directory whose
// record is missing or damaged is returned in damaged with the reason, so
// status can show it and down can still remove it.
func Records(stateDir string) (recs []*Record, damaged map[string]error, err error) {
	dirs, err := Dirs(stateDir)
	if err != nil {
		return nil, nil, err
	}
	damaged = map[string]error{}
	for _, d := range dirs {
		r, err := ReadRecord(d)
		if err != nil {
			damaged[filepath.Base(d)] = err
			continue
		}
		recs = append(recs, r)
	}
	return recs, damaged, nil
}
