package review

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
)

// Names and texts a pull request can put in front of the report
// encoders. They are built here, at run time: file names with newlines or
// invalid UTF-8 cannot live in git.
var hostileNames = []struct{ name, text string }{
	{"prod.yaml", "prod.yaml"},
	{"dir/pröd ü.yaml", "dir/pröd ü.yaml"},
	{`back\slash.yaml`, `back\slash.yaml`},
	{"a\nb.yaml", `a\nb.yaml`},
	{"x.yaml\nforged.yaml:1:1: ERROR injected", `x.yaml\nforged.yaml:1:1: ERROR injected`},
	{"cr\rover.yaml", `cr\rover.yaml`},
	{"tab\t.yaml", `tab\t.yaml`},
	{"\x1b[31mred\x1b[0m.yaml", `\x1b[31mred\x1b[0m.yaml`},
	{"bell\a.yaml", `bell\a.yaml`},
	{"del\x7f.yaml", `del\x7f.yaml`},
	{"c1\u0085\u009b.yaml", `c1\u0085\u009b.yaml`},
	{"bad\xff\xfe.yaml", `bad\xff\xfe.yaml`},
	{"bidi\u202egpj.yaml", `bidi\u202egpj.yaml`},
	{"sep\u2028line.yaml", `sep\u2028line.yaml`},
	{"back\\slash\n.yaml", `back\\slash\n.yaml`},
}

func TestPrintable(t *testing.T) {
	for _, h := range hostileNames {
		if got := printable(h.name); got != h.text {
			t.Errorf("printable(%q) = %q, want %q", h.name, got, h.text)
		}
	}
}

// safeLine fails on anything in one line of output that a terminal or a
// line reader would act on.
func safeLine(t *testing.T, what, line string) {
	t.Helper()
	if !utf8.ValidString(line) {
		t.Errorf("%s: invalid UTF-8: %q", what, line)
	}
	for _, r := range line {
		if unsafeRune(r) {
			t.Errorf("%s: raw %U in %q", what, r, line)
			return
		}
	}
}

func hostileReport() *Report {
	r := &Report{Blueprints: 1, Base: "main\n\x1b[2Jforged"}
	for _, h := range hostileNames {
		r.Errors = append(r.Errors, LoadError{File: h.name, Line: 1, Column: 2, Message: "spec.x: bad value " + h.name})
		r.Findings = append(r.Findings, Finding{Rule: "SP-API-001", Severity: blueprints.SeverityHigh, Blueprint: "b",
			File: h.name, Line: 3, Column: 4, Path: "spec.namespaces[" + h.name + "]", Message: "value " + h.name, Remediation: "fix " + h.name})
	}
	return r
}

