package review

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"secprov.dev/secprov/blueprints"
)

var severityEmoji = map[blueprints.Severity]string{
	blueprints.SeverityCritical: "🔴", blueprints.SeverityHigh: "🟠", blueprints.SeverityMedium: "🟡",
	blueprints.SeverityLow: "🔵", blueprints.SeverityInfo: "⚪",
}

// maxMarkdownRows caps each table so a comment stays well under GitHub's
// 65,536-character limit; the JSON and SARIF outputs always hold everything.
const maxMarkdownRows = 150

// WriteMarkdown writes the report as a pull-request comment: a heading with
// the verdict, load errors, counts by severity, the findings, and the
// excepted findings folded away.
func WriteMarkdown(w io.Writer, r *Report, opts WriteOptions) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## %s\n\n", markdownVerdict(r, opts.FailOn))
	fmt.Fprintf(bw, "Reviewed %s", plural(r.Blueprints, "blueprint"))
	if r.Base != "" {
		fmt.Fprintf(bw, " against base `%s`", codeSpan(r.Base))
	}
	bw.WriteString(".\n\n")

	if len(r.Errors) > 0 {
		fmt.Fprintf(bw, "### Load errors\n\nThese files did not load; fix them first.\n\n")
		for i, e := range r.Errors {
			if i == maxMarkdownRows {
				fmt.Fprintf(bw, "- … and %d more\n", len(r.Errors)-i)
				break
			}
			fmt.Fprintf(bw, "- `%s:%d:%d`: %s\n", codeSpan(e.File), e.Line, e.Column, cell(e.Message))
		}
		bw.WriteString("\n")
	}

	var active, excepted []Finding
	for _, f := range r.Findings {
		if f.Excepted() {
			excepted = append(excepted, f)
		} else {
			active = append(active, f)
		}
	}
	counts := r.Counts()
	bw.WriteString("| Severity | Findings |\n|---|--:|\n")
	for _, s := range severities {
		label := s.String()
		if s == blueprints.SeverityInfo && len(excepted) > 0 {
			label += fmt.Sprintf(" (%d excepted)", len(excepted))
		}
		fmt.Fprintf(bw, "| %s %s | %d |\n", severityEmoji[s], label, counts[s])
	}
	bw.WriteString("\n")

	if len(active) > 0 {
		bw.WriteString("### Findings\n\n")
		findingsTable(bw, active)
	}
	if len(excepted) > 0 {
		fmt.Fprintf(bw, "<details><summary>%s downgraded to info by a blueprint exception</summary>\n\n", plural(len(excepted), "finding"))
		findingsTable(bw, excepted)
		bw.WriteString("</details>\n")
	}
	return bw.Flush()
}

func markdownVerdict(r *Report, failOn blueprints.Severity) string {
	failing := r.AtOrAbove(failOn)
	switch {
	case len(r.Errors) > 0 && failing > 0:
		return fmt.Sprintf("❌ secprov review: %s, %s at or above %s", plural(len(r.Errors), "load error"), plural(failing, "finding"), failOn)
	case len(r.Errors) > 0:
		return fmt.Sprintf("❌ secprov review: %s", plural(len(r.Errors), "load error"))
	case failing > 0:
		return fmt.Sprintf("❌ secprov review: %s at or above %s", plural(failing, "finding"), failOn)
	case failOn == 0:
		return fmt.Sprintf("✅ secprov review: %s, none fail the review (--fail-on none)", plural(len(r.Findings), "finding"))
	default:
		return fmt.Sprintf("✅ secprov review: no findings at or above %s", failOn)
	}
}

func findingsTable(bw *bufio.Writer, fs []Finding) {
	bw.WriteString("| Severity | Rule | Location | Path | Message |\n|---|---|---|---|---|\n")
	for i, f := range fs {
		if i == maxMarkdownRows {
			fmt.Fprintf(bw, "\n… and %d more; see the JSON or SARIF output.\n", len(fs)-i)
			break
		}
		fmt.Fprintf(bw, "| %s %s | %s | `%s:%d` | `%s` | %s |\n",
			severityEmoji[f.Severity], f.Severity, f.Rule, codeSpan(f.File), f.Line, codeSpan(f.Path), cell(f.Message))
	}
	bw.WriteString("\n")
}

// cell makes text safe inside a table cell: pipes escaped, line breaks as
// <br>, and no raw HTML, since blueprint values come from the pull request.
func cell(s string) string {
	r := strings.NewReplacer("|", `\|`, "\r\n", "<br>", "\n", "<br>", "\r", "<br>", "<", "&lt;", ">", "&gt;", "&", "&amp;")
	return r.Replace(s)
}

// codeSpan makes text safe inside a `code span` in a table cell.
func codeSpan(s string) string {
	r := strings.NewReplacer("`", "'", "|", `\|`, "\r", " ", "\n", " ")
	return r.Replace(s)
}
