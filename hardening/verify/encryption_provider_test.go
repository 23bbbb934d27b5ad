package verify

import (
	"encoding/json"
	"testing"

	"secprov.dev/secprov/blueprints"
)

// TestJudgeEncryptionProvider: live EncryptionConfiguration entries are
// named and rated by the blueprints table as they were before it existed.
func TestJudgeEncryptionProvider(t *testing.T) {
	for _, tt := range []struct {
		entry    string
		name     string
		strength blueprints.EncryptionStrength
		encrypts bool
	}{
		{`{"kms": {"apiVersion": "v2", "name": "vault-prod"}}`, "kms v2 (vault-prod)", blueprints.EncryptionStrong, true},
		{`{"kms": {"name": "old"}}`, "kms v1 (old)", blueprints.EncryptionFair, true},
		{`{"kms": {"apiVersion": "v1", "name": "old"}}`, "kms v1 (old)", blueprints.EncryptionFair, true},
		{`{"secretbox": {"keys": []}}`, "secretbox", blueprints.EncryptionStrong, true},
		{`{"aesgcm": {"keys": []}}`, "aesgcm", blueprints.EncryptionFair, true},
		{`{"aescbc": {"keys": []}}`, "aescbc", blueprints.EncryptionWeak, true},
		{`{"identity": {}}`, "identity", blueprints.EncryptionPlaintext, false},
		{`{"rot13": {}}`, "unknown provider", blueprints.EncryptionPlaintext, false},
	} {
		var entry map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tt.entry), &entry); err != nil {
			t.Fatal(err)
		}
		name, p := judgeEncryptionProvider(entry)
		if name != tt.name || p.Strength != tt.strength || p.Encrypts() != tt.encrypts {
			t.Errorf("%s: %q %+v, want %q strength %d encrypts %v", tt.entry, name, p, tt.name, tt.strength, tt.encrypts)
		}
	}
	if got := strongEncryption(); got != "kms v2 or secretbox" {
		t.Errorf("strongEncryption() = %q", got)
	}
}
