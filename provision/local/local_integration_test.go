package local_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/vault/vaulttest"
)

func registry() *provider.Registry {
	reg, err := provider.NewRegistry(append(cluster.NewRegistry(local.New()).ResourceTypes(), vaultres.ResourceTypes()...)...)
	if err != nil {
		panic(err)
	}
	return reg
}

func TestMain(m *testing.M) {
	enginetest.ServeIfPlugin(registry())
	os.Exit(m.Run())
}

func TestUpNoopDown(t *testing.T) {
	bins := localtest.Binaries(t)
	eng, stateDir := enginetest.NewEngine(t, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	bps, err := blueprints.Load("../../blueprints/examples/test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example encrypts with vault-kms and uses Vault for workload
	// secrets: a real Vault (dev server) backs the KMS plugin, the
	// transit key, KV mount, Kubernetes auth and roles.
	va := vaulttest.StartDev(t).Access()
	c := &local.Cluster{Blueprint: bps[0].Blueprint, Dir: filepath.Join(paths.ClustersDir(stateDir), bps[0].Name()), Binaries: bins, Vault: &va}
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
