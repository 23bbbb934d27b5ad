package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
	"secprov.dev/secprov/internal/sarif/sariftest"
)

// TestSARIF: verify's SARIF validates against the 2.1.0 schema, locates
// every result that needs action at the blueprint line of the control's
// field (the start of spec for a defaulted field or a control without one),
// names the cluster, and keeps its fingerprints when lines move.
func TestSARIF(t *testing.T) {
	file := filepath.Join("testdata", "blueprints", "shop-test.yaml")
	data := mustReadFile(t, file)
	reps := fixedReports()
	reps[0].Results = append(reps[0].Results,
		Result{ID: blueprints.AuditLogging, Title: "audit", Status: StatusWarn, Severity: blueprints.SeverityHigh, Reason: "excepted"},
		Result{ID: blueprints.EtcdClientTLS, Title: "etcd", Status: StatusError, Severity: blueprints.SeverityHigh, Reason: "timed out"})
	encode := func(data []byte) *sariftest.Log {
		t.Helper()
		bps, err := blueprints.LoadBytes(file, data)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteReports(&buf, "sarif", reps, WriteOptions{Blueprints: bps, SrcRoot: ".", ToolVersion: "v1"}); err != nil {
			t.Fatal(err)
		}
		return sariftest.Check(t, buf.Bytes())
	}
	lineOf := func(data []byte, prefix string) int {
		for i, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, prefix) {
				return i + 1
			}
		}
		t.Fatalf("no line %q", prefix)
		return 0
	}
	a := encode(data)
	moved := bytes.Replace(data, []byte("spec:\n"), []byte("\nspec:\n"), 1)
	b := encode(moved)
	want := map[string]struct{ level, prefix string }{
		string(blueprints.EncryptionAtRestOn): {"error", "    provider:"}, // written in the file
		// The spec as a whole, where its mapping starts (the loader
		// records a mapping's position at its first key):
		string(blueprints.AuditLogging):  {"warning", "  environment:"}, // spec.audit.enabled is a default
		string(blueprints.EtcdClientTLS): {"error", "  environment:"},   // no blueprint field
	}
	ra, rb := a.Runs[0].Results, b.Runs[0].Results
	if len(ra) != len(want) || len(rb) != len(want) {
		t.Fatalf("%d and %d results, want %d (passes and skips left out)", len(ra), len(rb), len(want))
	}
	for i, r := range ra {
		w, ok := want[r.RuleID]
		if !ok {
			t.Errorf("unexpected result %s", r.RuleID)
			continue
		}
		loc := r.Locations[0]
		if loc.PhysicalLocation.ArtifactLocation.URI != "testdata/blueprints/shop-test.yaml" || loc.PhysicalLocation.Region.StartLine != lineOf(data, w.prefix) {
			t.Errorf("%s at %+v, want testdata/blueprints/shop-test.yaml:%d", r.RuleID, *loc.PhysicalLocation, lineOf(data, w.prefix))
		}
		if r.Level != w.level || len(loc.LogicalLocations) != 1 || loc.LogicalLocations[0].Name != "shop-test" {
			t.Errorf("%s: level %s, logical %+v", r.RuleID, r.Level, loc.LogicalLocations)
		}
		if got := rb[i].Locations[0].PhysicalLocation.Region.StartLine; got != lineOf(moved, w.prefix) {
			t.Errorf("%s after a blank line: line %d, want %d", r.RuleID, got, lineOf(moved, w.prefix))
		}
		if r.PartialFingerprints[sarif.FingerprintKey] != rb[i].PartialFingerprints[sarif.FingerprintKey] {
			t.Errorf("%s: fingerprint changed with the line", r.RuleID)
		}
	}
	rules := a.Runs[0].Tool.Driver.Rules
	if len(rules) != 5 || !strings.Contains(rules[1].Help.Text, "Remediation: ") || rules[1].Properties.SecuritySeverity != "9.5" {
		t.Errorf("rules %+v; want every check's control with the catalog's help and security-severity", rules)
	}

	// Without the cluster's blueprint there is nowhere to put a result.
	err := WriteReports(&bytes.Buffer{}, "sarif", reps, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("no blueprint: %v", err)
	}
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
