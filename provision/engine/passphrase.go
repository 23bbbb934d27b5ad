package engine

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"secprov.dev/secprov/provision/paths"
)

// EnvPassphrase names the environment variable holding the passphrase that
// encrypts secrets in the Pulumi state. Teams sharing a backend set it (from
// their secret store) so every member decrypts the same state.
const EnvPassphrase = "SECPROV_PASSPHRASE"

// PassphraseFile is where a generated passphrase is kept, relative to the
// state dir.
const PassphraseFile = "passphrase"

// Passphrase encrypts secrets in the Pulumi state (Pulumi's "passphrase"
// secrets provider). It redacts itself when printed or logged; Reveal is
// the only way to the value.
type Passphrase struct{ v string }

// NewPassphrase wraps s.
func NewPassphrase(s string) Passphrase { return Passphrase{v: s} }

// Reveal returns the passphrase itself. Only the engine's environment
// needs it.
func (p Passphrase) Reveal() string { return p.v }

// IsZero reports whether no passphrase is set.
func (p Passphrase) IsZero() bool { return p.v == "" }

func (p Passphrase) String() string                { return "[redacted]" }
func (p Passphrase) GoString() string              { return "engine.Passphrase{[redacted]}" }
func (p Passphrase) LogValue() slog.Value          { return slog.StringValue("[redacted]") }
func (p Passphrase) MarshalText() ([]byte, error)  { return []byte("[redacted]"), nil }
func (p Passphrase) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("[redacted]")) }

// ResolvePassphrase returns the passphrase to use: fromEnv (the value of
// SECPROV_PASSPHRASE) if set; else the one stored at
// <stateDir>/passphrase; else a new one, 32 random bytes in base64, written
// there with mode 0600 (its directory 0700) so later runs reuse it.
//
// Losing the generated file means losing the secrets in the state (the
// resources are still described there, but encrypted values cannot be
// read): back it up with the state, or use SECPROV_PASSPHRASE.
func ResolvePassphrase(stateDir, fromEnv string) (Passphrase, error) {
	if fromEnv != "" {
		return NewPassphrase(fromEnv), nil
	}
	path := filepath.Join(stateDir, PassphraseFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		p := strings.TrimSpace(string(b))
		if p == "" {
			return Passphrase{}, fmt.Errorf("passphrase file %s is empty: restore it from a backup, or set %s", path, EnvPassphrase)
		}
		if err := checkPrivate(path); err != nil {
			return Passphrase{}, err
		}
		return NewPassphrase(p), nil
	case !errors.Is(err, fs.ErrNotExist):
		return Passphrase{}, fmt.Errorf("reading the state passphrase: %w", err)
	}
	if err := paths.EnsurePrivateDir(stateDir); err != nil {
		return Passphrase{}, fmt.Errorf("creating the state directory: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Passphrase{}, fmt.Errorf("generating a state passphrase: %w", err)
	}
	p := base64.StdEncoding.EncodeToString(raw)
	// O_EXCL: if another secprov raced us, use its passphrase, not ours.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ResolvePassphrase(stateDir, "")
	}
	if err != nil {
		return Passphrase{}, fmt.Errorf("storing the state passphrase: %w", err)
	}
	if _, err := f.WriteString(p + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return Passphrase{}, fmt.Errorf("storing the state passphrase in %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return Passphrase{}, fmt.Errorf("storing the state passphrase in %s: %w", path, err)
	}
	return NewPassphrase(p), nil
}

// checkPrivate refuses a passphrase file others can read: it would mean the
// secrets in the state are not secret any more.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("passphrase file %s has mode %v, readable by others: run `chmod 600 %s` (and consider the secrets in the state exposed)",
			path, fi.Mode().Perm(), path)
	}
	return nil
}
