// Package evidence signs a verify run for auditors: an in-toto Statement
// (v1) in a DSSE envelope that binds the verify report to the exact
// blueprint bytes, the defaulted spec and the cluster's CA, signed with a
// per-environment key (Vault Transit, or a local PEM key), and checks such
// an envelope again offline.
//
// The predicate is in-toto's test-result v0.1, unextended: everything
// secprov adds (the report itself, when the run happened, which cluster
// and environment, the exceptions in force) travels in the annotations
// and content of its configuration resource descriptors, the one place
// test-result leaves open, so a generic in-toto consumer parses it.
package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	trv0 "github.com/in-toto/attestation/go/predicates/test_result/v0"
	ita1 "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
)

// Wire constants of the envelope and statement.
const (
	PayloadType   = "application/vnd.in-toto+json"
	PredicateType = "https://in-toto.io/attestation/test-result/v0.1"
)

// Subject name prefixes: a blueprint file by its base name, the canonical
// JSON of the cluster's defaulted spec, the cluster CA certificate (DER).
const (
	SubjectBlueprint = "blueprint:"
	SubjectSpec      = "spec:"
	SubjectCA        = "cluster-ca:"
)

// Names of the configuration descriptors in the predicate.
const (
	configTool    = "secprov"
	configCatalog = "control-catalog"
	configReport  = "verify-report"
)

// BlueprintFile is one blueprint file as read from disk: the statement
// binds its raw bytes, comments and all.
type BlueprintFile struct {
	Name string // base name; subjects are matched by it
	Data []byte
}

// Input is what one attested verify run is made of.
type Input struct {
	Report     *verify.Report
	Blueprints []BlueprintFile
	// Spec is the cluster's defaulted spec (from the blueprints, which
	// must equal the one the cluster was applied from).
	Spec v1alpha1.Spec
	// CACertDER is the cluster CA certificate the API server presents.
	CACertDER []byte
	Time      time.Time
	Version   string // secprov's
}

// Exception is an exception in force during the run.
type Exception struct {
	Control       string `json:"control"`
	Expires       string `json:"expires"`
	Justification string `json:"justification"`
}

// Claims is a statement as secprov reads it back.
type Claims struct {
	Cluster, Environment, Provider string
	Time                           time.Time
	Version                        string
	Result                         string
	Passed, Warned, Failed         []string
	// Blueprints maps a blueprint file's base name to its sha256 (hex).
	Blueprints    map[string]string
	SpecDigest    string
	CADigest      string
	CatalogDigest string
	ReportDigest  string
	Report        *verify.Report
	Exceptions    []Exception
}

