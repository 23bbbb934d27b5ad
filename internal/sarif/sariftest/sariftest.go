// Package sariftest validates SARIF logs against the official SARIF 2.1.0
// JSON schema (testdata/sarif-schema-2.1.0.json; see testdata/README.md
// for where it comes from) and against what GitHub code scanning needs on
// top of it. Test-only: only _test files import it, so the schema is never
// linked into secprov.
package sariftest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

//go:embed testdata/sarif-schema-2.1.0.json
var schemaJSON []byte

// schemaID is the $id the schema declares for itself.
const schemaID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft4
	c.AssertFormat = true
	if err := c.AddResource(schemaID, bytes.NewReader(schemaJSON)); err != nil {
		return nil, err
	}
	return c.Compile(schemaID)
})

// Validate checks data against the SARIF 2.1.0 schema.
func Validate(data []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("compiling the SARIF schema: %w", err)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}

// Log is the part of a SARIF log tests look into.
type Log struct {
	Runs []struct {
		Tool struct {
			Driver struct {
				Rules []struct {
					ID         string `json:"id"`
					Properties struct {
						SecuritySeverity string `json:"security-severity"`
					} `json:"properties"`
					Help struct {
						Text string `json:"text"`
					} `json:"help"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []Result `json:"results"`
	} `json:"runs"`
}

// Result is the part of a SARIF result tests look into.
type Result struct {
	RuleID  string `json:"ruleId"`
	Level   string `json:"level"`
	Message struct {
		Text string `json:"text"`
	} `json:"message"`
	Locations []struct {
		PhysicalLocation *struct {
			ArtifactLocation struct {
				URI       string `json:"uri"`
				URIBaseID string `json:"uriBaseId"`
			} `json:"artifactLocation"`
			Region struct {
				StartLine   int `json:"startLine"`
				StartColumn int `json:"startColumn"`
			} `json:"region"`
		} `json:"physicalLocation"`
		LogicalLocations []struct {
			Name string `json:"name"`
		} `json:"logicalLocations"`
	} `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

// Check validates data against the schema and GitHub's needs: every rule
// has help and a numeric security-severity, and every result a physical
// location relative to %SRCROOT% with a line, and a partial fingerprint.
// It returns the decoded log.
func Check(t testing.TB, data []byte) *Log {
	t.Helper()
	if err := Validate(data); err != nil {
		t.Fatalf("SARIF log does not validate against the 2.1.0 schema: %v", err)
	}
	var l Log
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Runs {
		for _, rule := range r.Tool.Driver.Rules {
			if rule.Help.Text == "" || rule.Properties.SecuritySeverity == "" {
				t.Errorf("rule %s: help %q, security-severity %q", rule.ID, rule.Help.Text, rule.Properties.SecuritySeverity)
			}
		}
		for i, res := range r.Results {
			if len(res.Locations) == 0 || res.Locations[0].PhysicalLocation == nil {
				t.Errorf("result %d (%s): no physical location", i, res.RuleID)
				continue
			}
			p := res.Locations[0].PhysicalLocation
			if u := p.ArtifactLocation.URI; u == "" || strings.HasPrefix(u, "/") || strings.Contains(u, ":") || p.ArtifactLocation.URIBaseID != "%SRCROOT%" {
				t.Errorf("result %d (%s): artifact %q base %q, want a relative URI under %%SRCROOT%%", i, res.RuleID, u, p.ArtifactLocation.URIBaseID)
			}
			if p.Region.StartLine < 1 {
				t.Errorf("result %d (%s): startLine %d", i, res.RuleID, p.Region.StartLine)
			}
			if len(res.PartialFingerprints) == 0 {
				t.Errorf("result %d (%s): no partialFingerprints", i, res.RuleID)
			}
		}
	}
	return &l
}
