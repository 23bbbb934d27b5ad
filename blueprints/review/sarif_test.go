package review

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
	"secprov.dev/secprov/internal/sarif/sariftest"
)

var locLine = regexp.MustCompile(`^[^:\s]+:\d+:\d+: (ERROR|CRITICAL|HIGH|MEDIUM|LOW|INFO) `)

// sarifChecker validates a SARIF log against the parts of the 2.1.0
// schema secprov emits: required properties, enums, types, and no
// properties the schema does not define (outside property bags), plus
// GitHub code scanning's own requirements.
type sarifChecker struct {
	t    *testing.T
	errs []string
}

func (c *sarifChecker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, path+": "+fmt.Sprintf(format, args...))
}

// object checks that v is an object with the required keys and only the
// allowed ones (required ∪ optional).
func (c *sarifChecker) object(path string, v any, required, optional []string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		c.fail(path, "want an object, got %T", v)
		return nil
	}
	allowed := map[string]bool{}
	for _, k := range append(required, optional...) {
		allowed[k] = true
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			c.fail(path, "missing required property %q", k)
		}
	}
	for k := range m {
		if !allowed[k] {
			c.fail(path, "property %q is not defined here by SARIF 2.1.0", k)
		}
	}
	return m
}

func (c *sarifChecker) str(path string, v any) string {
	s, ok := v.(string)
	if !ok || s == "" {
		c.fail(path, "want a non-empty string, got %#v", v)
	}
	return s
}

func (c *sarifChecker) integer(path string, v any, min int) int {
	f, ok := v.(float64)
	if !ok || f != float64(int(f)) || int(f) < min {
		c.fail(path, "want an integer ≥ %d, got %#v", min, v)
	}
	return int(f)
}

func (c *sarifChecker) array(path string, v any) []any {
	a, ok := v.([]any)
	if !ok {
		c.fail(path, "want an array, got %T", v)
	}
	return a
}

func (c *sarifChecker) enum(path string, v any, values ...string) {
	s, _ := v.(string)
	for _, x := range values {
		if s == x {
			return
		}
	}
	c.fail(path, "%#v is not one of %v", v, values)
}

func (c *sarifChecker) message(path string, v any) {
	m := c.object(path, v, []string{"text"}, []string{"markdown", "id", "arguments"})
	if m != nil {
		c.str(path+".text", m["text"])
	}
}

var levels = []string{"none", "note", "warning", "error"}

