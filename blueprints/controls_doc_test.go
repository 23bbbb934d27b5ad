package blueprints

import (
	"fmt"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/golden"
)

// controlsMarkdown renders the catalog as the hardening/CONTROLS.md table.
func controlsMarkdown() string {
	var b strings.Builder
	b.WriteString("| ID | Severity | Title | Review | Hardening | Verify | Blueprint field | References |\n|---|---|---|---|---|---|---|---|\n")
	mark := func(c Control, bit int) string {
		if c.Where&bit != 0 {
			return "✓"
		}
		return ""
	}
	for _, c := range Controls {
		var refs []string
		for _, r := range c.Refs {
			refs = append(refs, r.String())
		}
		field := ""
		if c.Field != "" {
			field = "`" + c.Field + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.ID, c.Severity, c.Title,
			mark(c, ByReview), mark(c, ByHardening), mark(c, ByVerify), field, strings.Join(refs, ", "))
	}
	b.WriteString("\n" + GuardrailExemptions() + "\n")
	return b.String()
}

const (
	beginControls = "<!-- BEGIN CONTROLS (generated; do not edit) -->\n"
	endControls   = "<!-- END CONTROLS -->"
)

// TestDocControlsTable keeps hardening/CONTROLS.md in step with the catalog;
// go test ./blueprints -run TestDocControlsTable -update rewrites it.
func TestDocControlsTable(t *testing.T) {
	golden.Section(t, "../hardening/CONTROLS.md", beginControls, endControls, controlsMarkdown())
}
