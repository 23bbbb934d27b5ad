//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/internal/pgtest"
)

// TestSharedStateInPostgres: prod and test made with their state in a real
// PostgreSQL (Pulumi's DIY postgres backend). While prod's up runs, a
// second up of prod fails at once naming the holder, and test's up
// proceeds beside it. A second state directory pointed at the same
// database lists both, saying it cannot reach them; the first verifies
// and removes them, and the state follows.
func TestSharedStateInPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	a, b := newHome(t), newHome(t)
	for _, h := range []*home{a, b} {
		h.env = append(h.env, "SECPROV_STATE="+pg.URL, "SECPROV_PASSPHRASE=e2e-shared-state-passphrase")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	prodUp := a.cmd(ctx, "up", "-f", "blueprints/examples/prod.yaml", "--no-verify")
	var prodOut bytes.Buffer
	prodUp.Stdout, prodUp.Stderr = &prodOut, &prodOut
	if err := prodUp.Start(); err != nil {
		t.Fatal(err)
	}
	prodDone := make(chan error, 1)
	go func() { prodDone <- prodUp.Wait() }()

	// Wait for prod's lock record in the database, then race it.
	locked := false
	for deadline := time.Now().Add(3 * time.Minute); !locked && time.Now().Before(deadline); {
		select {
		case err := <-prodDone:
			t.Fatalf("prod's up ended (%v) before its lock was seen:\n%s", err, prodOut.String())
		case <-time.After(100 * time.Millisecond):
		}
		if strings.TrimSpace(pg.Psql(t, "secprov", "select to_regclass('pulumi_state') is not null")) != "t" {
			continue // the backend has not created its table yet
		}
		n := pg.Psql(t, "secprov", "select count(*) from pulumi_state where key like '%.pulumi/locks/%/shop-prod/%'")
		locked = strings.TrimSpace(n) != "0"
	}
	if !locked {
		t.Fatal("prod's up never took its lock")
	}
	start := time.Now()
	r := a.exec("up", "-f", "blueprints/examples/prod.yaml", "--no-verify")
	took := time.Since(start)
	t.Logf("a second up of prod while the first runs (%s):\n%s", took.Round(time.Millisecond), r)
	for _, want := range []string{`cluster "shop-prod" is locked by another run`, "still running on this host", "since ", "secprov state unlock --cluster shop-prod"} {
		if r.code == 0 || !strings.Contains(r.stderr+r.stdout, want) {
			t.Errorf("second up of prod: exit %d, output lacks %q", r.code, want)
		}
	}
	// Another cluster of the same backend proceeds while prod's up runs.
	if r := a.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify"); r.code != 0 {
		t.Fatalf("test's up beside prod's, state in PostgreSQL:\n%s", r)
	}
	select {
	case err := <-prodDone:
		if err != nil {
			t.Fatalf("prod's up (the lock holder) failed: %v\n%s", err, prodOut.String())
		}
	case <-ctx.Done():
		t.Fatal("prod's up did not finish")
	}
	if rows := pg.Psql(t, "secprov", "select count(*) from pulumi_state where key like '%.pulumi/locks/%'"); strings.TrimSpace(rows) != "0" {
		t.Errorf("%s lock records left after both ups finished", strings.TrimSpace(rows))
	}

	r = b.exec("status", "-o", "json")
	var st struct {
		Clusters []struct{ Name, Environment, Provider, StateSecrets string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r)
	}
	seen := map[string]string{}
	for _, c := range st.Clusters {
		seen[c.Name] = c.Environment + " " + c.Provider + " " + c.StateSecrets
	}
	// prod's state secrets are Vault's (examples/prod.yaml), test's a
	// passphrase; the second directory reads that from the checkpoint.
	for name, want := range map[string]string{"shop-prod": "prod local vault", "shop-test": "test local passphrase"} {
		if seen[name] != want {
			t.Errorf("status -o json from a second state directory: %s is %q, want %q\n%s", name, seen[name], want, r.stdout)
		}
	}
	r = b.exec("status")
	t.Logf("status from a second state directory:\n%s", r.stdout)
	if strings.Count(r.stdout+r.stderr, "not reachable from here") < 2 {
		t.Errorf("status from a second state directory does not list both clusters as made elsewhere:\n%s", r)
	}
	for _, name := range []string{"shop-prod", "shop-test"} {
		if r := a.exec("verify", "--cluster", name); r.code != 0 {
			t.Errorf("verify of %s, state in PostgreSQL:\n%s", name, r)
		}
	}
	// prod's state secrets are Vault's (examples/prod.yaml): no secret
	// of the clusters in the database, in clear or in the DIY backend's
	// base64 rows.
	rows := pg.Psql(t, "secprov", "select key || ' ' || convert_from(decode(data->>'data', 'base64'), 'UTF8') from pulumi_state where key not like '%.gz'")
	if !strings.Contains(rows, `"hashivault://shop-prod?engine=secprov-state"`) {
		t.Errorf("prod's checkpoint in PostgreSQL does not name its Vault secrets provider")
	}
	dump := pg.Dump(t)
	for _, f := range []string{"state-tokens/shop-prod", "clusters/shop-prod/vault/kms-token", "clusters/shop-test/vault/kms-token", "vault/root-token", "passphrase"} {
		b, err := os.ReadFile(filepath.Join(a.dir, f))
		if err != nil {
			continue // the shared passphrase comes from the environment
		}
		if secret := strings.TrimSpace(string(b)); secret != "" && (strings.Contains(rows, secret) || strings.Contains(dump, secret)) {
			t.Errorf("the database holds the secret of %s", f)
		}
	}
	if strings.Contains(rows+dump, "e2e-shared-state-passphrase") {
		t.Errorf("the database holds the passphrase")
	}

	// rekey through the CLI, the state in PostgreSQL: to the passphrase,
	// up refuses the blueprint's vault until it is moved back.
	if r := a.exec("state", "rekey", "--cluster", "shop-prod", "--to", "passphrase"); r.code != 0 || !strings.Contains(r.stdout, "now with a passphrase") {
		t.Errorf("state rekey --to passphrase:\n%s", r)
	}
	if r := a.exec("up", "-f", "blueprints/examples/prod.yaml", "--no-verify"); r.code == 0 || !strings.Contains(r.stderr, "secprov state rekey --cluster shop-prod --to vault") {
		t.Errorf("up of a vault blueprint on passphrase state:\n%s", r)
	}
	if r := a.exec("state", "rekey", "--cluster", "shop-prod", "--to", "vault", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"to": "hashivault://shop-prod?engine=secprov-state"`) {
		t.Errorf("state rekey --to vault:\n%s", r)
	}

	// Faults, from the second state directory: nothing is created and no
	// password is shown.
	bad := strings.Replace(pg.URL, "@", "x@", 1) // a wrong password
	r = b.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify", "--state", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "refused the credentials") || strings.Contains(r.stderr, pg.Password) {
		t.Errorf("up with a wrong database password:\n%s", r)
	}
	if _, err := os.Stat(b.clusterDir("shop-test")); !os.IsNotExist(err) {
		t.Errorf("up with a wrong password left a cluster directory: %v", err)
	}
	r = b.exec("status", "--state", strings.Replace(pg.URL, "postgres://", "postgress://", 1))
	if r.code != 2 || !strings.Contains(r.stderr, `scheme "postgress" is not a Pulumi backend`) || strings.Contains(r.stderr, pg.Password) {
		t.Errorf("status with a misspelt backend scheme:\n%s", r)
	}

	if r := a.exec("plan", "-f", "blueprints/examples/prod.yaml", "-o", "json"); r.code != 0 {
		t.Errorf("plan on PostgreSQL state:\n%s", r)
	} else {
		var plans []struct{ Counts map[string]int }
		if err := json.Unmarshal([]byte(r.stdout), &plans); err != nil || len(plans) != 1 || len(plans[0].Counts) != 1 || plans[0].Counts["same"] == 0 {
			t.Errorf("plan of prod right after its up, state in PostgreSQL: %v, want every resource the same:\n%s", err, r.stdout)
		}
	}
	if r := a.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify", "-o", "json"); r.code != 0 || strings.Contains(r.stdout, `"create"`) && !strings.Contains(r.stdout, `"create":0`) {
		t.Errorf("second up on PostgreSQL state:\n%s", r)
	}
	if r := a.exec("down", "--cluster", "shop-prod", "--cluster", "shop-test"); r.code != 0 {
		t.Fatalf("down:\n%s", r)
	}
	if r := b.exec("status"); strings.Contains(r.stdout, "shop-test") || strings.Contains(r.stdout, "shop-prod") {
		t.Errorf("status still lists the clusters after down:\n%s", r)
	}
}
