package cluster

import (
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// TestProgramRefusesAnUnreadableEncryptionChange: every provider's program
// goes through cluster.Program, which refuses, before anything is
// declared, a provider change that would leave stored data unreadable.
func TestProgramRefusesAnUnreadableEncryptionChange(t *testing.T) {
	bps, err := blueprints.LoadBytes("b.yaml", []byte("apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: c}\nspec:\n  environment: test\n  encryptionAtRest: {provider: secretbox}\n  vault: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	steps := Steps{} // never reached
	for _, tc := range []struct {
		recorded string
		refused  bool
	}{
		{"", false},
		{v1alpha1.EncryptionNone, false},
		{v1alpha1.EncryptionSecretbox, false},
		{v1alpha1.EncryptionVaultKMS, true},
		{v1alpha1.EncryptionAESGCM, true},
	} {
		if tc.recorded != "" {
			if err := WriteRecord(&Record{Name: "c", Environment: "test", Dir: dir, EncryptionProvider: tc.recorded}, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Program(Declaration{Spec: &Spec{Blueprint: bps[0], Dir: dir}, Steps: steps})
		if refused := err != nil && strings.Contains(err.Error(), "cannot change from"); refused != tc.refused {
			t.Errorf("recorded %q → secretbox: err = %v; want refused=%v", tc.recorded, err, tc.refused)
		}
	}
}
