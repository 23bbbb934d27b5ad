package blueprints

import (
	"fmt"
	"slices"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// EncryptionStrength rates an encryption provider; higher is stronger.
// The zero value, plaintext, is also what an unknown provider counts as.
type EncryptionStrength int

// Encryption strengths, weakest first.
const (
	// EncryptionPlaintext stores values as they are (identity).
	EncryptionPlaintext EncryptionStrength = iota
	// EncryptionWeak encrypts breakably, with the key beside the data.
	EncryptionWeak
	// EncryptionFair is usable but should be replaced.
	EncryptionFair
	// EncryptionStrong needs nothing done.
	EncryptionStrong
)

// EncryptionProvider is one encryption-at-rest provider: how a blueprint
// and a live EncryptionConfiguration name it, how strong it is, and what
// an existing cluster may move to from it. Review, verify and provisioning
// all judge providers by this one table.
type EncryptionProvider struct {
	// Name is the spelling in spec.encryptionAtRest.provider; empty for a
	// provider only a live EncryptionConfiguration can hold (KMS v1).
	Name string
	// Config names the provider as a live EncryptionConfiguration entry
	// does: its key, and for kms the API version ("kms v2").
	Config   string
	Strength EncryptionStrength
	// Severity of a blueprint finding for choosing the provider (0 when
	// it is strong), and Weakness says why, in the finding's words.
	Severity Severity
	Weakness string
	// MayBecome lists the providers an existing cluster that uses this one
	// may change to while everything stored stays readable; staying is
	// always allowed.
	MayBecome []string
}

// Encrypts reports whether the provider encrypts at all.
func (p EncryptionProvider) Encrypts() bool { return p.Strength > EncryptionPlaintext }

// Control is the control a blueprint choosing the provider concerns:
// SP-ENC-001 when it does not encrypt, SP-ENC-002 otherwise.
func (p EncryptionProvider) Control() ControlID {
	if !p.Encrypts() {
		return EncryptionAtRestOn
	}
	return EncryptionProviderStrong
}

// encryptionProviders is the table, strongest first: the position is the
// rank by which a change of provider is a weakening.
var encryptionProviders = []EncryptionProvider{
	// KMS v2 backed by Vault Transit: the key never leaves Vault.
	{Name: v1alpha1.EncryptionVaultKMS, Config: "kms v2", Strength: EncryptionStrong},
	// The secretbox keys stay as a read-only provider beside the KMS one
	// until rotate-keys rewrites the data.
	{Name: v1alpha1.EncryptionSecretbox, Config: "secretbox", Strength: EncryptionStrong,
		MayBecome: []string{v1alpha1.EncryptionVaultKMS}},
	// Deprecated upstream; a blueprint cannot ask for it.
	{Config: "kms v1", Strength: EncryptionFair},
	{Name: v1alpha1.EncryptionAESGCM, Config: "aesgcm", Strength: EncryptionFair, Severity: SeverityMedium,
		Weakness: "AES-GCM needs a key rotation every 200k writes and its key sits on the control plane"},
	{Name: v1alpha1.EncryptionAESCBC, Config: "aescbc", Strength: EncryptionWeak, Severity: SeverityHigh,
		Weakness: "AES-CBC is prone to padding-oracle attacks and its key sits on the control plane"},
	// Nothing stored is encrypted, so any provider can take over.
	{Name: v1alpha1.EncryptionNone, Config: "identity", Strength: EncryptionPlaintext, Severity: SeverityCritical,
		Weakness:  "secrets are stored in plaintext in etcd",
		MayBecome: []string{v1alpha1.EncryptionVaultKMS, v1alpha1.EncryptionSecretbox, v1alpha1.EncryptionAESGCM, v1alpha1.EncryptionAESCBC}},
}

// EncryptionProviders returns the table, strongest first.
func EncryptionProviders() []EncryptionProvider { return slices.Clone(encryptionProviders) }

// EncryptionProviderNames are the values spec.encryptionAtRest.provider
// accepts, strongest first.
func EncryptionProviderNames() []string {
	var out []string
	for _, p := range encryptionProviders {
		if p.Name != "" {
			out = append(out, p.Name)
		}
	}
	return out
}

// EncryptionProviderNamed returns the provider a blueprint names.
func EncryptionProviderNamed(name string) (EncryptionProvider, bool) {
	i := slices.IndexFunc(encryptionProviders, func(p EncryptionProvider) bool { return p.Name != "" && p.Name == name })
	if i < 0 {
		return EncryptionProvider{}, false
	}
	return encryptionProviders[i], true
}

// EncryptionProviderConfigured returns the provider a live
// EncryptionConfiguration entry names ("kms v2", "secretbox", "identity").
func EncryptionProviderConfigured(config string) (EncryptionProvider, bool) {
	i := slices.IndexFunc(encryptionProviders, func(p EncryptionProvider) bool { return p.Config == config })
	if i < 0 {
		return EncryptionProvider{}, false
	}
	return encryptionProviders[i], true
}

// EncryptionRank orders the providers a blueprint names: higher is
// stronger, 0 is unknown.
func EncryptionRank(name string) int {
	i := slices.IndexFunc(encryptionProviders, func(p EncryptionProvider) bool { return p.Name != "" && p.Name == name })
	if i < 0 {
		return 0
	}
	return len(encryptionProviders) - i
}

// EncryptionChangeAllowed says whether an existing cluster encrypted with
// provider from may move to provider to without making stored data
// unreadable; from is empty for a cluster that has none recorded. Any
// change the table does not allow would drop the only provider that can
// read what is stored, so it is refused before anything is touched.
func EncryptionChangeAllowed(from, to string) error {
	if from == "" || from == to {
		return nil
	}
	if p, ok := EncryptionProviderNamed(from); ok && slices.Contains(p.MayBecome, to) {
		return nil
	}
	return fmt.Errorf("encryptionAtRest.provider cannot change from %s to %s on an existing cluster: data stored under %s would become unreadable. "+
		"Keep %s, or recreate the cluster (secprov down, then up) to start with %s", from, to, from, from, to)
}
