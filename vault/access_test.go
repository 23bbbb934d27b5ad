package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// An operator's own Vault is reached with VAULT_TOKEN, or with an AppRole
// login (VAULT_ROLE_ID, VAULT_SECRET_ID, VAULT_APPROLE_PATH); a token file
// wins over both. Against a real Vault.
func TestAccessCredentials(t *testing.T) {
	d := vaulttest.StartDev(t)
	ctx := context.Background()
	root, err := d.Access().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Sys().PutPolicy("secprov-setup-x", `path "sys/mounts" { capabilities = ["read"] }`))
	must(root.Sys().EnableAuthWithOptions("ops-approle", &api.EnableAuthOptions{Type: "approle"}))
	_, err = root.Logical().Write("auth/ops-approle/role/secprov", map[string]any{"token_policies": "secprov-setup-x", "token_ttl": "10m"})
	must(err)
	rid, err := root.Logical().Read("auth/ops-approle/role/secprov/role-id")
	must(err)
	sid, err := root.Logical().Write("auth/ops-approle/role/secprov/secret-id", nil)
	must(err)
	userToken, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"secprov-setup-x"}, TTL: "10m"})
	must(err)

	policies := func(a vault.Access) ([]string, error) {
		c, err := a.Client(ctx)
		if err != nil {
			return nil, err
		}
		s, err := c.Auth().Token().LookupSelf()
		if err != nil {
			return nil, err
		}
		return s.TokenPolicies()
	}
	ext := vault.Access{Address: d.Addr}
	clear := func() {
		for _, e := range []string{vault.EnvToken, vault.EnvRoleID, vault.EnvSecretID, vault.EnvAppRolePath, vault.EnvCACert} {
			t.Setenv(e, "")
		}
	}

	t.Run("no credentials", func(t *testing.T) {
		clear()
		_, err := ext.Client(ctx)
		if err == nil || !strings.Contains(err.Error(), vault.EnvToken) || !strings.Contains(err.Error(), vault.EnvRoleID) {
			t.Errorf("err = %v, want one naming %s and %s", err, vault.EnvToken, vault.EnvRoleID)
		}
	})
	t.Run("VAULT_TOKEN", func(t *testing.T) {
		clear()
		t.Setenv(vault.EnvToken, userToken.Auth.ClientToken)
		got, err := policies(ext)
		if err != nil || !slices.Contains(got, "secprov-setup-x") {
			t.Errorf("policies = %v, %v", got, err)
		}
	})
	t.Run("AppRole", func(t *testing.T) {
		clear()
		t.Setenv(vault.EnvRoleID, rid.Data["role_id"].(string))
		t.Setenv(vault.EnvSecretID, sid.Data["secret_id"].(string))
		t.Setenv(vault.EnvAppRolePath, "ops-approle")
		got, err := policies(ext)
		if err != nil || !slices.Contains(got, "secprov-setup-x") {
			t.Errorf("policies = %v, %v", got, err)
		}
	})
	t.Run("AppRole with a wrong secret ID", func(t *testing.T) {
		clear()
		t.Setenv(vault.EnvRoleID, rid.Data["role_id"].(string))
		t.Setenv(vault.EnvSecretID, "not-the-secret")
		t.Setenv(vault.EnvAppRolePath, "ops-approle")
		_, err := ext.Client(ctx)
		if err == nil || !strings.Contains(err.Error(), "AppRole login at auth/ops-approle failed") || strings.Contains(err.Error(), "not-the-secret") {
			t.Errorf("err = %v, want a failed AppRole login that does not repeat the secret", err)
		}
	})
	t.Run("a token file wins over the environment", func(t *testing.T) {
		clear()
		t.Setenv(vault.EnvToken, userToken.Auth.ClientToken)
		got, err := policies(d.Access())
		if err != nil || !slices.Contains(got, "root") {
			t.Errorf("policies = %v, %v; want root from the token file", got, err)
		}
		empty := filepath.Join(t.TempDir(), "empty")
		must(os.WriteFile(empty, nil, 0o600))
		if _, err := (vault.Access{Address: d.Addr, TokenFile: empty}).Client(ctx); err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("empty token file: err = %v", err)
		}
	})
}
