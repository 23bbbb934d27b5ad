package review

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode"

	"secprov.dev/secprov/blueprints"
)

// SARIF 2.1.0 as GitHub code scanning reads it. Only the fields secprov
// fills are modelled.
const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	// InformationURI is where the SARIF tool entry points users.
	InformationURI = "https://secprov.dev/docs/review"
	// LoadErrorRule is the synthetic rule load errors are reported under
	// in SARIF, where every result needs a rule.
	LoadErrorRule = blueprints.LoadErrorRule
	// fingerprintKey names secprov's partial fingerprint; bump the version
	// if the hashed fields ever change, so old alerts close cleanly.
	fingerprintKey = "secprovFinding/v1"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool     `json:"tool"`
	ColumnKind string        `json:"columnKind"`
	Results    []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifHelp struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

type sarifRule struct {
	ID                   blueprints.ControlID `json:"id"`
	Name                 string               `json:"name"`
	ShortDescription     sarifText            `json:"shortDescription"`
	FullDescription      sarifText            `json:"fullDescription"`
	Help                 sarifHelp            `json:"help"`
	DefaultConfiguration sarifRuleConfig      `json:"defaultConfiguration"`
	Properties           sarifRuleProps       `json:"properties"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	Tags             []string `json:"tags"`
	Precision        string   `json:"precision"`
	SecuritySeverity string   `json:"security-severity"`
}

type sarifResult struct {
	RuleID              blueprints.ControlID `json:"ruleId"`
	RuleIndex           int                  `json:"ruleIndex"`
	Level               string               `json:"level"`
	Message             sarifText            `json:"message"`
	Locations           []sarifLocation      `json:"locations"`
	PartialFingerprints map[string]string    `json:"partialFingerprints"`
	Properties          map[string]string    `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
}

