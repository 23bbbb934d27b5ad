package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"secprov.dev/secprov/internal/atomicfile"
)

// Secrets in a stack's state are encrypted either with the passphrase
// (Pulumi's "passphrase" provider, the default) or by Vault Transit
// (Pulumi's "hashivault://KEY?engine=MOUNT" provider): the engine asks
// Vault to wrap the stack's data key, so the state is readable only with
// a Vault token allowed to decrypt with that key.
//
// Which one a stack uses is recorded twice: by Pulumi, in the stack's
// settings (Pulumi.<stack>.yaml, and in the checkpoint), and by secprov,
// in workspaces/<stack>/secrets.json, which says where the engine finds
// Vault and the token. The token itself stays in its 0600 file and only
// reaches the engine's environment.

// PassphraseProvider names the passphrase secrets provider.
const PassphraseProvider = "passphrase"

// StackSecrets says how a stack's state secrets are encrypted.
type StackSecrets struct {
	// Provider is PassphraseProvider or a hashivault:// URL.
	Provider string `json:"provider"`
	// VaultAddress, VaultCACert and TokenFile: where the engine reaches
	// Vault and the token it uses (hashivault only). An empty TokenFile
	// leaves VAULT_TOKEN of secprov's environment to the engine.
	VaultAddress string `json:"vaultAddress,omitempty"`
	VaultCACert  string `json:"vaultCACert,omitempty"`
	TokenFile    string `json:"tokenFile,omitempty"`
	// Retired is the secprov-made Vault key the stack was moved away from
	// by Rekey: the backend's history and backups are still encrypted
	// with it, so it is kept until the cluster is deleted.
	Retired *StackSecrets `json:"retired,omitempty"`
}

// IsVault reports whether the provider is Vault Transit.
func (s StackSecrets) IsVault() bool { return strings.HasPrefix(s.Provider, "hashivault://") }

// Kind is "vault" or "passphrase", for status.
func (s StackSecrets) Kind() string { return providerKind(s.provider()) }

// String names the provider for messages.
func (s StackSecrets) String() string {
	if s.IsVault() {
		return fmt.Sprintf("Vault Transit (%s at %s)", s.Provider, s.VaultAddress)
	}
	return "a passphrase"
}

func (s StackSecrets) provider() string {
	if s.Provider == "" {
		return PassphraseProvider
	}
	return s.Provider
}

func (e *Engine) secretsFile(stack string) string {
	return filepath.Join(e.workRoot, stack, "secrets.json")
}

// StackSecrets returns how stack's secrets are encrypted, as recorded in
// this state directory; ok is false when nothing is recorded (a stack
// made before, or from another state directory: passphrase unless its
// settings say otherwise).
func (e *Engine) StackSecrets(stack string) (StackSecrets, bool, error) {
	if err := checkStackName(stack); err != nil {
		return StackSecrets{}, false, err
	}
	return e.stackSecrets(stack)
}

func (e *Engine) stackSecrets(stack string) (StackSecrets, bool, error) {
	return readStackSecrets(e.secretsFile(stack), stack)
}

// RecordedSecrets is StackSecrets without an engine: how the state of a
// stack made from stateDir is encrypted, as recorded there (for status).
func RecordedSecrets(stateDir, stack string) (StackSecrets, bool, error) {
	if err := checkStackName(stack); err != nil {
		return StackSecrets{}, false, err
	}
	return readStackSecrets(filepath.Join(stateDir, "workspaces", stack, "secrets.json"), stack)
}

func readStackSecrets(file, stack string) (StackSecrets, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return StackSecrets{Provider: PassphraseProvider}, false, nil
	}
	if err != nil {
		return StackSecrets{}, false, fmt.Errorf("reading how the state of %q is encrypted: %w", stack, err)
	}
	var s StackSecrets
	if err := json.Unmarshal(b, &s); err != nil {
		return StackSecrets{}, false, fmt.Errorf("%s is unreadable (%v): remove it and run `secprov state rekey` for %s", file, err, stack)
	}
	return s, true, nil
}

// setStackSecrets records s for stack (0600, atomically).
func (e *Engine) setStackSecrets(stack string, s StackSecrets) error {
	dir := filepath.Join(e.workRoot, stack)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(e.secretsFile(stack), append(b, '\n'), 0o600)
}

// UseSecrets makes a new stack encrypt its secrets with want, and checks
// that an existing stack already does: moving an existing stack between
// providers is explicit (Rekey). A stack that exists is judged by
// Pulumi's own record of its provider.
func (e *Engine) UseSecrets(ctx context.Context, stack string, want StackSecrets) error {
	if err := checkStackName(stack); err != nil {
		return err
	}
	if cur, ok, err := e.StackSecrets(stack); err == nil && ok {
		if cur.Retired != nil && cur.Retired.Provider != want.Provider {
			want.Retired = cur.Retired // still to be deleted with the cluster
		}
		if reflect.DeepEqual(cur, want) {
			return nil // recorded by this state directory, unchanged
		}
	}
	exists, sure := e.stackExists(ctx, stack)
	if !sure {
		exists = true // other backends: trust the stack's settings, if any
	}
	if exists {
		cur, known, err := e.stackProvider(ctx, stack)
		if err != nil {
			return err
		}
		if known && providerKind(cur) != providerKind(want.provider()) {
			to := "vault"
			if !want.IsVault() {
				to = "passphrase"
			}
			return fmt.Errorf("the state of %q is encrypted with %s but secprov was asked for %s: move it with `secprov state rekey --cluster %s --to %s` (or ask for what it has)",
				stack, DescribeProvider(cur), want, stack, to)
		}
	}
	return e.setStackSecrets(stack, want)
}

