package review

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/golden"
)

// goldenReport reviews testdata/golden/input: findings of many rules, an
// excepted one, expired and unknown exceptions, a duplicate cluster, a
// file that does not load, and a weakening versus a base.
func goldenReport(t *testing.T) *Report {
	t.Helper()
	dir := filepath.Join("testdata", "golden", "input")
	bps, loadErr := blueprints.Load(dir)
	if loadErr == nil {
		t.Fatal("want load errors from broken.yaml")
	}
	// The base: prod.yaml as it was, with the secure example's encryption.
	baseData := applyEdits(t, "prod.yaml", mustRead(t, filepath.Join(dir, "prod.yaml")), []edit{{"provider: aescbc", "provider: vault-kms"}})
	baseBps, err := blueprints.LoadBytes(filepath.Join(dir, "prod.yaml"), baseData)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReport(bps, Review(bps, Options{Now: testNow, Base: NewBase("main", baseBps)}), loadErr)
	r.Base = "main"
	return r
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestGoldenOutputs(t *testing.T) {
	r := goldenReport(t)
	opts := WriteOptions{FailOn: blueprints.SeverityHigh, ToolVersion: "v0.0.0-test", SrcRoot: "."}
	for _, tt := range []struct {
		file   string
		format Format
		opts   WriteOptions
	}{
		{"report.txt", FormatText, opts},
		{"report-verbose.txt", FormatText, WriteOptions{Verbose: true, FailOn: blueprints.SeverityHigh}},
		{"report.json", FormatJSON, opts},
		{"report.sarif", FormatSARIF, opts},
		{"report.md", FormatMarkdown, opts},
		{"report-fail-on-none.md", FormatMarkdown, WriteOptions{}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, r, tt.format, tt.opts); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "golden/"+tt.file, buf.Bytes())
		})
	}
	for _, f := range []Format{FormatText, FormatJSON, FormatMarkdown} {
		var buf bytes.Buffer
		if err := WriteRules(&buf, f); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "golden/rules."+string(f), buf.Bytes())
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, goldenReport(t)); err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "report", doc, "findings", "errors", "summary")
	var findings, errs []map[string]any
	var summary map[string]any
	json.Unmarshal(doc["findings"], &findings)
	json.Unmarshal(doc["errors"], &errs)
	json.Unmarshal(doc["summary"], &summary)
	if len(findings) == 0 || len(errs) == 0 {
		t.Fatal("golden report should have findings and errors")
	}
	for _, f := range findings {
		wantKeys(t, "finding", f, "rule", "severity", "blueprint", "file", "line", "column", "path", "message", "remediation")
		if !slices.Contains([]string{"critical", "high", "medium", "low", "info"}, f["severity"].(string)) {
			t.Errorf("severity %v", f["severity"])
		}
	}
	for _, e := range errs {
		wantKeys(t, "error", e, "file", "line", "column", "message")
		if !strings.HasPrefix(e["message"].(string), "spec.") {
			t.Errorf("error message %q should start with the field path", e["message"])
		}
	}
	wantKeys(t, "summary", summary, "blueprints", "findings", "errors")
	if summary["blueprints"] != float64(3) || summary["findings"] != float64(len(findings)) || summary["errors"] != float64(len(errs)) {
		t.Errorf("summary %v", summary)
	}

	// Empty lists are [] for consumers that iterate without nil checks.
	buf.Reset()
	WriteJSON(&buf, NewReport(nil, nil, nil))
	if got := strings.Join(strings.Fields(buf.String()), ""); got != `{"findings":[],"errors":[],"summary":{"blueprints":0,"findings":0,"errors":0}}` {
		t.Errorf("empty report = %s", got)
	}
}

func wantKeys[V any](t *testing.T, what string, m map[string]V, keys ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !reflect.DeepEqual(got, keys) {
		t.Errorf("%s keys = %v, want exactly %v", what, got, keys)
	}
}

func TestMarkdownEscaping(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, goldenReport(t), WriteOptions{FailOn: blueprints.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		// Every table row has exactly the header's cell count once escaped
		// pipes are discounted.
		cells := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") - 1
		if cells != 5 && cells != 2 {
			t.Errorf("row with %d cells: %s", cells, line)
		}
	}
	if strings.Contains(md, "<b>") {
		t.Error("raw HTML from a blueprint reached the markdown")
	}
	if !strings.HasPrefix(md, "## ❌ secprov review: 2 load errors, 7 findings at or above high\n") {
		t.Errorf("verdict line: %q", strings.SplitN(md, "\n", 2)[0])
	}
	if i, j := strings.Index(md, "### Load errors"), strings.Index(md, "### Findings"); i < 0 || j < 0 || i > j {
		t.Error("load errors must come before findings")
	}
	if !strings.Contains(md, "<details><summary>1 finding downgraded to info by a blueprint exception</summary>") {
		t.Error("excepted findings are not folded away")
	}

	buf.Reset()
	WriteMarkdown(&buf, NewReport(make([]*blueprints.Blueprint, 2), nil, nil), WriteOptions{FailOn: blueprints.SeverityHigh})
	if !strings.HasPrefix(buf.String(), "## ✅ secprov review: no findings at or above high\n") {
		t.Errorf("clean verdict: %q", buf.String())
	}
}

func TestTextIsOneLinePerRecord(t *testing.T) {
	var buf bytes.Buffer
	r := goldenReport(t)
	if err := WriteText(&buf, r, WriteOptions{FailOn: blueprints.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(r.Errors)+len(r.Findings)+1 {
		t.Fatalf("%d lines for %d errors and %d findings plus a summary", len(lines), len(r.Errors), len(r.Findings))
	}
	for _, l := range lines[:len(lines)-1] {
		if !locLine.MatchString(l) {
			t.Errorf("line does not start with file:line:col: SEVERITY: %q", l)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"text", "json", "sarif", "markdown", "JSON", "md"} {
		if _, err := ParseFormat(s); err != nil {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}