// sarifLevel maps a severity onto SARIF's level: code scanning shows
// errors and warnings prominently and notes quietly.
func sarifLevel(s blueprints.Severity) string {
	switch {
	case s >= blueprints.SeverityHigh:
		return "error"
	case s == blueprints.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub's 0–10 score, which drives its own
// critical/high/medium/low labels (≥9, ≥7, ≥4, >0).
func securitySeverity(s blueprints.Severity) string {
	return map[blueprints.Severity]string{
		blueprints.SeverityCritical: "9.5", blueprints.SeverityHigh: "8.0", blueprints.SeverityMedium: "5.5",
		blueprints.SeverityLow: "3.0", blueprints.SeverityInfo: "1.0",
	}[s]
}

// WriteSARIF writes the report as a SARIF 2.1.0 log for GitHub code
// scanning: every review rule (and SP-LOAD-001 for load errors) with help
// and a security-severity, and one result per finding and load error.
func WriteSARIF(w io.Writer, r *Report, opts WriteOptions) error {
	ctls := append(Rules(), blueprints.Control{
		ID: LoadErrorRule, Title: "Blueprint files load", Severity: blueprints.SeverityHigh,
		Rationale:   "A blueprint that does not load cannot be reviewed or provisioned.",
		Remediation: "Fix the reported YAML or schema problem at the given line.",
	})
	rules := make([]sarifRule, len(ctls))
	index := make(map[blueprints.ControlID]int, len(ctls))
	for i, c := range ctls {
		rules[i] = sarifRuleOf(c)
		index[c.ID] = i
	}
	version := opts.ToolVersion
	if version == "" {
		version = "devel"
	}
	run := sarifRun{
		Tool:       sarifTool{Driver: sarifDriver{Name: "secprov", InformationURI: InformationURI, Version: version, Rules: rules}},
		ColumnKind: "unicodeCodePoints",
		Results:    []sarifResult{},
	}
	for _, e := range r.Errors {
		run.Results = append(run.Results, sarifResult{
			RuleID: LoadErrorRule, RuleIndex: index[LoadErrorRule], Level: "error",
			Message:             sarifText{Text: e.Message},
			Locations:           []sarifLocation{sarifLoc(opts.SrcRoot, e.File, e.Line, e.Column)},
			PartialFingerprints: map[string]string{fingerprintKey: fingerprint(string(LoadErrorRule), e.File, e.Message)},
		})
	}
	for _, f := range r.Findings {
		idx, ok := index[f.Rule]
		if !ok {
			return fmt.Errorf("finding of rule %s, which is not in the rule list; this is a bug in secprov", f.Rule)
		}
		props := map[string]string{"severity": f.Severity.String(), "blueprint": f.Blueprint, "path": f.Path}
		if f.Exception != nil {
			props["exceptionExpires"] = f.Exception.Expires
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: f.Rule, RuleIndex: idx, Level: sarifLevel(f.Severity),
			Message:             sarifText{Text: fmt.Sprintf("%s: %s", f.Path, f.Message)},
			Locations:           []sarifLocation{sarifLoc(opts.SrcRoot, f.File, f.Line, f.Column)},
			PartialFingerprints: map[string]string{fingerprintKey: fingerprint(string(f.Rule), f.Blueprint, f.Path)},
			Properties:          props,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

func sarifRuleOf(c blueprints.Control) sarifRule {
	refs := make([]string, len(c.Refs))
	for i, r := range c.Refs {
		refs[i] = r.String()
	}
	full := c.Rationale
	if full == "" {
		full = c.Title + "."
	}
	text := "Remediation: " + c.Remediation
	md := fmt.Sprintf("**%s** (%s, severity %s)\n\n%s\n\n**Remediation:** %s", c.Title, c.ID, c.Severity, full, c.Remediation)
	if len(refs) > 0 {
		text += "\nReferences: " + strings.Join(refs, "; ")
		md += "\n\n**References:** " + strings.Join(refs, "; ")
	}
	if c.Field != "" {
		text += "\nField: " + c.Field
		md += "\n\n**Field:** `" + c.Field + "`"
	}
	area := strings.ToLower(c.ID.Area())
	return sarifRule{
		ID: c.ID, Name: ruleName(c.Title),
		ShortDescription:     sarifText{Text: c.Title},
		FullDescription:      sarifText{Text: full},
		Help:                 sarifHelp{Text: text, Markdown: md},
		DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(c.Severity)},
		Properties: sarifRuleProps{
			Tags: []string{"security", "kubernetes", area}, Precision: "very-high",
			SecuritySeverity: securitySeverity(c.Severity),
		},
	}
}

// ruleName turns a title into the PascalCase identifier SARIF expects in
// rule.name ("API server endpoint is private" → APIServerEndpointIsPrivate).
func ruleName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		rs := []rune(w)
		rs[0] = unicode.ToUpper(rs[0])
		b.WriteString(string(rs))
	}
	return b.String()
}

// fingerprint is stable across commits for the same problem: it hashes
// what identifies it (rule, blueprint, field), not its line.
func fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// sarifLoc locates file relative to root (forward slashes, %SRCROOT%), as
// code scanning requires; a file outside root keeps an absolute file URI.
func sarifLoc(root, file string, line, col int) sarifLocation {
	uri, base := artifactURI(root, file)
	return sarifLocation{PhysicalLocation: sarifPhysical{
		ArtifactLocation: sarifArtifact{URI: uri, URIBaseID: base},
		Region:           sarifRegion{StartLine: max(line, 1), StartColumn: max(col, 1)},
	}}
}

func artifactURI(root, file string) (uri, baseID string) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(a); err == nil {
			return r
		}
		return a
	}
	if root == "" {
		root = "."
	}
	// The file's own name is kept as written: resolving it would print
	// where a link points, which may be outside the reviewed tree.
	absFile := filepath.Join(abs(filepath.Dir(file)), filepath.Base(file))
	if rel, err := filepath.Rel(abs(root), absFile); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		// A relative reference whose first segment held a ':' would read
		// as a scheme ("a:b.yaml"), so ':' is encoded here.
		return escapeURIPath(filepath.ToSlash(rel), ":"), "%SRCROOT%"
	}
	a := filepath.ToSlash(absFile)
	if !strings.HasPrefix(a, "/") {
		a = "/" + a // Windows: file:///C:/…
	}
	return "file://" + escapeURIPath(a, ""), ""
}

// escapeURIPath percent-encodes, byte by byte, everything RFC 3986 does
// not allow in a path (space, %, #, ?, control characters, non-ASCII, …)
// and the characters in also, so any file name gives a valid URI
// reference that decodes back to it.
func escapeURIPath(p, also string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x80 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0) && strings.IndexByte(also, c) < 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
