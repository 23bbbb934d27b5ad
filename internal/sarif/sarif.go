// Package sarif writes SARIF 2.1.0 logs the way GitHub code scanning reads
// them, for review (findings in blueprint files) and verify (live checks,
// located at the blueprint field that declared the control) alike: one
// rule per catalog control with its rationale and remediation as help and
// a numeric security-severity, and results that each carry a physical
// location relative to the source root and a partial fingerprint that
// does not depend on line numbers. Only the fields secprov fills are
// modelled.
package sarif

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"secprov.dev/secprov/blueprints"
)

const (
	// SchemaURI is the $schema every log names.
	SchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"
	// Version is the SARIF version written.
	Version = "2.1.0"
	// FingerprintKey names secprov's partial fingerprint; bump its version
	// if the hashed fields ever change, so old alerts close cleanly.
	FingerprintKey = "secprovFinding/v1"
)

// Tool describes the program that produced a run.
type Tool struct {
	Name           string
	InformationURI string
	Version        string // "" is written as devel
}

// Location is where a result points. File, Line and Column are the
// physical location code scanning needs; Cluster, when set, adds the live
// cluster the result was observed on as a logical location.
type Location struct {
	File         string
	Line, Column int
	Cluster      string
}

// Result is one finding or check result.
type Result struct {
	Rule blueprints.ControlID
	// Level is SARIF's none, note, warning or error; "" takes the rule's
	// default level.
	Level string
	// Kind is SARIF's result kind (fail, review, …); "" leaves it out,
	// which SARIF reads as fail.
	Kind     string
	Message  string
	Location Location
	// Identity are the parts that identify the problem across commits
	// (rule, blueprint or cluster, field path, …), never its line: they
	// are hashed into the partial fingerprint.
	Identity   []string
	Properties map[string]string
}

// Run collects the rules and results of one tool run.
type Run struct {
	tool    Tool
	root    string
	rules   []rule
	index   map[blueprints.ControlID]int
	results []result
}

// NewRun starts a run of tool with the given rules. Artifact URIs are made
// relative to srcRoot ("" is the working directory), as code scanning
// requires.
func NewRun(tool Tool, srcRoot string, controls []blueprints.Control) *Run {
	r := &Run{tool: tool, root: srcRoot, index: make(map[blueprints.ControlID]int, len(controls)), results: []result{}}
	for _, c := range controls {
		r.AddRule(c)
	}
	return r
}

// AddRule adds the control as a rule unless the run already has it.
func (r *Run) AddRule(c blueprints.Control) {
	if _, ok := r.index[c.ID]; ok {
		return
	}
	r.index[c.ID] = len(r.rules)
	r.rules = append(r.rules, ruleOf(c))
}

// Add adds a result of a rule the run has.
func (r *Run) Add(res Result) error {
	idx, ok := r.index[res.Rule]
	if !ok {
		return fmt.Errorf("result of rule %s, which is not in the rule list; this is a bug in secprov", res.Rule)
	}
	level := res.Level
	if level == "" {
		level = r.rules[idx].DefaultConfiguration.Level
	}
	loc := location{PhysicalLocation: physical(r.root, res.Location)}
	if c := res.Location.Cluster; c != "" {
		loc.LogicalLocations = []logical{{Name: c, FullyQualifiedName: "cluster/" + c, Kind: "resource"}}
	}
	r.results = append(r.results, result{
		RuleID: res.Rule, RuleIndex: idx, Level: level, Kind: res.Kind,
		Message:             text{Text: res.Message},
		Locations:           []location{loc},
		PartialFingerprints: map[string]string{FingerprintKey: Fingerprint(res.Identity...)},
		Properties:          res.Properties,
	})
	return nil
}