func (c *sarifChecker) log(data []byte) (rules []string, results int) {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		c.fail("$", "not JSON: %v", err)
		return
	}
	top := c.object("$", doc, []string{"version", "runs"}, []string{"$schema", "inlineExternalProperties", "properties"})
	if top == nil {
		return
	}
	if top["version"] != "2.1.0" {
		c.fail("$.version", "%#v, want 2.1.0", top["version"])
	}
	if s, _ := top["$schema"].(string); !strings.Contains(s, "sarif-2.1.0") {
		c.fail("$.$schema", "%q does not name the 2.1.0 schema", s)
	}
	runs := c.array("$.runs", top["runs"])
	if len(runs) != 1 {
		c.fail("$.runs", "want one run, got %d", len(runs))
	}
	for ri, rv := range runs {
		rp := fmt.Sprintf("$.runs[%d]", ri)
		run := c.object(rp, rv, []string{"tool"}, []string{"results", "columnKind", "originalUriBaseIds", "automationDetails", "invocations", "artifacts", "properties"})
		if run == nil {
			continue
		}
		if run["columnKind"] != nil {
			c.enum(rp+".columnKind", run["columnKind"], "utf16CodeUnits", "unicodeCodePoints")
		}
		tool := c.object(rp+".tool", run["tool"], []string{"driver"}, []string{"extensions", "properties"})
		driver := c.object(rp+".tool.driver", tool["driver"], []string{"name"},
			[]string{"informationUri", "version", "semanticVersion", "rules", "fullName", "organization", "properties"})
		c.str(rp+".tool.driver.name", driver["name"])
		ids := map[string]int{}
		for i, rv := range c.array(rp+".tool.driver.rules", driver["rules"]) {
			p := fmt.Sprintf("%s.tool.driver.rules[%d]", rp, i)
			rule := c.object(p, rv, []string{"id"}, []string{"name", "shortDescription", "fullDescription", "help", "helpUri", "defaultConfiguration", "properties"})
			if rule == nil {
				continue
			}
			id := c.str(p+".id", rule["id"])
			if _, dup := ids[id]; dup {
				c.fail(p+".id", "duplicate rule id %s", id)
			}
			ids[id] = i
			rules = append(rules, id)
			if n, _ := rule["name"].(string); n == "" || strings.ContainsAny(n, " /") {
				c.fail(p+".name", "want an identifier-like name, got %q", n)
			}
			for _, k := range []string{"shortDescription", "fullDescription"} {
				c.message(p+"."+k, rule[k])
				if m, _ := rule[k].(map[string]any); m != nil && len(m["text"].(string)) > 1024 {
					c.fail(p+"."+k, "longer than GitHub's 1024 characters")
				}
			}
			help := c.object(p+".help", rule["help"], []string{"text"}, []string{"markdown"})
			c.str(p+".help.text", help["text"])
			if md, _ := help["markdown"].(string); !strings.Contains(md, "Remediation") {
				c.fail(p+".help.markdown", "no remediation")
			}
			cfg := c.object(p+".defaultConfiguration", rule["defaultConfiguration"], []string{"level"}, []string{"enabled", "rank", "parameters"})
			c.enum(p+".defaultConfiguration.level", cfg["level"], levels...)
			props := c.object(p+".properties", rule["properties"], []string{"tags", "security-severity"}, []string{"precision", "problem.severity"})
			for j, tag := range c.array(p+".properties.tags", props["tags"]) {
				c.str(fmt.Sprintf("%s.properties.tags[%d]", p, j), tag)
			}
			ss, _ := props["security-severity"].(string)
			if f, err := strconv.ParseFloat(ss, 64); err != nil || f < 0 || f > 10 {
				c.fail(p+".properties.security-severity", "%#v is not a string number in 0..10", props["security-severity"])
			}
		}
		for i, rv := range c.array(rp+".results", run["results"]) {
			p := fmt.Sprintf("%s.results[%d]", rp, i)
			res := c.object(p, rv, []string{"message"}, []string{"ruleId", "ruleIndex", "level", "locations", "partialFingerprints", "fingerprints", "properties", "suppressions", "kind"})
			if res == nil {
				continue
			}
			results++
			c.message(p+".message", res["message"])
			id := c.str(p+".ruleId", res["ruleId"])
			idx := c.integer(p+".ruleIndex", res["ruleIndex"], 0)
			if want, ok := ids[id]; !ok || want != idx {
				c.fail(p, "ruleId %s / ruleIndex %d do not name the same rule of tool.driver.rules", id, idx)
			}
			c.enum(p+".level", res["level"], levels...)
			locs := c.array(p+".locations", res["locations"])
			if len(locs) == 0 {
				c.fail(p+".locations", "GitHub needs at least one location")
			}
			for j, lv := range locs {
				lp := fmt.Sprintf("%s.locations[%d]", p, j)
				loc := c.object(lp, lv, []string{"physicalLocation"}, []string{"id", "message", "logicalLocations"})
				phys := c.object(lp+".physicalLocation", loc["physicalLocation"], []string{"artifactLocation"}, []string{"region", "contextRegion"})
				art := c.object(lp+".physicalLocation.artifactLocation", phys["artifactLocation"], []string{"uri"}, []string{"uriBaseId", "index"})
				uri := c.str(lp+".physicalLocation.artifactLocation.uri", art["uri"])
				if strings.Contains(uri, `\`) || strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "./") {
					c.fail(lp+".physicalLocation.artifactLocation.uri", "%q is not a relative URI with forward slashes", uri)
				}
				if art["uriBaseId"] != "%SRCROOT%" {
					c.fail(lp+".physicalLocation.artifactLocation.uriBaseId", "%#v, want %%SRCROOT%%", art["uriBaseId"])
				}
				reg := c.object(lp+".physicalLocation.region", phys["region"], []string{"startLine"}, []string{"startColumn", "endLine", "endColumn"})
				c.integer(lp+".physicalLocation.region.startLine", reg["startLine"], 1)
				c.integer(lp+".physicalLocation.region.startColumn", reg["startColumn"], 1)
			}
			fp, ok := res["partialFingerprints"].(map[string]any)
			if !ok || len(fp) == 0 {
				c.fail(p+".partialFingerprints", "missing")
			}
			for k, v := range fp {
				c.str(p+".partialFingerprints."+k, v)
			}
		}
	}
	return rules, results
}

func TestSARIFValid(t *testing.T) {
	r := goldenReport(t)
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, r, WriteOptions{ToolVersion: "v1.2.3", SrcRoot: "."}); err != nil {
		t.Fatal(err)
	}
	sariftest.Check(t, buf.Bytes())
	c := &sarifChecker{t: t}
	rules, results := c.log(buf.Bytes())
	for _, e := range c.errs {
		t.Error(e)
	}
	if results != len(r.Findings)+len(r.Errors) {
		t.Errorf("%d results for %d findings and %d load errors", results, len(r.Findings), len(r.Errors))
	}
	if len(rules) != len(Rules())+1 || rules[len(rules)-1] != string(LoadErrorRule) {
		t.Errorf("rules = %v; want every review rule and %s", rules, LoadErrorRule)
	}
	if !strings.Contains(buf.String(), `"uri": "testdata/golden/input/prod.yaml"`) {
		t.Error("artifact URIs are not relative to the source root")
	}

	// The checker itself catches what it claims to.
	bad := &sarifChecker{t: t}
	bad.log([]byte(`{"version":"2.0.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"A"}]}},"results":[{"ruleId":"B","ruleIndex":0,"level":"fatal","message":{},"locations":[],"extra":1}]}]}`))
	for _, want := range []string{"want 2.1.0", "not one of", "missing required property \"text\"", "do not name the same rule", "property \"extra\"", "at least one location"} {
		if !strings.Contains(strings.Join(bad.errs, "\n"), want) {
			t.Errorf("checker missed %q in a broken log; it said:\n%s", want, strings.Join(bad.errs, "\n"))
		}
	}
}

func TestSARIFFingerprintsStable(t *testing.T) {
	// The same problem on another line keeps its fingerprint, so a code
	// scanning alert follows it across commits.
	a := sarif.Fingerprint("SP-API-001", "shop-prod", "spec.apiServer.endpoint")
	b := sarif.Fingerprint("SP-API-001", "shop-prod", "spec.apiServer.endpoint")
	c := sarif.Fingerprint("SP-API-001", "shop-test", "spec.apiServer.endpoint")
	if a != b || a == c || len(a) != 32 {
		t.Errorf("fingerprints %s %s %s", a, b, c)
	}
	r := &Report{Findings: []Finding{
		{Rule: "SP-API-001", Severity: blueprints.SeverityHigh, Blueprint: "x", File: "a.yaml", Line: 3, Column: 1, Path: "p", Message: "m"},
		{Rule: "SP-API-001", Severity: blueprints.SeverityHigh, Blueprint: "x", File: "a.yaml", Line: 9, Column: 1, Path: "p", Message: "m"},
	}}
	var buf bytes.Buffer
	WriteSARIF(&buf, r, WriteOptions{})
	var log struct {
		Runs []struct {
			Results []struct {
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	res := log.Runs[0].Results
	if len(res) != 2 || res[0].PartialFingerprints[sarif.FingerprintKey] != res[1].PartialFingerprints[sarif.FingerprintKey] {
		t.Errorf("fingerprints differ across lines: %+v", res)
	}
}

// TestSARIFExamples: review SARIF of the example blueprints, clean and
// weakened, validates against the SARIF 2.1.0 schema with physical
// locations, and a finding keeps its fingerprint when a blank line moves
// its field down.
func TestSARIFExamples(t *testing.T) {
	files := exampleFiles(t)
	encode := func(name string, data []byte) *sariftest.Log {
		t.Helper()
		path := filepath.Join("..", "examples", name)
		bps, err := blueprints.LoadBytes(path, data)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteSARIF(&buf, NewReport(bps, Review(bps, Options{Now: testNow}), nil), WriteOptions{ToolVersion: "v1", SrcRoot: ".."}); err != nil {
			t.Fatal(err)
		}
		return sariftest.Check(t, buf.Bytes())
	}
	for name, data := range files {
		encode(name, data)
	}
	weak := applyEdits(t, "prod.yaml", files["prod.yaml"], []edit{{"endpoint: private", "endpoint: public"}})
	moved := applyEdits(t, "prod.yaml", weak, []edit{{"  apiServer:\n", "\n  apiServer:\n"}})
	a, b := encode("prod.yaml", weak), encode("prod.yaml", moved)
	find := func(l *sariftest.Log) sariftest.Result {
		for _, r := range l.Runs[0].Results {
			if r.RuleID == string(blueprints.APIEndpointPrivate) {
				return r
			}
		}
		t.Fatalf("no %s result for a public endpoint", blueprints.APIEndpointPrivate)
		return sariftest.Result{}
	}
	ra, rb := find(a), find(b)
	if got := ra.Locations[0].PhysicalLocation.ArtifactLocation.URI; got != "examples/prod.yaml" {
		t.Errorf("artifact %q, want examples/prod.yaml", got)
	}
	if la, lb := ra.Locations[0].PhysicalLocation.Region.StartLine, rb.Locations[0].PhysicalLocation.Region.StartLine; lb != la+1 {
		t.Errorf("lines %d then %d; the blank line should move the finding down by one", la, lb)
	}
	if ra.PartialFingerprints[sarif.FingerprintKey] != rb.PartialFingerprints[sarif.FingerprintKey] {
		t.Errorf("fingerprint changed with the line: %v → %v", ra.PartialFingerprints, rb.PartialFingerprints)
	}
}
