package sarif_test

import (
	"bytes"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
	"secprov.dev/secprov/internal/sarif/sariftest"
)

func TestRunValidates(t *testing.T) {
	run := sarif.NewRun(sarif.Tool{Name: "t", InformationURI: "https://secprov.dev"}, ".", blueprints.Controls)
	err := run.Add(sarif.Result{Rule: blueprints.EncryptionAtRestOn, Kind: "fail", Message: "plaintext",
		Location: sarif.Location{File: "a/b c.yaml", Line: 3, Column: 2, Cluster: "shop-prod"},
		Identity: []string{"x"}, Properties: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Add(sarif.Result{Rule: "SP-NOPE-001"}); err == nil {
		t.Error("a result of an unknown rule was accepted")
	}
	var buf bytes.Buffer
	if err := run.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	l := sariftest.Check(t, buf.Bytes())
	res := l.Runs[0].Results[0]
	if res.Level != "error" || res.Locations[0].PhysicalLocation.ArtifactLocation.URI != "a/b%20c.yaml" || res.Locations[0].LogicalLocations[0].Name != "shop-prod" {
		t.Errorf("result %+v", res)
	}
	if len(l.Runs[0].Tool.Driver.Rules) != len(blueprints.Controls) {
		t.Errorf("%d rules for %d controls", len(l.Runs[0].Tool.Driver.Rules), len(blueprints.Controls))
	}

	// The validator itself refuses what the schema does.
	for _, bad := range []string{
		`{"version":"2.0.0","runs":[]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"level":"fatal"}]}]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"locations":[{"physicalLocation":{"region":{"startLine":0}}}]}]}]}`,
	} {
		if err := sariftest.Validate([]byte(bad)); err == nil {
			t.Errorf("schema accepted %s", bad)
		}
	}
}

func TestWithoutLineNumbers(t *testing.T) {
	for in, want := range map[string]string{
		`cluster name "a" is already used by the blueprint at x.yaml:12:3; pick another`: `cluster name "a" is already used by the blueprint at x.yaml:#; pick another`,
		"yaml: line 7: did not find expected key":                                        "yaml: line #: did not find expected key",
		"spec.audit.maxAgeDays: expected an integer":                                     "spec.audit.maxAgeDays: expected an integer",
	} {
		if got := sarif.WithoutLineNumbers(in); got != want {
			t.Errorf("WithoutLineNumbers(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestArtifactURI(t *testing.T) {
	tests := []struct{ root, file, uri, base string }{
		{".", "a/b.yaml", "a/b.yaml", "%SRCROOT%"},
		{"a", "a/b c.yaml", "b%20c.yaml", "%SRCROOT%"},
		{"", "x.yaml", "x.yaml", "%SRCROOT%"},
	}
	for _, tt := range tests {
		uri, base := sarif.ArtifactURI(tt.root, tt.file)
		if uri != tt.uri || base != tt.base {
			t.Errorf("ArtifactURI(%q, %q) = %q, %q; want %q, %q", tt.root, tt.file, uri, base, tt.uri, tt.base)
		}
	}
	if uri, base := sarif.ArtifactURI(t.TempDir(), "x.yaml"); base != "" || !strings.HasPrefix(uri, "file:///") {
		t.Errorf("file outside the root: %q %q; want an absolute file URI", uri, base)
	}
}
