// Package paths decides where secprov keeps state and caches, so every
// command and the resource provider agree without passing globals around.
package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"secprov.dev/secprov/blueprints"
)

// Env lists the environment variables that override the defaults.
const (
	EnvHome  = "SECPROV_HOME"  // state root (clusters, Pulumi backend, passphrase)
	EnvCache = "SECPROV_CACHE" // toolchain cache root
)

// StateDir is secprov's state root: $SECPROV_HOME, else
// $XDG_STATE_HOME/secprov, else ~/.local/state/secprov.
func StateDir() (string, error) {
	if d := os.Getenv(EnvHome); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "secprov"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("cannot find a state directory: set SECPROV_HOME or HOME")
	}
	return filepath.Join(home, ".local", "state", "secprov"), nil
}

// CacheDir is the toolchain cache root: $SECPROV_CACHE, else
// $XDG_CACHE_HOME/secprov, else ~/.cache/secprov.
func CacheDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "secprov"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("cannot find a cache directory: set SECPROV_CACHE or HOME")
	}
	return filepath.Join(home, ".cache", "secprov"), nil
}

// ClusterNameRule says in words what a cluster name may be, for messages.
const ClusterNameRule = "a cluster name is a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"

// ErrClusterName is wrapped by every error about a malformed cluster name.
var ErrClusterName = errors.New("invalid cluster name")

// CheckClusterName accepts exactly the names a blueprint's metadata.name
// may have. A name that passes cannot leave the clusters directory (no
// '/', no '..', not empty), so it is safe to join onto a path.
func CheckClusterName(name string) error {
	if blueprints.IsDNSLabel(name) {
		return nil
	}
	return fmt.Errorf("%w %s: %s", ErrClusterName, quoteShort(name), ClusterNameRule)
}

// quoteShort quotes a name for a message, escaping control characters and
// cutting a long one short so a hostile argument cannot flood the terminal.
func quoteShort(s string) string {
	const max = 70
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// ClusterDir is the private directory of one cluster inside the state root.
// It refuses names that are not cluster names, so a name from the command
// line or a state file can never address a path outside the state root.
func ClusterDir(stateDir, cluster string) (string, error) {
	if err := CheckClusterName(cluster); err != nil {
		return "", err
	}
	return filepath.Join(ClustersDir(stateDir), cluster), nil
}

// ClustersDir holds one directory per cluster.
func ClustersDir(stateDir string) string { return filepath.Join(stateDir, "clusters") }

// EnsurePrivateDir creates dir (and parents) and forces mode 0700 on dir,
// since it will hold keys and kubeconfigs.
func EnsurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}