// SHA256 returns the lowercase hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// CanonicalJSON encodes v as JSON with object keys sorted, no
// insignificant whitespace and no HTML escaping, so the same value always
// gives the same bytes (RFC 8785 for the strings, integers and booleans
// secprov's specs hold; specs have no floating point numbers).
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generic); err != nil { // maps encode sorted
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// SpecDigest is the sha256 of the canonical JSON of a defaulted spec.
func SpecDigest(s v1alpha1.Spec) (string, error) {
	b, err := CanonicalJSON(s)
	if err != nil {
		return "", fmt.Errorf("canonical spec: %w", err)
	}
	return SHA256(b), nil
}

// CatalogDigest is the sha256 of the canonical JSON of the control
// catalog this secprov judged against.
func CatalogDigest() string {
	b, err := CanonicalJSON(blueprints.Controls)
	if err != nil {
		panic(err) // the catalog is a Go literal; it always encodes
	}
	return SHA256(b)
}

// ExceptionsInForce are the spec's exceptions that excuse a failure at t:
// justified and not expired, as verify applies them.
func ExceptionsInForce(spec v1alpha1.Spec, t time.Time) []Exception {
	var out []Exception
	for _, x := range spec.Exceptions {
		if blueprints.ExceptionJustified(x.Justification) && !blueprints.ExceptionExpired(x.Expires, t) {
			out = append(out, Exception{Control: x.Control, Expires: x.Expires, Justification: x.Justification})
		}
	}
	return out
}

// Statement builds the in-toto statement of one verify run.
func Statement(in Input) (*ita1.Statement, error) {
	if in.Report == nil {
		return nil, errors.New("evidence: no verify report")
	}
	if len(in.Blueprints) == 0 {
		return nil, errors.New("evidence: no blueprint files: the statement must name the blueprints that produced the cluster")
	}
	if len(in.CACertDER) == 0 {
		return nil, fmt.Errorf("evidence: cluster %s: no CA certificate: the statement must name the cluster, not only its name", in.Report.Cluster)
	}
	var subjects []*ita1.ResourceDescriptor
	seen := map[string]bool{}
	for _, f := range in.Blueprints {
		name := filepath.Base(f.Name)
		if seen[name] {
			return nil, fmt.Errorf("evidence: two blueprint files named %s: subjects are matched by base name, rename one", name)
		}
		seen[name] = true
		subjects = append(subjects, &ita1.ResourceDescriptor{Name: SubjectBlueprint + name, Digest: map[string]string{"sha256": SHA256(f.Data)}})
	}
	specDigest, err := SpecDigest(in.Spec)
	if err != nil {
		return nil, err
	}
	subjects = append(subjects,
		&ita1.ResourceDescriptor{Name: SubjectSpec + in.Report.Cluster, Digest: map[string]string{"sha256": specDigest}, MediaType: "application/json"},
		&ita1.ResourceDescriptor{Name: SubjectCA + in.Report.Cluster, Digest: map[string]string{"sha256": SHA256(in.CACertDER)}, MediaType: "application/pkix-cert"},
	)

	report, err := json.Marshal(in.Report)
	if err != nil {
		return nil, err
	}
	exceptions := ExceptionsInForce(in.Spec, in.Time)
	ann, err := structpb.NewStruct(map[string]any{
		"cluster":     in.Report.Cluster,
		"environment": in.Report.Environment,
		"provider":    in.Report.Provider,
		"startedOn":   in.Time.UTC().Format(time.RFC3339),
		"exceptions":  exceptionsAny(exceptions),
	})
	if err != nil {
		return nil, err
	}
	tr := &trv0.TestResult{
		Result: result(in.Report),
		Configuration: []*ita1.ResourceDescriptor{
			{Name: configTool, Uri: "https://secprov.dev/secprov", Annotations: mustStruct(map[string]any{"version": in.Version})},
			{Name: configCatalog, Digest: map[string]string{"sha256": CatalogDigest()}, MediaType: "application/json"},
			{Name: configReport, Digest: map[string]string{"sha256": SHA256(report)}, MediaType: "application/json", Content: report, Annotations: ann},
		},
	}
	for _, r := range in.Report.Results {
		switch r.Status {
		case verify.StatusPass:
			tr.PassedTests = append(tr.PassedTests, string(r.ID))
		case verify.StatusWarn:
			tr.WarnedTests = append(tr.WarnedTests, string(r.ID))
		case verify.StatusFail, verify.StatusError:
			tr.FailedTests = append(tr.FailedTests, string(r.ID))
		}
	}
	pred, err := toStruct(tr)
	if err != nil {
		return nil, err
	}
	st := &ita1.Statement{Type: ita1.StatementTypeUri, Subject: subjects, PredicateType: PredicateType, Predicate: pred}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	return st, nil
}

// result is test-result's verdict: FAILED when any check failed or
// errored, WARNED when only warnings remain, else PASSED. Skips count as
// neither: the report says why each was skipped.
func result(r *verify.Report) string {
	switch {
	case r.Summary.Failed+r.Summary.Errored > 0:
		return "FAILED"
	case r.Summary.Warned > 0:
		return "WARNED"
	}
	return "PASSED"
}

func exceptionsAny(xs []Exception) []any {
	out := make([]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, map[string]any{"control": x.Control, "expires": x.Expires, "justification": x.Justification})
	}
	return out
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func toStruct(m *trv0.TestResult) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	return s, protojson.Unmarshal(b, s)
}

// MarshalStatement encodes a statement as the envelope's payload.
func MarshalStatement(st *ita1.Statement) ([]byte, error) {
	return protojson.Marshal(st)
}