// Encode writes the run as a SARIF log.
func (r *Run) Encode(w io.Writer) error {
	version := r.tool.Version
	if version == "" {
		version = "devel"
	}
	rules := r.rules
	if rules == nil {
		rules = []rule{}
	}
	out := sarifLog{Schema: SchemaURI, Version: Version, Runs: []run{{
		Tool:       tool{Driver: driver{Name: r.tool.Name, InformationURI: r.tool.InformationURI, Version: version, Rules: rules}},
		ColumnKind: "unicodeCodePoints",
		Results:    r.results,
	}}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// Level maps a severity onto SARIF's level: code scanning shows errors and
// warnings prominently and notes quietly.
func Level(s blueprints.Severity) string {
	switch {
	case s >= blueprints.SeverityHigh:
		return "error"
	case s == blueprints.SeverityMedium:
		return "warning"
	}
	return "note"
}

// SecuritySeverity is GitHub's 0–10 score as the numeric string it
// expects; it drives GitHub's own critical/high/medium/low labels (≥9,
// ≥7, ≥4, >0).
func SecuritySeverity(s blueprints.Severity) string {
	return map[blueprints.Severity]string{
		blueprints.SeverityCritical: "9.5", blueprints.SeverityHigh: "8.0", blueprints.SeverityMedium: "5.5",
		blueprints.SeverityLow: "3.0", blueprints.SeverityInfo: "1.0",
	}[s]
}

// Fingerprint is stable across commits for the same problem: it hashes
// what identifies it, not where it is.
func Fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

var lineRefs = regexp.MustCompile(`:\d+(:\d+)?\b|\b(line|column) \d+`)

// WithoutLineNumbers drops the line and column references (file:3:5,
// "line 3") from a message, so a message can be part of a fingerprint
// that survives a line move.
func WithoutLineNumbers(msg string) string {
	return lineRefs.ReplaceAllStringFunc(msg, func(m string) string {
		if strings.HasPrefix(m, ":") {
			return ":#"
		}
		return strings.Fields(m)[0] + " #"
	})
}

type sarifLog struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []run  `json:"runs"`
}

type run struct {
	Tool       tool     `json:"tool"`
	ColumnKind string   `json:"columnKind"`
	Results    []result `json:"results"`
}

type tool struct {
	Driver driver `json:"driver"`
}

type driver struct {
	Name           string `json:"name"`
	InformationURI string `json:"informationUri"`
	Version        string `json:"version"`
	Rules          []rule `json:"rules"`
}

type text struct {
	Text string `json:"text"`
}

type help struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

type rule struct {
	ID                   blueprints.ControlID `json:"id"`
	Name                 string               `json:"name"`
	ShortDescription     text                 `json:"shortDescription"`
	FullDescription      text                 `json:"fullDescription"`
	Help                 help                 `json:"help"`
	DefaultConfiguration ruleConfig           `json:"defaultConfiguration"`
	Properties           ruleProps            `json:"properties"`
}

type ruleConfig struct {
	Level string `json:"level"`
}

type ruleProps struct {
	Tags             []string `json:"tags"`
	Precision        string   `json:"precision"`
	SecuritySeverity string   `json:"security-severity"`
}

type result struct {
	RuleID              blueprints.ControlID `json:"ruleId"`
	RuleIndex           int                  `json:"ruleIndex"`
	Level               string               `json:"level"`
	Kind                string               `json:"kind,omitempty"`
	Message             text                 `json:"message"`
	Locations           []location           `json:"locations"`
	PartialFingerprints map[string]string    `json:"partialFingerprints"`
	Properties          map[string]string    `json:"properties,omitempty"`
}

type location struct {
	PhysicalLocation physicalLocation `json:"physicalLocation"`
	LogicalLocations []logical        `json:"logicalLocations,omitempty"`
}

type physicalLocation struct {
	ArtifactLocation artifact `json:"artifactLocation"`
	Region           region   `json:"region"`
}

type artifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type region struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
}

type logical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// ruleOf is a control as a rule: its title, rationale and remediation
// (from the catalog, so review and verify explain a control alike), its
// references and blueprint field.
func ruleOf(c blueprints.Control) rule {
	refs := make([]string, len(c.Refs))
	for i, r := range c.Refs {
		refs[i] = r.String()
	}
	full := c.Rationale
	if full == "" {
		full = c.Title + "."
	}
	txt := "Remediation: " + c.Remediation
	md := fmt.Sprintf("**%s** (%s, severity %s)\n\n%s\n\n**Remediation:** %s", c.Title, c.ID, c.Severity, full, c.Remediation)
	if len(refs) > 0 {
		txt += "\nReferences: " + strings.Join(refs, "; ")
		md += "\n\n**References:** " + strings.Join(refs, "; ")
	}
	if c.Field != "" {
		txt += "\nField: " + c.Field
		md += "\n\n**Field:** `" + c.Field + "`"
	}
	area := strings.ToLower(c.ID.Area())
	return rule{
		ID: c.ID, Name: ruleName(c.Title),
		ShortDescription:     text{Text: c.Title},
		FullDescription:      text{Text: full},
		Help:                 help{Text: txt, Markdown: md},
		DefaultConfiguration: ruleConfig{Level: Level(c.Severity)},
		Properties: ruleProps{
			Tags: []string{"security", "kubernetes", area}, Precision: "very-high",
			SecuritySeverity: SecuritySeverity(c.Severity),
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

func physical(root string, l Location) physicalLocation {
	uri, base := ArtifactURI(root, l.File)
	return physicalLocation{
		ArtifactLocation: artifact{URI: uri, URIBaseID: base},
		Region:           region{StartLine: max(l.Line, 1), StartColumn: max(l.Column, 1)},
	}
}

// ArtifactURI locates file relative to root (forward slashes, base
// %SRCROOT%), as code scanning requires; a file outside root keeps an
// absolute file URI and no base.
func ArtifactURI(root, file string) (uri, baseID string) {
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
