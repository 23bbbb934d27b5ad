//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"secprov.dev/secprov/internal/pgtest"
)

// TestSharedStateInPostgres: a cluster made with its state in a real
// PostgreSQL (Pulumi's DIY postgres backend) is seen from a second state
// directory pointed at the same database, which says it cannot reach it;
// the first one verifies and removes it, and the state follows.
func TestSharedStateInPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	a, b := newHome(t), newHome(t)
	for _, h := range []*home{a, b} {
		h.env = append(h.env, "SECPROV_STATE="+pg.URL, "SECPROV_PASSPHRASE=e2e-shared-state-passphrase")
	}
	if r := a.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify"); r.code != 0 {
		t.Fatalf("up with state in PostgreSQL:\n%s", r)
	}
	if rows := pg.Psql(t, "secprov", "select count(*) from pulumi_state"); strings.TrimSpace(rows) == "0" {
		t.Fatalf("up wrote nothing to PostgreSQL")
	}
	r := b.exec("status")
	if !strings.Contains(r.stdout+r.stderr, "shop-test") || !strings.Contains(r.stdout+r.stderr, "not reachable from here") {
		t.Errorf("status from a second state directory on the same backend does not list shop-test as made elsewhere:\n%s", r)
	}
	if r := a.exec("verify", "--cluster", "shop-test"); r.code != 0 {
		t.Errorf("verify of a cluster whose state is in PostgreSQL:\n%s", r)
	}
	if r := a.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify", "-o", "json"); r.code != 0 || strings.Contains(r.stdout, `"create"`) && !strings.Contains(r.stdout, `"create":0`) {
		t.Errorf("second up on PostgreSQL state:\n%s", r)
	}
	if r := a.exec("down", "--cluster", "shop-test"); r.code != 0 {
		t.Fatalf("down:\n%s", r)
	}
	if r := b.exec("status"); strings.Contains(r.stdout, "shop-test") {
		t.Errorf("status still lists shop-test after down:\n%s", r)
	}
}
