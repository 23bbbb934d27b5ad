// Package paths decides where secprov keeps state and caches, so every
// command and the resource provider agree without passing globals around.
package paths

import (
	"errors"
	"os"
	"path/filepath"
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

// ClusterDir is the private directory of one cluster inside the state root.
func ClusterDir(stateDir, cluster string) string {
	return filepath.Join(stateDir, "clusters", cluster)
}

// EnsurePrivateDir creates dir (and parents) and forces mode 0700 on dir,
// since it will hold keys and kubeconfigs.
func EnsurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}
