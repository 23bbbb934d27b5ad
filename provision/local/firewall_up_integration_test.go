package local_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
)

// TestUpPublicEndpointLoadsFirewall: up of a public endpoint with
// allowedCIDRs loads the cluster's nftables table before the API server
// binds every address, verify proves it (SP-API-001, SP-API-002), a table
// deleted by hand is drift that the next up puts back, and down removes
// it. TestAPIFirewallInNetns shows with packets what the table does.
func TestUpPublicEndpointLoadsFirewall(t *testing.T) {
	bins := localtest.Binaries(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to load nftables; CI runs as root")
	}
	if _, err := exec.LookPath(local.NFTBinary); err != nil {
		t.Skip("nft not on PATH (Debian: nftables); .ci/run installs it")
	}
	name := fmt.Sprintf("fw-up-%d", os.Getpid()%100000)
	doc := fmt.Sprintf(`apiVersion: secprov.dev/v1alpha1
kind: Blueprint
metadata: {name: %s}
spec:
  environment: test
  apiServer: {endpoint: public, allowedCIDRs: [198.51.100.0/24, "2001:db8::/32"]}
  encryptionAtRest: {provider: secretbox}
  vault: {enabled: false}
`, name)
	bps, err := blueprints.LoadBytes("fw.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := local.New().Preflight(context.Background(), bps[0]); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	eng, stateDir := enginetest.NewEngine(t, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c := &local.Cluster{Blueprint: bps[0].Blueprint, Dir: filepath.Join(paths.ClustersDir(stateDir), name), Binaries: bins}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	table := hardening.FirewallTable(name)
	up := func() {
		t.Helper()
		prog, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Up(ctx, name, prog, engine.Options{}); err != nil {
			t.Fatalf("up: %v", err)
		}
	}
	up()
	t.Cleanup(func() {
		_, _ = eng.Destroy(context.Background(), name, engine.Options{})
		_ = local.NFTApply(context.Background(), hardening.DeleteFirewallScript(table))
	})
	if _, found, err := local.NFTListTable(ctx, table); err != nil || !found {
		t.Fatalf("after up, table %s found=%v (%v)", table, found, err)
	}

	rec, err := cluster.ReadRecord(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := local.NewTarget(rec, func() ([]*cluster.Record, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	checks := slices.DeleteFunc(verify.Checks(), func(c verify.Check) bool {
		return c.ID != blueprints.APIEndpointPrivate && c.ID != blueprints.APIAllowedCIDRsNarrow
	})
	rep := verify.Run(ctx, tgt, checks, verify.Options{})
	for _, r := range rep.Results {
		t.Logf("%s %s: %s", r.ID, r.Status, r.Reason)
		if r.Status != verify.StatusPass {
			t.Errorf("%s = %s (%s), want pass", r.ID, r.Status, r.Reason)
		}
	}

	// Deleted by hand: the next preview shows it, the next up reloads it.
	if err := local.NFTApply(ctx, hardening.DeleteFirewallScript(table)); err != nil {
		t.Fatal(err)
	}
	prog, _ := c.Program()
	plan, err := eng.Preview(ctx, name, prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.HasChanges() {
		t.Error("preview after the table was deleted shows no change")
	}
	up()
	if _, found, _ := local.NFTListTable(ctx, table); !found {
		t.Error("the second up did not put the table back")
	}

	if _, err := eng.Destroy(ctx, name, engine.Options{}); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, found, err := local.NFTListTable(ctx, table); err != nil || found {
		t.Errorf("after down, table %s found=%v (%v)", table, found, err)
	}
}
