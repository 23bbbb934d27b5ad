package review

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"secprov.dev/secprov/blueprints"
)

// Format is an output format of a report.
type Format string

// Output formats.
const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatSARIF    Format = "sarif"
	FormatMarkdown Format = "markdown"
)

// ParseFormat parses the value of -o.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatText, FormatJSON, FormatSARIF, FormatMarkdown:
		return f, nil
	case "md":
		return FormatMarkdown, nil
	}
	return "", fmt.Errorf("unknown output format %q: use text, json, sarif or markdown", s)
}

// WriteOptions tune the encoders.
type WriteOptions struct {
	// Verbose adds each finding's remediation to text output.
	Verbose bool
	// FailOn is the severity at or above which findings fail the review
	// (for the verdict in text and markdown); 0 means findings never fail.
	FailOn blueprints.Severity
	// ToolVersion is secprov's version, for SARIF.
	ToolVersion string
	// SrcRoot is the directory SARIF artifact URIs are relative to: the
	// repository root, so code scanning can place results. Empty means the
	// working directory.
	SrcRoot string
}

// Write encodes r in format f.
func Write(w io.Writer, r *Report, f Format, opts WriteOptions) error {
	switch f {
	case FormatText:
		return WriteText(w, r, opts)
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatSARIF:
		return WriteSARIF(w, r, opts)
	case FormatMarkdown:
		return WriteMarkdown(w, r, opts)
	}
	return fmt.Errorf("unknown output format %q", f)
}

type jsonReport struct {
	Findings []Finding   `json:"findings"`
	Errors   []LoadError `json:"errors"`
	Summary  jsonSummary `json:"summary"`
}

type jsonSummary struct {
	Blueprints int `json:"blueprints"`
	Findings   int `json:"findings"`
	Errors     int `json:"errors"`
}

// WriteJSON writes the report as
// {"findings":[…],"errors":[…],"summary":{"blueprints":N,"findings":N,"errors":N}}.
func WriteJSON(w io.Writer, r *Report) error {
	out := jsonReport{Findings: r.Findings, Errors: r.Errors,
		Summary: jsonSummary{Blueprints: r.Blueprints, Findings: len(r.Findings), Errors: len(r.Errors)}}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	if out.Errors == nil {
		out.Errors = []LoadError{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// WriteText writes one line per load error, then one per finding, as
// file:line:col: SEVERITY RULE path: message, and a summary line.
func WriteText(w io.Writer, r *Report, opts WriteOptions) error {
	bw := bufio.NewWriter(w)
	// File names, field paths and messages come from the files under
	// review (a pull request): escaped, they cannot forge a record or
	// drive the terminal.
	for _, e := range r.Errors {
		fmt.Fprintf(bw, "%s:%d:%d: ERROR %s\n", printable(e.File), e.Line, e.Column, oneLine(e.Message))
	}
	for _, f := range r.Findings {
		fmt.Fprintf(bw, "%s:%d:%d: %s %s %s: %s\n", printable(f.File), f.Line, f.Column, strings.ToUpper(f.Severity.String()), printable(string(f.Rule)), printable(f.Path), oneLine(f.Message))
		if opts.Verbose && f.Remediation != "" {
			fmt.Fprintf(bw, "    remediation: %s\n", oneLine(f.Remediation))
		}
	}
	fmt.Fprintln(bw, summaryLine(r, opts.FailOn))
	return bw.Flush()
}

func summaryLine(r *Report, failOn blueprints.Severity) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s reviewed", plural(r.Blueprints, "blueprint"))
	if r.Base != "" {
		fmt.Fprintf(&b, " against base %s", printable(r.Base))
	}
	fmt.Fprintf(&b, ": %s", plural(len(r.Findings), "finding"))
	if len(r.Findings) > 0 {
		counts := r.Counts()
		var parts []string
		for _, s := range severities {
			if n := counts[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, s))
			}
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", %s", plural(len(r.Errors), "load error"))
	if failOn != 0 {
		fmt.Fprintf(&b, "; %d at or above %s", r.AtOrAbove(failOn), failOn)
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// oneLine keeps a message on its line, so every line of text output stays
// a parsable file:line:col record: runs of white space become one space,
// and what else could break the line is escaped (see printable).
func oneLine(s string) string {
	return printable(strings.Join(strings.Fields(s), " "))
}

// printable escapes what must not reach a terminal or a line-oriented
// reader raw: control characters (C0, DEL, C1: newline, carriage return,
// tab, ESC, …), invalid UTF-8, and the characters that reorder or break
// text (bidirectional controls, U+2028/U+2029). They become Go escapes
// (\n, \x1b, \u202e, \xff); everything else, non-ASCII letters included,
// is unchanged, so ordinary names read as they are. When s needs any
// escape its backslashes are doubled as well, so the result reads back
// unambiguously.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unsafeRune(r):
			b.WriteString(escapeRune(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if unsafeRune(r) {
			return true
		}
	}
	return false
}

// unsafeRune reports the characters printable escapes.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi controls
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}

// escapeRune is r as Go writes it in a quoted string: \n, \x1b, \u202e.
func escapeRune(r rune) string {
	q := strconv.QuoteRune(r)
	return q[1 : len(q)-1]
}
