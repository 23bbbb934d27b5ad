package provision

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/vault"
)

// spec.state.secretsProvider: vault keeps the key that encrypts the
// secrets in a cluster's state in the cluster's Vault (the local Vault, or
// the operator's at spec.vault.address): a transit key per cluster in the
// secprov-state mount, and a periodic orphan token, 0600 in
// state-tokens/NAME (outside the cluster directory, which the cluster's
// deletion removes before the stack is), whose policy can only encrypt and
// decrypt with that key. The engine gives Pulumi's hashivault secrets
// provider the Vault address, CA and that token; the key never leaves
// Vault. They are made before the stack (the state cannot hold the key
// that encrypts it) and removed by down after the stack.

// StateTokenFile is where a cluster's state token is kept.
func StateTokenFile(stateDir, name string) string {
	return filepath.Join(stateDir, "state-tokens", name)
}

// useStateSecrets tells the engine how bp's stack encrypts its secrets,
// making the Vault key and token first for vault.
func (p *Provisioner) useStateSecrets(ctx context.Context, bp *blueprints.Blueprint) error {
	want := bp.Spec.State.SecretsProvider
	if p.cfg.StateSecrets != "" { // secprov's --secrets-provider
		want = p.cfg.StateSecrets
	}
	ss, err := p.StateSecretsFor(ctx, bp.Name(), bp.Spec, want)
	if err != nil {
		return err
	}
	return p.cfg.Engine.UseSecrets(ctx, bp.Name(), ss)
}

// ensureStateSecrets makes the cluster's state key and token in its Vault
// and returns the engine's settings for them.
func (p *Provisioner) ensureStateSecrets(ctx context.Context, name string, spec v1alpha1.Spec) (engine.StackSecrets, error) {
	va, err := p.vaultFor(ctx, spec)
	if err != nil {
		return engine.StackSecrets{}, fmt.Errorf("state secrets in Vault (spec.state.secretsProvider: vault): %w", err)
	}
	if _, err := paths.ClusterDir(p.cfg.StateDir, name); err != nil {
		return engine.StackSecrets{}, err
	}
	s, err := vault.NewSetup(ctx, *va, p.cfg.Log)
	if err != nil {
		return engine.StackSecrets{}, fmt.Errorf("state secrets in Vault (spec.state.secretsProvider: vault): %w", err)
	}
	n := vault.NamesFor(name, spec)
	tokenFile := StateTokenFile(p.cfg.StateDir, name)
	if err := s.EnsureStateSecrets(ctx, n, tokenFile); err != nil {
		return engine.StackSecrets{}, fmt.Errorf("state secrets in Vault (spec.state.secretsProvider: vault): %w", err)
	}
	return engine.StackSecrets{Provider: n.StateSecretsURL(), VaultAddress: va.Address, VaultCACert: va.CAFile, TokenFile: tokenFile}, nil
}

// StateSecretsFor returns the engine settings that encrypt the state of
// cluster name (of spec) with provider, making the Vault key and token
// first for vault: passphrase, vault, or the hashivault:// URL of a key
// the operator manages (the engine then uses VAULT_ADDR, VAULT_CACERT and
// VAULT_TOKEN of secprov's environment). `up` and `state rekey` use it.
func (p *Provisioner) StateSecretsFor(ctx context.Context, name string, spec v1alpha1.Spec, provider string) (engine.StackSecrets, error) {
	switch {
	case provider == v1alpha1.StateSecretsVault:
		return p.ensureStateSecrets(ctx, name, spec)
	case strings.HasPrefix(provider, "hashivault://"):
		if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
			return engine.StackSecrets{}, fmt.Errorf("secrets provider %s: set VAULT_ADDR and VAULT_TOKEN (a token that may encrypt and decrypt with that key; VAULT_CACERT for a private CA), or use vault to let secprov make the key", provider)
		}
		return engine.StackSecrets{Provider: provider, VaultAddress: os.Getenv("VAULT_ADDR"), VaultCACert: os.Getenv("VAULT_CACERT")}, nil
	case provider == v1alpha1.StateSecretsPassphrase || provider == "":
		return engine.StackSecrets{Provider: engine.PassphraseProvider}, nil
	}
	return engine.StackSecrets{}, fmt.Errorf("unknown secrets provider %q: use passphrase, vault or hashivault://KEY?engine=MOUNT", provider)
}

// stateVaultSetup is an administrative Vault session for the Vault that
// holds a stack's state key (ss): the local Vault, or the operator's with
// their VAULT_TOKEN.
func (p *Provisioner) stateVaultSetup(ctx context.Context, ss engine.StackSecrets) (*vault.Setup, error) {
	va := &vault.Access{Address: ss.VaultAddress, CAFile: ss.VaultCACert}
	if local, err := p.localVault(ctx); err == nil && local.Address == ss.VaultAddress {
		va = local
	}
	return vault.NewSetup(ctx, *va, p.cfg.Log)
}

// refreshStateToken renews (or re-mints) the state token of a secprov-made
// key before down destroys the stack, which needs it to decrypt.
func (p *Provisioner) refreshStateToken(ctx context.Context, name string, ss engine.StackSecrets) error {
	if !ss.IsVault() || ss.TokenFile == "" {
		return nil // passphrase, or an operator's hashivault:// key with their token
	}
	s, err := p.stateVaultSetup(ctx, ss)
	if err != nil {
		return fmt.Errorf("the Vault that encrypts the state of %s: %w", name, err)
	}
	if err := s.EnsureStateSecrets(ctx, vault.Names{Cluster: name}, ss.TokenFile); err != nil {
		return fmt.Errorf("the Vault that encrypts the state of %s: %w", name, err)
	}
	return nil
}

// deleteStateSecrets removes the state key and token of a cluster whose
// stack is gone (ss is how it was encrypted). An operator's own
// hashivault:// key is theirs and stays.
func (p *Provisioner) deleteStateSecrets(ctx context.Context, name string, ss engine.StackSecrets) error {
	if !ss.IsVault() || ss.TokenFile == "" {
		return nil
	}
	s, err := p.stateVaultSetup(ctx, ss)
	if err != nil {
		return fmt.Errorf("removing the state key of %s from Vault: %w", name, err)
	}
	if err := s.DeleteStateSecrets(ctx, vault.Names{Cluster: name}, ss.TokenFile); err != nil {
		return fmt.Errorf("removing the state key of %s from Vault: %w", name, err)
	}
	return nil
}
