package review

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"secprov.dev/secprov/blueprints"
)

type jsonRule struct {
	ID       blueprints.ControlID `json:"id"`
	Title    string               `json:"title"`
	Severity blueprints.Severity  `json:"severity"`
	Refs     []string             `json:"refs"`
}

func refStrings(c blueprints.Control) []string {
	refs := make([]string, len(c.Refs))
	for i, r := range c.Refs {
		refs[i] = r.String()
	}
	return refs
}

// WriteRules lists the review rules: a table for text, the markdown table
// blueprints/review/README.md embeds, or {"rules":[{"id","title","severity","refs"}]}.
func WriteRules(w io.Writer, f Format) error {
	rules := Rules()
	switch f {
	case FormatJSON:
		out := struct {
			Rules               []jsonRule `json:"rules"`
			GuardrailExemptions string     `json:"guardrailExemptions"`
			ExemptUsers         []string   `json:"guardrailExemptUsers"`
			ExemptUserPrefixes  []string   `json:"guardrailExemptUserPrefixes"`
			ExemptGroups        []string   `json:"guardrailExemptGroups"`
		}{Rules: make([]jsonRule, len(rules)), GuardrailExemptions: blueprints.GuardrailExemptions(),
			ExemptUsers: blueprints.GuardrailExemptUsers, ExemptUserPrefixes: blueprints.GuardrailExemptUserPrefixes, ExemptGroups: blueprints.GuardrailExemptGroups}
		for i, c := range rules {
			out.Rules[i] = jsonRule{ID: c.ID, Title: c.Title, Severity: c.Severity, Refs: refStrings(c)}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	case FormatText:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSEVERITY\tTITLE\tREFS")
		for _, c := range rules {
			refs := strings.Join(refStrings(c), ", ")
			if refs == "" {
				refs = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Severity, c.Title, refs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, "\n"+blueprints.GuardrailExemptions())
		return err
	case FormatMarkdown:
		_, err := io.WriteString(w, RulesMarkdown())
		return err
	}
	return fmt.Errorf("--list-rules prints text, json or markdown, not %q", f)
}

// RulesMarkdown renders the rule table of blueprints/review/README.md from the catalog.
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| ID | Severity | Title | Field | References |\n|---|---|---|---|---|\n")
	for _, c := range Rules() {
		field := ""
		if c.Field != "" {
			field = "`" + c.Field + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.ID, c.Severity, cell(c.Title), field, cell(strings.Join(refStrings(c), ", ")))
	}
	return b.String()
}
