package pgtest_test

import (
	"strings"
	"testing"

	"secprov.dev/secprov/internal/pgtest"
)

func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts PostgreSQL (-short)")
	}
	s := pgtest.Start(t)
	if got := strings.TrimSpace(s.Psql(t, "secprov", "SELECT current_user || '@' || current_database()")); got != "secprov@secprov" {
		t.Fatalf("psql = %q", got)
	}
}
