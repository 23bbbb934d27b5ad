package app

import (
	"encoding/json"
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
