// Package enginetest runs secprov resource types against the real Pulumi
// engine in tests. The test binary itself serves as the provider plugin:
//
//	func TestMain(m *testing.M) {
//		enginetest.ServeIfPlugin(myRegistry) // returns unless started by the engine
//		os.Exit(m.Run())
//	}
//
// and NewEngine gives each test an Engine with a private state dir whose
// plugin link points at the test binary. It also provides secprov:test:File,
// a small resource type that exercises every part of the protocol.
package enginetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/vault/kms"
)

// PulumiVersion is the engine version the toolchain builds.
const PulumiVersion = "v3.259.0"

// EnvPulumiRoot overrides where tests look for the Pulumi toolchain.
const EnvPulumiRoot = "SECPROV_PULUMI_ROOT"

// ServeIfPlugin serves reg and exits if this process was started by the
// engine as pulumi-resource-secprov; otherwise it returns at once. Call it
// first thing in TestMain.
//
// It also serves `kms-plugin` (vault/kms.MainIfPlugin): clusters built by
// tests run the test binary as their KMS plugin.
func ServeIfPlugin(reg *provider.Registry) {
	kms.MainIfPlugin()
	if filepath.Base(os.Args[0]) != provider.PluginName {
		return
	}
	if err := provider.Serve(context.Background(), reg, "0.0.1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// PulumiRoot returns the Pulumi toolchain directory ($SECPROV_PULUMI_ROOT,
// else the toolchain cache) or skips the test when it is missing or the
// tests run with -short.
func PulumiRoot(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("skipping: the real Pulumi engine test takes seconds (-short)")
	}
	root := os.Getenv(EnvPulumiRoot)
	if root == "" {
		cache, err := paths.CacheDir()
		if err != nil {
			tb.Skipf("skipping: no Pulumi engine: %v", err)
		}
		root = filepath.Join(cache, "tools", "pulumi", PulumiVersion)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "pulumi")); err != nil {
		tb.Skipf("skipping: Pulumi engine %s not installed (run `secprov tools install` or set %s): %v",
			PulumiVersion, EnvPulumiRoot, err)
	}
	return root
}

// NewEngine returns an engine over a fresh state dir (returned too) that
// serves the test binary as the provider plugin.
func NewEngine(tb testing.TB, log *slog.Logger) (*engine.Engine, string) {
	tb.Helper()
	return NewEngineWith(tb, log, engine.Config{})
}

// NewEngineWith is NewEngine with cfg's Backend and Passphrase (the rest
// is filled in as NewEngine does).
func NewEngineWith(tb testing.TB, log *slog.Logger, cfg engine.Config) (*engine.Engine, string) {
	tb.Helper()
	root := PulumiRoot(tb)
	stateDir := filepath.Join(tb.TempDir(), "state")
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	e, err := engine.New(context.Background(), engine.Config{
		PulumiRoot:       root,
		StateDir:         stateDir,
		Backend:          cfg.Backend,
		Passphrase:       cfg.Passphrase,
		PluginExecutable: exe,
		Log:              log,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e, stateDir
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}
