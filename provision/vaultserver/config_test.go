package vaultserver

import (
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/golden"
)

func TestRenderConfigGolden(t *testing.T) {
	got := renderConfig(layout("/home/user/.local/state/secprov/vault"), 18200)
	golden.Check(t, "vault.hcl", got)
}

func TestRenderConfigQuotesPaths(t *testing.T) {
	got := string(renderConfig(layout(`/tmp/odd "dir" \ name`), 1))
	want := `path = "/tmp/odd \"dir\" \\ name/data"`
	if !strings.Contains(got, want) {
		t.Errorf("config does not quote the data path as %s:\n%s", want, got)
	}
}
