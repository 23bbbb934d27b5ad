package local

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

func registry() *provider.Registry {
	reg, err := provider.NewRegistry(Kinds()...)
	if err != nil {
		panic(err)
	}
	return reg
}

func TestMain(m *testing.M) {
	enginetest.ServeIfPlugin(registry())
	os.Exit(m.Run())
}

// testBinaries returns the cached control-plane binaries or skips.
func testBinaries(t *testing.T) Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: starts a real control plane (-short)")
	}
	cache, err := paths.CacheDir()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	k := filepath.Join(cache, "tools", "kubernetes", "v1.37.2")
	b := Binaries{Etcd: filepath.Join(cache, "tools", "etcd", "v3.7.3", "etcd"),
		APIServer: filepath.Join(k, APIServer), ControllerManager: filepath.Join(k, ControllerManager), Scheduler: filepath.Join(k, Scheduler)}
	for _, p := range []string{b.Etcd, b.APIServer, b.ControllerManager, b.Scheduler} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("skipping: toolchain not installed (make tools): %v", err)
		}
	}
	return b
}

func TestUpNoopDown(t *testing.T) {
	bins := testBinaries(t)
	eng, stateDir := enginetest.NewEngine(t, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	bps, err := blueprints.Load("../../blueprints/examples/test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Blueprint: bps[0].Blueprint, Dir: paths.ClusterDir(stateDir, bps[0].Name()), Binaries: bins}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	prog, err := c.Program()
	if err != nil {
		t.Fatal(err)
	}
	onEvent := func(e engine.Event) { t.Logf("%s %s %s %s %v %s", e.Kind, e.Op, e.Type, e.Name, e.Elapsed, e.Message) }
	start := time.Now()
	if _, err := eng.Up(ctx, c.Blueprint.Metadata.Name, prog, engine.Options{OnEvent: onEvent}); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("up took %v", time.Since(start))
	t.Cleanup(func() {
		if _, err := eng.Destroy(context.Background(), c.Blueprint.Metadata.Name, engine.Options{}); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	prog, _ = c.Program()
	plan, err := eng.Preview(ctx, c.Blueprint.Metadata.Name, prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.HasChanges() {
		t.Errorf("second preview has changes: %+v", plan)
	}
}