// ParseStatement decodes a payload and reads secprov's claims from it.
// It checks the statement's shape only; the signature is the caller's.
func ParseStatement(payload []byte) (*Claims, error) {
	st := &ita1.Statement{}
	if err := protojson.Unmarshal(payload, st); err != nil {
		return nil, fmt.Errorf("statement is not an in-toto statement: %w", err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	if st.GetType() != ita1.StatementTypeUri {
		return nil, fmt.Errorf("statement type %q, want %q", st.GetType(), ita1.StatementTypeUri)
	}
	if st.GetPredicateType() != PredicateType {
		return nil, fmt.Errorf("predicate type %q, want %q", st.GetPredicateType(), PredicateType)
	}
	pb, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, err
	}
	tr := &trv0.TestResult{}
	if err := protojson.Unmarshal(pb, tr); err != nil {
		return nil, fmt.Errorf("predicate is not a test-result: %w", err)
	}
	c := &Claims{Blueprints: map[string]string{}, Result: tr.GetResult(),
		Passed: tr.GetPassedTests(), Warned: tr.GetWarnedTests(), Failed: tr.GetFailedTests()}
	for _, s := range st.GetSubject() {
		d := s.GetDigest()["sha256"]
		if d == "" {
			return nil, fmt.Errorf("subject %s has no sha256 digest", s.GetName())
		}
		switch name := s.GetName(); {
		case strings.HasPrefix(name, SubjectBlueprint):
			c.Blueprints[strings.TrimPrefix(name, SubjectBlueprint)] = d
		case strings.HasPrefix(name, SubjectSpec):
			c.SpecDigest = d
		case strings.HasPrefix(name, SubjectCA):
			c.CADigest = d
		default:
			return nil, fmt.Errorf("unknown subject %q", name)
		}
	}
	if len(c.Blueprints) == 0 || c.SpecDigest == "" || c.CADigest == "" {
		return nil, errors.New("statement lacks a blueprint, spec or cluster-ca subject")
	}
	for _, rd := range tr.GetConfiguration() {
		switch rd.GetName() {
		case configTool:
			c.Version, _ = rd.GetAnnotations().AsMap()["version"].(string)
		case configCatalog:
			c.CatalogDigest = rd.GetDigest()["sha256"]
		case configReport:
			if err := c.readReport(rd); err != nil {
				return nil, err
			}
		}
	}
	if c.Report == nil {
		return nil, errors.New("predicate carries no verify-report")
	}
	return c, nil
}

func (c *Claims) readReport(rd *ita1.ResourceDescriptor) error {
	c.ReportDigest = rd.GetDigest()["sha256"]
	if got := SHA256(rd.GetContent()); got != c.ReportDigest {
		return fmt.Errorf("embedded verify report has sha256 %s, but its descriptor says %s", got, c.ReportDigest)
	}
	c.Report = &verify.Report{}
	if err := json.Unmarshal(rd.GetContent(), c.Report); err != nil {
		return fmt.Errorf("embedded verify report: %w", err)
	}
	m := rd.GetAnnotations().AsMap()
	c.Cluster, _ = m["cluster"].(string)
	c.Environment, _ = m["environment"].(string)
	c.Provider, _ = m["provider"].(string)
	if s, _ := m["startedOn"].(string); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("verify-report startedOn: %w", err)
		}
		c.Time = t
	}
	xs, _ := m["exceptions"].([]any)
	for _, x := range xs {
		xm, _ := x.(map[string]any)
		e := Exception{}
		e.Control, _ = xm["control"].(string)
		e.Expires, _ = xm["expires"].(string)
		e.Justification, _ = xm["justification"].(string)
		c.Exceptions = append(c.Exceptions, e)
	}
	if c.Cluster == "" || c.Environment == "" {
		return errors.New("verify-report names no cluster or environment")
	}
	if c.Cluster != c.Report.Cluster || c.Environment != c.Report.Environment {
		return fmt.Errorf("verify-report annotations say %s/%s but the report is of %s/%s", c.Cluster, c.Environment, c.Report.Cluster, c.Report.Environment)
	}
	return nil
}

// ConsistentLists reports the first check ID whose status in the
// predicate's lists differs from the embedded report.
func (c *Claims) ConsistentLists() error {
	want := map[string]string{}
	for _, id := range c.Passed {
		want[id] = "passed"
	}
	for _, id := range c.Warned {
		want[id] = "warned"
	}
	for _, id := range c.Failed {
		want[id] = "failed"
	}
	for _, r := range c.Report.Results {
		got := map[verify.Status]string{verify.StatusPass: "passed", verify.StatusWarn: "warned",
			verify.StatusFail: "failed", verify.StatusError: "failed"}[r.Status]
		if want[string(r.ID)] != got {
			return fmt.Errorf("check %s is %q in the report but %q in the predicate", r.ID, r.Status, orNone(want[string(r.ID)]))
		}
		delete(want, string(r.ID))
	}
	if len(want) > 0 {
		ids := make([]string, 0, len(want))
		for id := range want {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return fmt.Errorf("predicate lists checks the report does not hold: %s", strings.Join(ids, ", "))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
