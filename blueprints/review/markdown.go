package review

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

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
		fmt.Fprintf(bw, " against base %s", codeSpan(r.Base, false))
	}
	bw.WriteString(".\n\n")

	if len(r.Errors) > 0 {
		fmt.Fprintf(bw, "### Load errors\n\nThese files did not load; fix them first.\n\n")
		for i, e := range r.Errors {
			if i == maxMarkdownRows {
				fmt.Fprintf(bw, "- … and %d more\n", len(r.Errors)-i)
				break
			}
			fmt.Fprintf(bw, "- %s: %s\n", codeSpan(fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column), false), cell(e.Message))
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
		fmt.Fprintf(bw, "| %s %s | %s | %s | %s | %s |\n",
			severityEmoji[f.Severity], f.Severity, cell(string(f.Rule)), codeSpan(fmt.Sprintf("%s:%d", f.File, f.Line), true), codeSpan(f.Path, true), cell(f.Message))
	}
	bw.WriteString("\n")
}

// cell makes text from the files under review (a pull request) inert in
// a comment: in a table cell or a list item it renders as the same text,
// with no markup, link, image, mention or HTML of its own. Line breaks
// become <br>; other control characters, invalid UTF-8 and bidirectional
// controls show as escapes (\x1b); HTML's <, > and & become entities;
// Markdown's punctuation is backslash-escaped (a pipe can no longer end
// the cell); and an @ cannot start a mention that notifies anyone.
func cell(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\\x%02x`, s[i])
		case r == '\r' && strings.HasPrefix(s[i+size:], "\n"):
			// \r\n is one break: the \n writes it.
		case r == '\n' || r == '\r':
			b.WriteString("<br>")
		case unsafeRune(r):
			b.WriteString(`\` + escapeRune(r)) // \\x1b renders as \x1b
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case r == '@':
			// A zero-width space after @ keeps it from naming a user or
			// team, as bots that quote pull requests do.
			b.WriteString("@&#8203;")
		case strings.ContainsRune(markdownPunct, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// markdownPunct are the characters that start or end markup inside a
// line: escapes, code, emphasis, strikethrough, links and images, and
// table cells.
const markdownPunct = "\\`*_~[]!|"

// codeSpan writes s as a code span, whose content Markdown shows
// literally: the fence is one backtick longer than any run of backticks
// in s, so s cannot close it, and control characters, invalid UTF-8 and
// bidirectional controls show as escapes (see printable). In a table a
// pipe is escaped even in code, since GitHub splits cells first.
func codeSpan(s string, inTable bool) string {
	s = printable(s)
	if inTable {
		s = strings.ReplaceAll(s, "|", `\|`)
	}
	longest, run := 0, 0
	for _, c := range []byte(s) {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	// A space on each side keeps a backtick at either end from joining
	// the fence; Markdown strips exactly one from each side.
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ") {
		s = " " + s + " "
	}
	if s == "" {
		s = " "
	}
	return fence + s + fence
}
