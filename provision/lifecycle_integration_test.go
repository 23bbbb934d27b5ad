package provision_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/providers"
)

// Lifecycle defects of issue 14, each against real etcd, kube-apiserver
// and the Pulumi engine, through the provider-neutral Provisioner.

func newProvisioner(t *testing.T) (*provision.Provisioner, string) {
	t.Helper()
	bins := localtest.Toolchain(t)
	eng, stateDir := enginetest.NewEngine(t, nil)
	return provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins}), stateDir
}

func mustUp(t *testing.T, p *provision.Provisioner, bps []*blueprints.Blueprint) {
	t.Helper()
	for _, r := range p.Up(t.Context(), bps, nil) {
		if r.Err != nil {
			t.Fatalf("up %s: %v", r.Cluster, r.Err)
		}
	}
}

func downAll(t *testing.T, p *provision.Provisioner, bps []*blueprints.Blueprint) {
	var names []string
	for _, bp := range bps {
		names = append(names, bp.Name())
	}
	for _, r := range p.Down(context.Background(), names, nil) {
		if r.Err != nil {
			t.Errorf("down %s: %v", r.Cluster, r.Err)
		}
	}
}

func pidOf(t *testing.T, stateDir, cluster, component string) int {
	t.Helper()
	dir, err := paths.ClusterDir(stateDir, cluster)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := proc.ReadPidFile(paths.NewLayout(dir).PidFile(component))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Pid
}

// changes lists "TYPE NAME PATH" of every change a plan shows.
func changes(t *testing.T, p *provision.Provisioner, bps []*blueprints.Blueprint) []string {
	t.Helper()
	var out []string
	for _, r := range p.Plan(t.Context(), bps, nil) {
		if r.Err != nil {
			t.Fatalf("plan %s: %v", r.Cluster, r.Err)
		}
		for _, rc := range r.Plan.Resources {
			if rc.Op == engine.OpSame {
				continue
			}
			for _, c := range rc.Changes {
				out = append(out, rc.Name+" "+c.Path)
			}
			if len(rc.Changes) == 0 {
				out = append(out, rc.Name+" "+string(rc.Op))
			}
		}
	}
	return out
}

// TestRenderedFileDriftIsRestored: audit-policy.yaml overwritten out of
// band (audit off) must show in plan, naming the file; up must restore it
// and restart the API server so it runs with the rendered policy; then no
// changes are left.
func TestRenderedFileDriftIsRestored(t *testing.T) {
	p, stateDir := newProvisioner(t)
	bps := noVault(examples(t, "test.yaml"))
	mustUp(t, p, bps)
	t.Cleanup(func() { downAll(t, p, bps) })
	name := bps[0].Name()
	dir, _ := paths.ClusterDir(stateDir, name)
	l := paths.NewLayout(dir)
	rendered, err := os.ReadFile(l.AuditPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(t, p, bps); len(got) != 0 {
		t.Fatalf("plan right after up shows changes: %v", got)
	}
	before := pidOf(t, stateDir, name, local.APIServer)
	weak := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n"
	if err := os.WriteFile(l.AuditPolicy(), []byte(weak), 0o600); err != nil {
		t.Fatal(err)
	}
	got := changes(t, p, bps)
	if !slices.ContainsFunc(got, func(c string) bool { return strings.Contains(c, "config/audit-policy.yaml") }) {
		t.Fatalf("plan does not name the drifted file: %v", got)
	}
	// verify fails the control's check while the file differs, although
	// the running API server still audits with the old policy.
	target, err := p.Target(name)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify.Run(t.Context(), target, verify.Checks(), verify.Options{Filter: regexp.MustCompile("^" + string(blueprints.AuditLogging) + "$")})
	if c, ok := target.(interface{ Close() error }); ok {
		c.Close()
	}
	if len(rep.Results) != 1 || rep.Results[0].Status != verify.StatusFail || !strings.Contains(rep.Results[0].Reason, l.AuditPolicy()) {
		t.Errorf("verify of the drifted audit policy: %+v; want %s to fail naming %s", rep.Results, blueprints.AuditLogging, l.AuditPolicy())
	}
	mustUp(t, p, bps)
	now, err := os.ReadFile(l.AuditPolicy())
	if err != nil || string(now) != string(rendered) {
		t.Errorf("up left the audit policy as %q (err %v); want the render back", now, err)
	}
	if after := pidOf(t, stateDir, name, local.APIServer); after == before {
		t.Errorf("the API server (pid %d) was not restarted to read the restored policy", before)
	}
	if got := changes(t, p, bps); len(got) != 0 {
		t.Errorf("plan after the repair shows changes: %v", got)
	}
}

// TestUpRightAfterSIGTERM: a component still shutting down is not ready;
// up must wait for it to exit and start it again rather than fail on a
// refused connection.
func TestUpRightAfterSIGTERM(t *testing.T) {
	p, stateDir := newProvisioner(t)
	bps := noVault(examples(t, "test.yaml"))
	mustUp(t, p, bps)
	t.Cleanup(func() { downAll(t, p, bps) })
	name := bps[0].Name()
	before := pidOf(t, stateDir, name, local.APIServer)
	if err := syscall.Kill(before, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	mustUp(t, p, bps)
	after := pidOf(t, stateDir, name, local.APIServer)
	if after == before {
		t.Fatalf("API server pid %d is the one that got SIGTERM", before)
	}
	if got := changes(t, p, bps); len(got) != 0 {
		t.Errorf("plan after up shows changes: %v", got)
	}
}

// TestDownWaitsForEveryProcess: down of several clusters returns only
// when no process of any of them is left.
func TestDownWaitsForEveryProcess(t *testing.T) {
	p, stateDir := newProvisioner(t)
	var bps []*blueprints.Blueprint
	for i := range 3 {
		data, err := os.ReadFile(filepath.Join("..", "blueprints", "examples", "test.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "shop-test", "down-"+strconv.Itoa(i))
		loaded, err := blueprints.LoadBytes("down.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		bps = append(bps, noVault(loaded)...)
	}
	mustUp(t, p, bps)
	var pids []int
	for _, bp := range bps {
		for _, c := range local.Components {
			pids = append(pids, pidOf(t, stateDir, bp.Name(), c))
		}
	}
	start := time.Now()
	downAll(t, p, bps)
	t.Logf("down of %d clusters took %v", len(bps), time.Since(start))
	for _, pid := range pids {
		if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(data)); len(f) > 2 && f[2] != "Z" {
				t.Errorf("pid %d still runs after down returned: %s", pid, strings.TrimSpace(string(data))[:min(80, len(data)-1)])
			}
		}
	}
	recs, _ := provision.Clusters(stateDir)
	if len(recs) != 0 {
		t.Errorf("clusters left after down: %v", recs)
	}
}
