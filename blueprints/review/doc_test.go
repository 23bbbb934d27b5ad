package review

import (
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
	golden.Section(t, "README.md", docRulesBegin, docRulesEnd, RulesMarkdown())
}