// stackProvider reads the secrets provider Pulumi recorded for an
// existing stack (from the checkpoint, which every state directory sees);
// known is false for a stack without state yet.
func (e *Engine) stackProvider(ctx context.Context, stack string) (string, bool, error) {
	s, err := e.selectStack(ctx, stack)
	if errors.Is(err, ErrNoStack) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	dep, err := s.Export(ctx)
	if err != nil {
		return "", false, e.wrap("reading the state", stack, err, nil, "")
	}
	p := secretsProviderOf(dep.Deployment)
	return p, p != "", nil
}

// secretsProviderOf reads a deployment's secrets provider: "passphrase",
// the URL of a cloud provider (hashivault://…), or its type; "" when the
// deployment names none.
func secretsProviderOf(deployment json.RawMessage) string {
	var d struct {
		SecretsProviders *struct {
			Type  string          `json:"type"`
			State json.RawMessage `json:"state"`
		} `json:"secrets_providers"`
	}
	if len(deployment) == 0 || json.Unmarshal(deployment, &d) != nil || d.SecretsProviders == nil {
		return ""
	}
	if d.SecretsProviders.Type == PassphraseProvider {
		return PassphraseProvider
	}
	var st struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(d.SecretsProviders.State, &st)
	if st.URL == "" {
		return d.SecretsProviders.Type
	}
	return st.URL
}

func providerKind(p string) string {
	if strings.HasPrefix(p, "hashivault://") {
		return "vault"
	}
	return p
}

// DescribeProvider names a Pulumi secrets provider for people.
func DescribeProvider(p string) string {
	switch {
	case providerKind(p) == "vault":
		return "Vault Transit (" + p + ")"
	case p == PassphraseProvider:
		return "a passphrase"
	case p == "":
		return "nothing yet (no state)"
	}
	return p
}

// StateProvider reports how the stack's state secrets are encrypted, as
// Pulumi recorded it ("" when the stack has no state yet).
func (e *Engine) StateProvider(ctx context.Context, stack string) (string, error) {
	p, _, err := e.stackProvider(ctx, stack)
	return p, err
}

// Rekey re-encrypts the stack's secrets with to (Pulumi's
// change-secrets-provider: every secret is decrypted with the current
// provider and encrypted with the new one, in one state write) and then
// records it. The stack must not be locked.
func (e *Engine) Rekey(ctx context.Context, stack string, to StackSecrets) error {
	if err := e.checkUnlocked(ctx, stack); err != nil {
		return err
	}
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return err
	}
	var opts *auto.ChangeSecretsProviderOptions
	if !to.IsVault() {
		p := e.cfg.Passphrase.Reveal()
		opts = &auto.ChangeSecretsProviderOptions{NewPassphrase: &p}
	}
	// The new provider's Vault settings join the current ones' for this
	// one command: the engine decrypts with the old and encrypts with the
	// new.
	if to.IsVault() {
		env, err := vaultEnv(to)
		if err != nil {
			return err
		}
		e.remember(env["VAULT_SERVER_TOKEN"])
		if err := s.Workspace().SetEnvVars(env); err != nil {
			return err
		}
	}
	if cur, ok, _ := e.stackSecrets(stack); ok {
		switch {
		case cur.IsVault() && cur.TokenFile != "" && cur.Provider != to.Provider:
			retired := cur
			retired.Retired = nil
			to.Retired = &retired
		case cur.Retired != nil && cur.Retired.Provider != to.Provider:
			to.Retired = cur.Retired
		}
	}
	if err := s.ChangeSecretsProvider(ctx, to.provider(), opts); err != nil {
		return e.wrap("re-encrypting the state secrets", stack, err, nil,
			"The state was not changed: the engine writes it once, after every secret was re-encrypted.")
	}
	return e.setStackSecrets(stack, to)
}

// vaultEnv is the engine's environment for a hashivault provider: the
// token is read from its file for each command, so a renewed or re-minted
// token is picked up.
func vaultEnv(s StackSecrets) (map[string]string, error) {
	env := map[string]string{}
	if s.VaultAddress != "" {
		env["VAULT_SERVER_URL"] = s.VaultAddress
	}
	if s.VaultCACert != "" {
		env["VAULT_CACERT"] = s.VaultCACert
	}
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("the Vault token that decrypts the state secrets: %w (run `secprov up` to mint a new one)", err)
		}
		env["VAULT_SERVER_TOKEN"] = strings.TrimSpace(string(b))
	}
	return env, nil
}

// remember adds a secret the engine's output must never show.
func (e *Engine) remember(secret string) {
	if secret == "" {
		return
	}
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	if !slices.Contains(e.secrets, secret) {
		e.secrets = append(e.secrets, secret)
	}
}

// secretValues are the values redacted from the engine's output.
func (e *Engine) secretValues() []string {
	e.secretsMu.Lock()
	defer e.secretsMu.Unlock()
	return append([]string{e.cfg.Passphrase.Reveal()}, e.secrets...)
}
