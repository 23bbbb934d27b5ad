package vaultserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"secprov.dev/secprov/internal/atomicfile"
)

// layout names the files of a local Vault under its directory.
type layout string

func (l layout) dir() string        { return string(l) }
func (l layout) lockFile() string   { return filepath.Join(string(l), "lock") }
func (l layout) stateFile() string  { return filepath.Join(string(l), "server.json") }
func (l layout) configFile() string { return filepath.Join(string(l), "vault.hcl") }
func (l layout) pidFile() string    { return filepath.Join(string(l), "vault.pid") }
func (l layout) logFile() string    { return filepath.Join(string(l), "vault.log") }
func (l layout) auditLog() string   { return filepath.Join(string(l), "audit.log") }
func (l layout) initFile() string   { return filepath.Join(string(l), "init.json") }
func (l layout) tokenFile() string  { return filepath.Join(string(l), "root-token") }
func (l layout) dataDir() string    { return filepath.Join(string(l), "data") }
func (l layout) tlsDir() string     { return filepath.Join(string(l), "tls") }
func (l layout) homeDir() string    { return filepath.Join(string(l), "home") }
func (l layout) caCert() string     { return filepath.Join(string(l), "tls", "ca.crt") }
func (l layout) caKey() string      { return filepath.Join(string(l), "tls", "ca.key") }
func (l layout) serverCert() string { return filepath.Join(string(l), "tls", "server.crt") }
func (l layout) serverKey() string  { return filepath.Join(string(l), "tls", "server.key") }

// ours lists the names Ensure creates in the directory; Destroy refuses to
// remove a directory holding anything else, so a mistaken Dir (a home
// directory, a cluster's state) is never wiped.
var ours = []string{"lock", "server.json", "vault.hcl", "vault.pid", "vault.log", "audit.log", "init.json", "root-token", "data", "tls", "home"}

// serverState is the server.json file: what must stay the same across
// runs. The port is chosen once, because clusters set up against the local
// Vault keep its address.
type serverState struct {
	Port int `json:"port"`
}

func readState(path string) (serverState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return serverState{}, err
	}
	var st serverState
	if err := json.Unmarshal(data, &st); err != nil || st.Port <= 0 || st.Port > 65535 {
		return serverState{}, fmt.Errorf("%s is damaged (no valid port): remove it and secprov picks a new port (clusters set up against the old address then need secprov up again)", path)
	}
	return st, nil
}

// initData is init.json: what sys/init returned. Whoever holds it owns the
// local Vault, hence 0600 in a 0700 directory.
type initData struct {
	UnsealKeysB64 []string `json:"unsealKeysB64"`
	RootToken     string   `json:"rootToken"`
}

func readInit(path string) (unsealKey, rootToken secret, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	var d initData
	if err := json.Unmarshal(data, &d); err != nil {
		// Not %w: a JSON syntax error can quote the offending bytes.
		return "", "", errors.New("not valid JSON")
	}
	if len(d.UnsealKeysB64) != 1 || d.UnsealKeysB64[0] == "" || d.RootToken == "" {
		return "", "", errors.New("it does not hold exactly one unseal key and a root token")
	}
	return secret(d.UnsealKeysB64[0]), secret(d.RootToken), nil
}

// secret is a value that must never reach a log, an error or a terminal:
// every fmt verb and slog print it redacted. reveal is the only way out.
type secret string

const redacted = "[redacted]"

func (s secret) reveal() string             { return string(s) }
func (secret) String() string               { return redacted }
func (secret) GoString() string             { return redacted }
func (secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (secret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redacted) }
func (secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// scrubAll replaces every secret's value in msg.
func scrubAll(msg string, secrets ...secret) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, string(s), redacted)
		}
	}
	return msg
}

// scrubbed is an error whose text had secrets removed; it keeps the
// original in its chain for errors.Is/As, whose callers don't print it.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// scrubErr removes the given secrets from err's text: Vault's API errors
// quote what the server said, and a server's echo must not leak a key.
func scrubErr(err error, secrets ...secret) error {
	if err == nil {
		return nil
	}
	msg := scrubAll(err.Error(), secrets...)
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

// writeFile replaces path with data, mode perm from the first byte on and
// synced before the rename: after a crash the unseal key must be either
// absent (init not done) or whole.
func writeFile(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

// privateDir creates dir (and parents) and forces 0700 on it.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}
