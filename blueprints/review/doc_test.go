package review

import (
	"os"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/golden"
)

const (
	docRulesBegin = "<!-- BEGIN RULES (generated; do not edit) -->\n"
	docRulesEnd   = "<!-- END RULES -->\n"
)

// TestDocRulesTable fails when README.md's rule table no longer
// matches the catalog; -update regenerates it.
func TestDocRulesTable(t *testing.T) {
	path := "README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, docRulesBegin), strings.Index(doc, docRulesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: markers %q and %q not found in order", path, strings.TrimSpace(docRulesBegin), strings.TrimSpace(docRulesEnd))
	}
	want := doc[:i+len(docRulesBegin)] + RulesMarkdown() + doc[j:]
	if want == doc {
		return
	}
	if golden.Update() {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the rules table is out of date with the catalog; run go test ./blueprints/review -run TestDocRulesTable -update", path)
}