func TestTextEscapesHostileNames(t *testing.T) {
	r := hostileReport()
	var buf bytes.Buffer
	if err := WriteText(&buf, r, WriteOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// One line per error, two per finding (with its remediation), one summary.
	if want := len(r.Errors) + 2*len(r.Findings) + 1; len(lines) != want {
		t.Fatalf("%d lines, want %d: a name forged lines:\n%s", len(lines), want, buf.String())
	}
	for i, h := range hostileNames {
		safeLine(t, h.text, lines[i])
		if want := h.text + ":1:2: ERROR "; !strings.HasPrefix(lines[i], want) {
			t.Errorf("error line %q does not start with %q", lines[i], want)
		}
		f := lines[len(r.Errors)+2*i]
		safeLine(t, h.text, f)
		if want := h.text + ":3:4: HIGH SP-API-001 spec.namespaces[" + h.text + "]: "; !strings.HasPrefix(f, want) {
			t.Errorf("finding line %q does not start with %q", f, want)
		}
		safeLine(t, h.text, lines[len(r.Errors)+2*i+1])
	}
	summary := lines[len(lines)-1]
	safeLine(t, "summary", summary)
	if !strings.Contains(summary, `against base main\n\x1b[2Jforged`) {
		t.Errorf("summary does not show the escaped base: %q", summary)
	}
}

func TestMarkdownCellAndCodeSpan(t *testing.T) {
	for _, tt := range []struct{ in, cell string }{
		{"plain text, ü", "plain text, ü"},
		{"a|b", `a\|b`},
		{"<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"},
		{"[click](https://evil.example)", `\[click\](https://evil.example)`},
		{"![p](https://tracker.example/p.png)", `\!\[p\](https://tracker.example/p.png)`},
		{"*b* _i_ ~~s~~ `c` \\", `\*b\* \_i\_ \~\~s\~\~ \` + "`c\\`" + ` \\`},
		{"@octocat, @org/team", "@&#8203;octocat, @&#8203;org/team"},
		{"&#124; &lt;", "&amp;#124; &amp;lt;"},
		{"two\nlines\r\nthree", "two<br>lines<br>three"},
		{"esc\x1b[2J bad\xff bidi\u202e", `esc\\x1b\[2J bad\\xff bidi\\u202e`},
	} {
		if got := cell(tt.in); got != tt.cell {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.cell)
		}
	}
	for _, tt := range []struct {
		in      string
		inTable bool
		want    string
	}{
		{"spec.x", true, "`spec.x`"},
		{"a|b", true, "`a\\|b`"},
		{"a|b", false, "`a|b`"},
		{"tick`s", true, "``tick`s``"},
		{"``two``", true, "``` ``two`` ```"},
		{"`start", false, "`` `start ``"},
		{"new\nline<b>", true, "`new\\nline<b>`"},
		{"", true, "` `"},
	} {
		if got := codeSpan(tt.in, tt.inTable); got != tt.want {
			t.Errorf("codeSpan(%q, %v) = %q, want %q", tt.in, tt.inTable, got, tt.want)
		}
	}
}

func TestMarkdownEscapesHostileNames(t *testing.T) {
	r := hostileReport()
	for _, s := range []string{"<script>alert(1)</script>", "[x](javascript:alert(1))", "![t](https://tracker.example/p.png)", "@octocat", "a|b|c", "`code` *em*"} {
		r.Findings = append(r.Findings, Finding{Rule: "SP-API-001", Severity: blueprints.SeverityHigh, File: s + ".yaml", Line: 1, Path: "spec." + s, Message: "value " + s})
		r.Errors = append(r.Errors, LoadError{File: s + ".yaml", Line: 1, Column: 1, Message: s})
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, r, WriteOptions{FailOn: blueprints.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	rows, items := 0, 0
	for _, line := range strings.Split(md, "\n") {
		safeLine(t, "markdown", line)
		if strings.HasPrefix(line, "- ") {
			items++
		}
		if !strings.HasPrefix(line, "| 🟠 high | SP-API-001") {
			continue
		}
		rows++
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
		if len(cells) != 7 {
			t.Errorf("row with %d cells: %s", len(cells)-2, line)
			continue
		}
		for i, c := range cells[1:6] {
			c = strings.TrimSpace(c)
			if i == 2 || i == 3 { // location and path: one code span each
				if !isCodeSpan(c) {
					t.Errorf("cell %d is not one code span: %q", i, c)
				}
				continue
			}
			unescaped := backslashed.ReplaceAllString(c, "")
			for _, bad := range []string{"<script", "<b>", "](", "[", "@octocat", "`", "*", "_"} {
				if strings.Contains(unescaped, bad) {
					t.Errorf("cell %d carries %q raw: %s", i, bad, c)
				}
			}
		}
	}
	if rows != len(r.Findings) || items != len(r.Errors) {
		t.Errorf("%d rows and %d list items for %d findings and %d errors: a name broke the layout:\n%s", rows, items, len(r.Findings), len(r.Errors), md)
	}
	if !strings.Contains(md, "against base `main\\n\\x1b[2Jforged`") {
		t.Errorf("base not shown escaped in code: %s", strings.SplitN(md, "\n", 4)[2])
	}
}

// backslashed matches a Markdown backslash escape.
var backslashed = regexp.MustCompile(`\\[[:punct:]]`)

// isCodeSpan reports whether s is exactly one code span: a fence of n
// backticks, content with no run of exactly n backticks, the same fence.
func isCodeSpan(s string) bool {
	n := len(s) - len(strings.TrimLeft(s, "`"))
	if n == 0 || len(s) < 2*n+1 || !strings.HasSuffix(s, strings.Repeat("`", n)) {
		return false
	}
	content := s[n : len(s)-n]
	for _, run := range strings.FieldsFunc(content, func(r rune) bool { return r != '`' }) {
		if len(run) == n {
			return false
		}
	}
	return !strings.HasPrefix(content, "`") && !strings.HasSuffix(content, "`")
}

// TestSARIFURIsForHostileNames: every artifactLocation.uri is a valid URI
// reference with no query or fragment, relative to %SRCROOT%, that
// decodes back to the file's path.
func TestSARIFURIsForHostileNames(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a b.yaml", "50%.yaml", "x#frag.yaml", "q?x=1.yaml", "new\nline.yaml", "cr\r.yaml",
		"a:b.yaml", "pröd.yaml", "bad\xff.yaml", "tab\t.yaml", "sub/dir.yaml", "<b>.yaml", `back\slash.yaml`}
	for _, n := range names {
		p := filepath.Join(root, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, nil, 0o644) // where the file system refuses a name, the path still counts
		uri, base := sarif.ArtifactURI(root, p)
		if base != "%SRCROOT%" {
			t.Errorf("%q: base %q, want %%SRCROOT%%", n, base)
			continue
		}
		u, err := url.Parse(uri)
		if err != nil {
			t.Errorf("%q: uri %q does not parse: %v", n, uri, err)
			continue
		}
		if u.Scheme != "" || u.RawQuery != "" || u.Fragment != "" || u.Host != "" {
			t.Errorf("%q: uri %q reads as scheme %q, host %q, query %q, fragment %q", n, uri, u.Scheme, u.Host, u.RawQuery, u.Fragment)
		}
		for _, c := range []byte(uri) {
			if c <= ' ' || c >= 0x7f || strings.IndexByte(`"#<>?[\]^{|}`+"`", c) >= 0 {
				t.Errorf("%q: uri %q holds %q", n, uri, c)
				break
			}
		}
		if got, err := url.PathUnescape(uri); err != nil || got != filepath.ToSlash(n) {
			t.Errorf("%q: uri %q decodes to %q, %v", n, uri, got, err)
		}
	}
	// Outside the root: an absolute file URI, just as valid.
	other := filepath.Join(t.TempDir(), "x #?%\n.yaml")
	uri, base := sarif.ArtifactURI(root, other)
	u, err := url.Parse(uri)
	if base != "" || err != nil || u.Scheme != "file" || u.RawQuery != "" || u.Fragment != "" || u.Path != filepath.ToSlash(other) {
		t.Errorf("outside the root: %q, %q → %+v, %v", uri, base, u, err)
	}

	// The whole log stays valid JSON, invalid UTF-8 and all.
	var buf bytes.Buffer
	r := hostileReport()
	if err := WriteSARIF(&buf, r, WriteOptions{SrcRoot: root}); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Error("SARIF is not valid JSON")
	}
	buf.Reset()
	if err := WriteJSON(&buf, r); err != nil || !json.Valid(buf.Bytes()) {
		t.Errorf("JSON is not valid: %v", err)
	}
}
