// Package localtest gives tests the cached control-plane binaries of the
// pinned toolchain, or skips them with the reason.
package localtest

import (
	"os"
	"path/filepath"
	"testing"

	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/paths"
)

// Binaries returns the toolchain's etcd and Kubernetes control-plane
// binaries from the cache, or skips the test under -short (real control
// planes take seconds) or when they are not installed.
func Binaries(tb testing.TB) local.Binaries {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping: starts real control planes (-short)")
	}
	cache, err := paths.CacheDir()
	if err != nil {
		tb.Skipf("skipping: no toolchain cache: %v", err)
	}
	k := filepath.Join(cache, "tools", "kubernetes", "v1.37.2")
	b := local.Binaries{Etcd: filepath.Join(cache, "tools", "etcd", "v3.7.3", "etcd"),
		APIServer: filepath.Join(k, local.APIServer), ControllerManager: filepath.Join(k, local.ControllerManager), Scheduler: filepath.Join(k, local.Scheduler)}
	// The test binary serves kms-plugin (enginetest.ServeIfPlugin).
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	b.KMSPlugin = self
	for _, p := range []string{b.Etcd, b.APIServer, b.ControllerManager, b.Scheduler} {
		if _, err := os.Stat(p); err != nil {
			tb.Skipf("skipping: toolchain not installed (make tools): %v", err)
		}
	}
	return b
}

// Toolchain is Binaries by name, as provision.Config takes them.
func Toolchain(tb testing.TB) cluster.Binaries {
	b := Binaries(tb)
	return cluster.Binaries{local.Etcd: b.Etcd, local.APIServer: b.APIServer, local.ControllerManager: b.ControllerManager,
		local.Scheduler: b.Scheduler, cluster.Self: b.KMSPlugin}
}

// VaultBinary returns the toolchain's vault binary, which runs the local
// Vault of clusters built from blueprints without spec.vault.address, or
// skips the test.
func VaultBinary(tb testing.TB) string {
	tb.Helper()
	cache, err := paths.CacheDir()
	if err != nil {
		tb.Skipf("skipping: no toolchain cache: %v", err)
	}
	p := filepath.Join(cache, "tools", "vault", "v1.17.6", "vault")
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("skipping: vault not installed (make tools): %v", err)
	}
	return p
}
