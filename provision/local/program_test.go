package local

import (
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

func TestProviderChangeAllowed(t *testing.T) {
	const (
		kms, sb, gcm, cbc, none = v1alpha1.EncryptionVaultKMS, v1alpha1.EncryptionSecretbox, v1alpha1.EncryptionAESGCM, v1alpha1.EncryptionAESCBC, v1alpha1.EncryptionNone
	)
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"", kms, true}, {kms, kms, true}, {none, kms, true}, {none, sb, true}, {sb, kms, true},
		{kms, sb, false}, {kms, none, false}, {sb, gcm, false}, {gcm, kms, false}, {cbc, sb, false}, {sb, none, false},
	}
	for _, tt := range tests {
		err := ProviderChangeAllowed(tt.from, tt.to)
		if (err == nil) != tt.ok {
			t.Errorf("%q -> %q: err = %v, want ok %v", tt.from, tt.to, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "unreadable") || !strings.Contains(err.Error(), "secprov down")) {
			t.Errorf("%q -> %q: error does not say why and what to do: %v", tt.from, tt.to, err)
		}
	}
}
