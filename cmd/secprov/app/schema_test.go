package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

func TestSchemaPrintsTheBlueprintSchema(t *testing.T) {
	out, errOut, code := run(t, "schema")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s struct {
		ID string `json:"$id"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if s.ID != blueprints.SchemaID {
		t.Errorf("$id = %q; want %q", s.ID, blueprints.SchemaID)
	}
}

func TestInitNamesTheSchema(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := run(t, "init", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"prod.yaml", "test.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if want := "# yaml-language-server: $schema=" + blueprints.SchemaID + "\n"; !strings.HasPrefix(string(data), want) {
			t.Errorf("%s does not start with %q", name, want)
		}
	}
}
