package blueprints

import (
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

const (
	kms, sb, gcm, cbc, none = v1alpha1.EncryptionVaultKMS, v1alpha1.EncryptionSecretbox, v1alpha1.EncryptionAESGCM, v1alpha1.EncryptionAESCBC, v1alpha1.EncryptionNone
)

func TestEncryptionChangeAllowed(t *testing.T) {
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"", kms, true}, {kms, kms, true}, {none, kms, true}, {none, sb, true}, {none, gcm, true}, {none, cbc, true}, {sb, kms, true},
		{kms, sb, false}, {kms, none, false}, {sb, gcm, false}, {gcm, kms, false}, {cbc, sb, false}, {sb, none, false}, {gcm, none, false},
	}
	for _, tt := range tests {
		err := EncryptionChangeAllowed(tt.from, tt.to)
		if (err == nil) != tt.ok {
			t.Errorf("%q -> %q: err = %v, want ok %v", tt.from, tt.to, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "unreadable") || !strings.Contains(err.Error(), "secprov down")) {
			t.Errorf("%q -> %q: error does not say why and what to do: %v", tt.from, tt.to, err)
		}
	}
}

// TestEncryptionTable pins the ranking review, verify and provisioning
// read: strongest first, the blueprint spellings in that order, and which
// control a weak choice concerns.
func TestEncryptionTable(t *testing.T) {
	if got, want := EncryptionProviderNames(), []string{kms, sb, gcm, cbc, none}; !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
	for i, n := range EncryptionProviderNames()[1:] {
		stronger := EncryptionProviderNames()[i]
		if EncryptionRank(n) >= EncryptionRank(stronger) {
			t.Errorf("rank(%s) = %d, not below rank(%s) = %d", n, EncryptionRank(n), stronger, EncryptionRank(stronger))
		}
	}
	if EncryptionRank("rot13") != 0 {
		t.Error("unknown provider has a rank")
	}
	for _, tt := range []struct {
		name     string
		strength EncryptionStrength
		sev      Severity
		control  ControlID
	}{
		{kms, EncryptionStrong, 0, EncryptionProviderStrong},
		{sb, EncryptionStrong, 0, EncryptionProviderStrong},
		{gcm, EncryptionFair, SeverityMedium, EncryptionProviderStrong},
		{cbc, EncryptionWeak, SeverityHigh, EncryptionProviderStrong},
		{none, EncryptionPlaintext, SeverityCritical, EncryptionAtRestOn},
	} {
		p, ok := EncryptionProviderNamed(tt.name)
		if !ok || p.Strength != tt.strength || p.Severity != tt.sev || p.Control() != tt.control || p.Encrypts() != (tt.name != none) {
			t.Errorf("%s: %+v (control %s), want strength %d, severity %v, control %s", tt.name, p, p.Control(), tt.strength, tt.sev, tt.control)
		}
		if (p.Severity != 0) != (p.Weakness != "") {
			t.Errorf("%s: a severity needs a weakness to explain it and vice versa: %+v", tt.name, p)
		}
		if c, ok := EncryptionProviderConfigured(p.Config); !ok || c.Name != p.Name {
			t.Errorf("%s: configured as %q, which finds %+v", tt.name, p.Config, c)
		}
	}
	if p, ok := EncryptionProviderConfigured("kms v1"); !ok || p.Name != "" || p.Strength != EncryptionFair {
		t.Errorf("kms v1 = %+v, %v; want a fair provider no blueprint can name", p, ok)
	}
	if _, ok := EncryptionProviderNamed(""); ok {
		t.Error("the empty name found a provider")
	}
	// Turning encryption off is as severe as the control it breaks.
	off, _ := EncryptionProviderNamed(none)
	if c, _ := ControlByID(EncryptionAtRestOn); off.Severity != c.Severity {
		t.Errorf("%s: severity %v, but %s is %v", none, off.Severity, EncryptionAtRestOn, c.Severity)
	}
}
