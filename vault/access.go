package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Environment variables an operator uses to hand secprov a Vault identity
// for an existing Vault (spec.vault.address set). Only one is needed: a
// token, or an AppRole role ID and secret ID.
const (
	EnvToken       = "VAULT_TOKEN"
	EnvCACert      = "VAULT_CACERT"
	EnvRoleID      = "VAULT_ROLE_ID"
	EnvSecretID    = "VAULT_SECRET_ID"
	EnvAppRolePath = "VAULT_APPROLE_PATH" // auth mount of the AppRole; default approle
)

// Access says how to reach one Vault and who to be there. It holds paths,
// never secrets, so it can sit in Pulumi state and in logs.
type Access struct {
	// Address is the Vault URL, https://host:port.
	Address string `json:"address"`
	// CAFile is a PEM bundle that verifies Vault's certificate; empty uses
	// VAULT_CACERT, else the system roots.
	CAFile string `json:"caFile,omitempty"`
	// TokenFile holds the token to use (0600). Empty: VAULT_TOKEN, else an
	// AppRole login with VAULT_ROLE_ID and VAULT_SECRET_ID.
	TokenFile string `json:"tokenFile,omitempty"`
}

// Client returns a Vault client for a, authenticated. Errors name the Vault
// and say what to do; they never contain the token.
func (a Access) Client(ctx context.Context) (*api.Client, error) {
	c, err := a.Anonymous()
	if err != nil {
		return nil, err
	}
	switch {
	case a.TokenFile != "":
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("vault %s: read token file: %w", a.Address, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("vault %s: token file %s is empty", a.Address, a.TokenFile)
		}
		c.SetToken(tok)
	case os.Getenv(EnvToken) != "":
		c.SetToken(strings.TrimSpace(os.Getenv(EnvToken)))
	case os.Getenv(EnvRoleID) != "":
		if err := appRoleLogin(ctx, c); err != nil {
			return nil, fmt.Errorf("vault %s: %w", a.Address, err)
		}
	default:
		return nil, fmt.Errorf("vault %s: no credentials: set %s, or %s and %s for an AppRole login", a.Address, EnvToken, EnvRoleID, EnvSecretID)
	}
	return c, nil
}

// Anonymous returns a client for a without a token, for logins.
func (a Access) Anonymous() (*api.Client, error) {
	if a.Address == "" {
		return nil, errors.New("vault: no address: set spec.vault.address or leave it empty for the local Vault")
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault %s: %w", a.Address, cfg.Error)
	}
	cfg.Address = a.Address
	cfg.MaxRetries = 0
	caFile := a.CAFile
	if caFile == "" {
		caFile = os.Getenv(EnvCACert)
	}
	if caFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caFile}); err != nil {
			return nil, fmt.Errorf("vault %s: CA bundle %s: %w", a.Address, caFile, err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", a.Address, err)
	}
	// api.NewClient picks up VAULT_TOKEN and friends from the environment;
	// decide explicitly instead.
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

func appRoleLogin(ctx context.Context, c *api.Client) error {
	mount := os.Getenv(EnvAppRolePath)
	if mount == "" {
		mount = "approle"
	}
	secret, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{
		"role_id": os.Getenv(EnvRoleID), "secret_id": os.Getenv(EnvSecretID),
	})
	if err != nil {
		return fmt.Errorf("AppRole login at auth/%s failed (check %s and %s): %w", mount, EnvRoleID, EnvSecretID, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return fmt.Errorf("AppRole login at auth/%s returned no token", mount)
	}
	c.SetToken(secret.Auth.ClientToken)
	return nil
}
