package evidence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// TestVaultTransitEvidence runs against a real Vault: up's signing key
// and narrow token sign; the public keys Vault hands out verify; after a
// rotation old evidence still verifies against its key version; the
// signer's token can do nothing but sign; with Vault gone, --attest's
// write fails loudly and leaves no file.
func TestVaultTransitEvidence(t *testing.T) {
	dev := vaulttest.StartDev(t)
	ctx := context.Background()
	f := newFixture(t)
	n := vault.Names{Cluster: "shop-test", TransitMount: "transit-shop-test", TransitKey: "kms-shop-test", SigningKey: vault.SigningKeyName("test")}
	prodNames := vault.Names{Cluster: "shop-prod", TransitMount: "transit-shop-prod", TransitKey: "kms-shop-prod", SigningKey: vault.SigningKeyName("prod")}
	setup, err := vault.NewSetup(ctx, dev.Access(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	signerFor := func(n vault.Names) *TransitSigner {
		tokenFile := filepath.Join(dir, n.Cluster+"-evidence-token")
		if _, err := setup.EnsureSigningKey(ctx, n.TransitMount, n.SigningKey); err != nil {
			t.Fatal(err)
		}
		if err := setup.EnsureEvidenceToken(ctx, n, tokenFile); err != nil {
			t.Fatal(err)
		}
		c, err := vault.Access{Address: dev.Addr, TokenFile: tokenFile}.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return &TransitSigner{Client: c, Mount: n.TransitMount, Key: n.SigningKey}
	}
	testSigner, prodSigner := signerFor(n), signerFor(prodNames)
	// Ensure is idempotent: a second up keeps the key and the token.
	if _, err := setup.EnsureSigningKey(ctx, n.TransitMount, n.SigningKey); err != nil {
		t.Fatal(err)
	}

	root, err := dev.Access().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []PublicKey {
		t.Helper()
		tk, err := TransitPublicKeys(ctx, root, n.TransitMount, n.SigningKey, "test")
		if err != nil {
			t.Fatal(err)
		}
		pk, err := TransitPublicKeys(ctx, root, prodNames.TransitMount, prodNames.SigningKey, "prod")
		if err != nil {
			t.Fatal(err)
		}
		return append(tk, pk...)
	}

	v1 := filepath.Join(dir, "v1.dsse.json")
	if err := WriteFile(ctx, v1, testSigner, f.in); err != nil {
		t.Fatal(err)
	}
	env1, _ := os.ReadFile(v1)
	got, err := Verify(ctx, env1, VerifyOptions{Keys: keys(), BlueprintsDir: f.dir, Now: runDay})
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != TransitKeyID(n.TransitMount, n.SigningKey, 1) || got.KeyEnvironment != "test" {
		t.Errorf("signed by %s (%s)", got.KeyID, got.KeyEnvironment)
	}

	// The other environment's Vault key is refused for this statement.
	prodEnv, err := Sign(ctx, prodSigner, f.in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, prodEnv, VerifyOptions{Keys: keys(), Now: runDay}); err == nil || !strings.Contains(err.Error(), "signed with prod's key") {
		t.Errorf("prod-signed test evidence: %v", err)
	}

	// Rotation: new evidence is signed by v2, old evidence still verifies.
	if k, err := setup.RotateSigningKey(ctx, n.TransitMount, n.SigningKey); err != nil || k.LatestVersion != 2 {
		t.Fatalf("rotate: %+v %v", k, err)
	}
	env2, err := Sign(ctx, testSigner, f.in)
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]byte{"old": env1, "new": env2} {
		if _, err := Verify(ctx, env, VerifyOptions{Keys: keys(), Now: runDay}); err != nil {
			t.Errorf("%s evidence after rotation: %v", name, err)
		}
	}
	if !strings.Contains(string(env2), TransitKeyID(n.TransitMount, n.SigningKey, 2)) {
		t.Error("new evidence does not name key version 2")
	}

	// The signer's token signs and does nothing else.
	for _, try := range []func() error{
		func() error {
			_, err := testSigner.Client.Logical().Write(n.TransitMount+"/encrypt/"+n.TransitKey, map[string]any{"plaintext": "AA=="})
			return err
		},
		func() error {
			_, err := testSigner.Client.Logical().Read(n.TransitMount + "/keys/" + n.SigningKey)
			return err
		},
		func() error {
			_, err := testSigner.Client.Logical().Write(prodNames.TransitMount+"/sign/"+prodNames.SigningKey+"/sha2-256", map[string]any{"input": "AA=="})
			return err
		},
		func() error {
			_, err := testSigner.Client.Logical().Write(n.TransitMount+"/keys/"+n.SigningKey+"/rotate", nil)
			return err
		},
	} {
		if err := try(); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("signer token was allowed, or failed otherwise: %v", err)
		}
	}

	// Vault down: the write fails, naming Vault, and no file appears.
	dev.Stop()
	down := filepath.Join(dir, "down.dsse.json")
	err = WriteFile(ctx, down, testSigner, f.in)
	if err == nil || !strings.Contains(err.Error(), "sign with transit key") {
		t.Fatalf("Vault down: %v", err)
	}
	if _, serr := os.Stat(down); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("a file was written with Vault down: %v", serr)
	}
	t.Logf("Vault down: %v", err)
}
