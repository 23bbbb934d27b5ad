package provision_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
)

// TestStateSecretsInVault: prod's state secrets through Vault Transit, all
// against the real local Vault and Pulumi engine. up makes the key and a
// token that can use only that key; the stack's secrets provider is
// Vault's; rekey moves it to the passphrase and back; with Vault sealed an
// engine operation fails naming Vault and what to do; down, its token
// file lost, mints one to decrypt and then removes the key, the token and
// its policy.
func TestStateSecretsInVault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and the local Vault")
	}
	ctx := context.Background()
	bins := localtest.Toolchain(t)
	eng, stateDir := enginetest.NewEngine(t, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins, VaultBinary: localtest.VaultBinary(t)})
	bps := examples(t, "prod.yaml")
	bp := bps[0]
	if bp.Spec.State.SecretsProvider != v1alpha1.StateSecretsVault {
		t.Fatalf("examples/prod.yaml asks for %q state secrets; the test needs vault", bp.Spec.State.SecretsProvider)
	}
	t.Cleanup(func() { p.Down(context.Background(), []string{bp.Name()}, nil) })
	mustUp(t, p, bps)

	n := vault.Names{Cluster: bp.Name()}
	got, err := eng.StateProvider(ctx, bp.Name())
	if err != nil || got != n.StateSecretsURL() {
		t.Fatalf("stack secrets provider = %q, %v; want %s", got, err, n.StateSecretsURL())
	}
	tokenFile := provision.StateTokenFile(stateDir, bp.Name())
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state token file: %v, %v", fi, err)
	}

	// The token can encrypt and decrypt with the state key and nothing
	// else: not the KMS key, not the key itself, not another cluster's.
	admin, err := (&vaultserver.Server{Dir: vaultserver.DirIn(stateDir), Binary: localtest.VaultBinary(t)}).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokBytes, _ := os.ReadFile(tokenFile)
	tok := strings.TrimSpace(string(tokBytes))
	c, err := vault.Access{Address: admin.Address, CAFile: admin.CAFile}.Anonymous()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok)
	if _, err := c.Logical().Write(vault.StateMount+"/encrypt/"+n.StateKey(), map[string]any{"plaintext": "aGVsbG8="}); err != nil {
		t.Errorf("the state token cannot encrypt with its key: %v", err)
	}
	kms := vault.NamesFor(bp.Name(), bp.Spec)
	for _, denied := range []struct{ op, path string }{
		{"write", kms.TransitMount + "/encrypt/" + kms.TransitKey},
		{"read", vault.StateMount + "/keys/" + n.StateKey()},
		{"write", vault.StateMount + "/encrypt/shop-test"},
		{"write", vault.StateMount + "/keys/" + n.StateKey() + "/rotate"},
	} {
		var err error
		if denied.op == "read" {
			_, err = c.Logical().Read(denied.path)
		} else {
			_, err = c.Logical().Write(denied.path, map[string]any{"plaintext": "aGVsbG8="})
		}
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("the state token may %s %s: %v", denied.op, denied.path, err)
		}
	}

	// No state file holds the token or the passphrase.
	pass := []byte(mustPassphrase(t, stateDir))
	_ = filepath.WalkDir(filepath.Join(stateDir, "pulumi"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, pass) {
			t.Errorf("%s holds the state token or the passphrase", path)
		}
		return nil
	})

	// rekey: to the passphrase and back; up refuses the mismatch between.
	pp, err := p.StateSecretsFor(ctx, bp.Name(), bp.Spec, v1alpha1.StateSecretsPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Rekey(ctx, bp.Name(), pp); err != nil {
		t.Fatalf("rekey to passphrase: %v", err)
	}
	if got, _ := eng.StateProvider(ctx, bp.Name()); got != engine.PassphraseProvider {
		t.Errorf("after rekey to passphrase the stack uses %q", got)
	}
	if r := p.Up(ctx, bps, nil)[0]; r.Err == nil || !strings.Contains(r.Err.Error(), "secprov state rekey --cluster shop-prod --to vault") {
		t.Errorf("up with vault asked for a passphrase stack: %v", r.Err)
	}
	vs, err := p.StateSecretsFor(ctx, bp.Name(), bp.Spec, v1alpha1.StateSecretsVault)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Rekey(ctx, bp.Name(), vs); err != nil {
		t.Fatalf("rekey to vault: %v", err)
	}
	if got, _ := eng.StateProvider(ctx, bp.Name()); got != n.StateSecretsURL() {
		t.Errorf("after rekey to vault the stack uses %q", got)
	}
	mustUp(t, p, bps)

	// Vault sealed: reading the state's secrets fails, naming Vault and
	// what to do.
	root, err := admin.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = eng.Outputs(ctx, bp.Name())
	if err == nil || !strings.Contains(err.Error(), "sealed") || !strings.Contains(err.Error(), "unseal it") {
		t.Errorf("outputs with Vault sealed: %v", err)
	}
	t.Logf("with Vault sealed: %v", err)
	if _, err := (&vaultserver.Server{Dir: vaultserver.DirIn(stateDir), Binary: localtest.VaultBinary(t)}).Ensure(ctx); err != nil {
		t.Fatal(err)
	}

	// A lost (or lapsed) token does not block down: it mints a new one
	// to decrypt the state, then removes everything.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	downAll(t, p, bps)
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("down left the state token file: %v", err)
	}
	// down stopped the idle local Vault: start it to look.
	if admin, err = (&vaultserver.Server{Dir: vaultserver.DirIn(stateDir), Binary: localtest.VaultBinary(t)}).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ = admin.Client(ctx)
	if s, err := root.Logical().Read(vault.StateMount + "/keys/" + n.StateKey()); err != nil || s != nil {
		t.Errorf("down left the state key: %v, %v", s, err)
	}
	if pol, _ := root.Sys().GetPolicy(n.StatePolicy()); pol != "" {
		t.Errorf("down left the state policy %s", n.StatePolicy())
	}

	// A cluster moved to the passphrase keeps its retired Vault key (the
	// backend's history is encrypted with it) until down deletes it.
	mustUp(t, p, bps)
	if err := eng.Rekey(ctx, bp.Name(), pp); err != nil {
		t.Fatalf("rekey to passphrase: %v", err)
	}
	cur, _, err := eng.StackSecrets(bp.Name())
	if err != nil || cur.Retired == nil || cur.Retired.Provider != n.StateSecretsURL() {
		t.Fatalf("after rekey to passphrase the record is %+v, %v; want the Vault key retired", cur, err)
	}
	if r := p.Up(ctx, noVaultState(bps), nil)[0]; r.Err != nil {
		t.Fatalf("up on passphrase state: %v", r.Err)
	}
	if cur, _, _ = eng.StackSecrets(bp.Name()); cur.Retired == nil {
		t.Fatalf("up forgot the retired Vault key: %+v", cur)
	}
	downAll(t, p, bps)
	if admin, err = (&vaultserver.Server{Dir: vaultserver.DirIn(stateDir), Binary: localtest.VaultBinary(t)}).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ = admin.Client(ctx)
	if s, err := root.Logical().Read(vault.StateMount + "/keys/" + n.StateKey()); err != nil || s != nil {
		t.Errorf("down left the retired state key: %v, %v", s, err)
	}
}

// noVaultState is bps with passphrase state secrets.
func noVaultState(bps []*blueprints.Blueprint) []*blueprints.Blueprint {
	out := make([]*blueprints.Blueprint, len(bps))
	for i, bp := range bps {
		c := *bp
		c.Spec.State.SecretsProvider = v1alpha1.StateSecretsPassphrase
		out[i] = &c
	}
	return out
}

func mustPassphrase(t *testing.T, stateDir string) string {
	t.Helper()
	p, err := engine.ResolvePassphrase(stateDir, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.Reveal()
}
