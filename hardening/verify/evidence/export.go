package evidence

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
)

// Exports of signed evidence for the tools auditors and platform
// dashboards read. Each names the envelope it came from by the sha256 of
// its bytes, so the export can be traced back to what was signed; the
// export itself is not signed.

// EnvelopeDigest is the sha256 (hex) of an envelope file's bytes.
func EnvelopeDigest(envJSON []byte) string { return SHA256(envJSON) }

// Labels and annotations on an exported ClusterReport.
const (
	ReportSource          = "secprov"
	EnvelopeDigestKey     = "secprov.dev/evidence-sha256"
	ReportClusterLabel    = "secprov.dev/cluster"
	ReportEnvironmentKey  = "secprov.dev/environment"
	reportNamePrefix      = "secprov-verify-"
	oscalVersion          = "1.1.2"
	oscalObjectiveType    = "objective-id"
	oscalSatisfied        = "satisfied"
	oscalNotSatisfied     = "not-satisfied"
	oscalMethodTest       = "TEST"
	evidenceResourceTitle = "secprov verify evidence (DSSE envelope)"
)

// ClusterReport renders the run of c as an OpenReports ClusterReport
// (openreports.io/v1alpha1, the successor of the wg-policy PolicyReport):
// one result per check, with the envelope's digest as an annotation and
// on every result.
func ClusterReport(c *Claims, envelopeDigest string) (*orv1alpha1.ClusterReport, error) {
	if c.Report == nil {
		return nil, fmt.Errorf("the statement embeds no verify report")
	}
	ts := metav1.Timestamp{Seconds: c.Time.Unix()}
	rep := &orv1alpha1.ClusterReport{
		TypeMeta: metav1.TypeMeta{APIVersion: orv1alpha1.SchemeGroupVersion.String(), Kind: "ClusterReport"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        reportNamePrefix + c.Cluster,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "secprov", ReportClusterLabel: c.Cluster, ReportEnvironmentKey: c.Environment},
			Annotations: map[string]string{EnvelopeDigestKey: envelopeDigest},
		},
		Source: ReportSource,
	}
	for _, r := range c.Report.Results {
		res := orv1alpha1.ReportResult{
			Source: ReportSource, Policy: string(r.ID), Rule: r.Title, Category: area(r.ID),
			Severity: orv1alpha1.ResultSeverity(reportSeverity(r.Severity)), Timestamp: ts, Scored: true,
			Result: orv1alpha1.Result(reportResult(r.Status)), Description: r.Reason,
			Properties: map[string]string{EnvelopeDigestKey: envelopeDigest, "cluster": c.Cluster, "environment": c.Environment},
		}
		switch res.Result {
		case "pass":
			rep.Summary.Pass++
		case "fail":
			rep.Summary.Fail++
		case "warn":
			rep.Summary.Warn++
		case "error":
			rep.Summary.Error++
		default:
			rep.Summary.Skip++
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

// area is a control's area: SP-NET-002 → NET.
func area(id blueprints.ControlID) string {
	parts := strings.Split(string(id), "-")
	if len(parts) == 3 {
		return parts[1]
	}
	return string(id)
}

// reportSeverity maps secprov's severities onto the report's
// (critical, high, medium, low, info).
func reportSeverity(s blueprints.Severity) string {
	switch s {
	case blueprints.SeverityCritical, blueprints.SeverityHigh, blueprints.SeverityMedium, blueprints.SeverityLow, blueprints.SeverityInfo:
		return s.String()
	}
	return "info"
}

func reportResult(s verify.Status) string {
	switch s {
	case verify.StatusPass, verify.StatusFail, verify.StatusWarn, verify.StatusError, verify.StatusSkip:
		return string(s)
	}
	return "error"
}

// OSCAL assessment results (NIST OSCAL 1.1), the part of the model secprov
// fills: one result for the run, an observation per check with the
// envelope as its evidence, and a finding per check whose target is the
// control's ID.
type (
	OSCALDocument struct {
		AssessmentResults OSCALAssessmentResults `json:"assessment-results"`
	}
	OSCALAssessmentResults struct {
		UUID       string          `json:"uuid"`
		Metadata   OSCALMetadata   `json:"metadata"`
		ImportAP   OSCALImportAP   `json:"import-ap"`
		Results    []OSCALResult   `json:"results"`
		BackMatter OSCALBackMatter `json:"back-matter"`
	}
	OSCALMetadata struct {
		Title        string `json:"title"`
		LastModified string `json:"last-modified"`
		Version      string `json:"version"`
		OSCALVersion string `json:"oscal-version"`
	}
	OSCALImportAP struct {
		Href    string `json:"href"`
		Remarks string `json:"remarks,omitempty"`
	}
	OSCALResult struct {
		UUID             string                `json:"uuid"`
		Title            string                `json:"title"`
		Description      string                `json:"description"`
		Start            string                `json:"start"`
		End              string                `json:"end,omitempty"`
		Props            []OSCALProp           `json:"props,omitempty"`
		ReviewedControls OSCALReviewedControls `json:"reviewed-controls"`
		Observations     []OSCALObservation    `json:"observations,omitempty"`
		Findings         []OSCALFinding        `json:"findings,omitempty"`
	}
	OSCALProp struct {
		Name  string `json:"name"`
		Value string `json:"value"`
		NS    string `json:"ns,omitempty"`
	}
	OSCALReviewedControls struct {
		ControlSelections []OSCALControlSelection `json:"control-selections"`
	}
	OSCALControlSelection struct {
		IncludeControls []OSCALControlRef `json:"include-controls"`
	}
	OSCALControlRef struct {
		ControlID string `json:"control-id"`
	}
	OSCALObservation struct {
		UUID             string          `json:"uuid"`
		Title            string          `json:"title,omitempty"`
		Description      string          `json:"description"`
		Methods          []string        `json:"methods"`
		Collected        string          `json:"collected"`
		RelevantEvidence []OSCALEvidence `json:"relevant-evidence,omitempty"`
	}
	OSCALEvidence struct {
		Href        string `json:"href"`
		Description string `json:"description"`
	}
	OSCALFinding struct {
		UUID                string                    `json:"uuid"`
		Title               string                    `json:"title"`
		Description         string                    `json:"description"`
		Target              OSCALTarget               `json:"target"`
		RelatedObservations []OSCALRelatedObservation `json:"related-observations,omitempty"`
	}
	OSCALTarget struct {
		Type     string            `json:"type"`
		TargetID string            `json:"target-id"`
		Status   OSCALTargetStatus `json:"status"`
	}
	OSCALTargetStatus struct {
		State  string `json:"state"`
		Reason string `json:"reason,omitempty"`
	}
	OSCALRelatedObservation struct {
		ObservationUUID string `json:"observation-uuid"`
	}
	OSCALBackMatter struct {
		Resources []OSCALResource `json:"resources"`
	}
	OSCALResource struct {
		UUID   string      `json:"uuid"`
		Title  string      `json:"title"`
		RLinks []OSCALLink `json:"rlinks"`
	}
	OSCALLink struct {
		Href   string      `json:"href"`
		Hashes []OSCALHash `json:"hashes"`
	}
	OSCALHash struct {
		Algorithm string `json:"algorithm"`
		Value     string `json:"value"`
	}
)

// nameUUID is a name-based UUID (version 5 layout over SHA-256's first
// 16 bytes): the same envelope and name give the same UUID, so an export
// is reproducible.
func nameUUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := h[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// OSCAL renders the run of c as OSCAL assessment results. envelopeFile is
// how the back matter links the envelope (its file name).
func OSCAL(c *Claims, envelopeFile, envelopeDigest string) (*OSCALDocument, error) {
	if c.Report == nil {
		return nil, fmt.Errorf("the statement embeds no verify report")
	}
	at := c.Time.UTC().Format(time.RFC3339)
	envRes := nameUUID(envelopeDigest, "envelope")
	res := OSCALResult{
		UUID:        nameUUID(envelopeDigest, "result"),
		Title:       fmt.Sprintf("secprov verify of cluster %s (%s)", c.Cluster, c.Environment),
		Description: fmt.Sprintf("Live checks of cluster %s by secprov %s: %s. Signed evidence: sha256:%s.", c.Cluster, c.Version, c.Result, envelopeDigest),
		Start:       at, End: at,
		Props: []OSCALProp{{Name: "cluster", Value: c.Cluster, NS: "https://secprov.dev/ns/oscal"}, {Name: "environment", Value: c.Environment, NS: "https://secprov.dev/ns/oscal"}},
	}
	var sel OSCALControlSelection
	for _, r := range c.Report.Results {
		id := strings.ToLower(string(r.ID))
		sel.IncludeControls = append(sel.IncludeControls, OSCALControlRef{ControlID: id})
		obs := OSCALObservation{
			UUID: nameUUID(envelopeDigest, "observation", string(r.ID)), Title: string(r.ID) + " " + r.Title,
			Description: fmt.Sprintf("%s: %s", r.Status, r.Reason), Methods: []string{oscalMethodTest}, Collected: at,
			RelevantEvidence: []OSCALEvidence{{Href: "#" + envRes, Description: "the signed verify run (DSSE envelope) that holds this check's result and evidence"}},
		}
		state := oscalSatisfied
		if r.Status == verify.StatusFail || r.Status == verify.StatusError {
			state = oscalNotSatisfied
		}
		res.Observations = append(res.Observations, obs)
		res.Findings = append(res.Findings, OSCALFinding{
			UUID: nameUUID(envelopeDigest, "finding", string(r.ID)), Title: string(r.ID) + " " + r.Title, Description: r.Reason,
			Target:              OSCALTarget{Type: oscalObjectiveType, TargetID: id, Status: OSCALTargetStatus{State: state, Reason: string(r.Status)}},
			RelatedObservations: []OSCALRelatedObservation{{ObservationUUID: obs.UUID}},
		})
	}
	res.ReviewedControls.ControlSelections = []OSCALControlSelection{sel}
	return &OSCALDocument{AssessmentResults: OSCALAssessmentResults{
		UUID:     nameUUID(envelopeDigest, "assessment-results"),
		Metadata: OSCALMetadata{Title: "secprov verify: " + c.Cluster, LastModified: at, Version: orNone(c.Version), OSCALVersion: oscalVersion},
		ImportAP: OSCALImportAP{Href: "#" + envRes, Remarks: "secprov's assessment plan is its control catalog, digest sha256:" + c.CatalogDigest},
		Results:  []OSCALResult{res},
		BackMatter: OSCALBackMatter{Resources: []OSCALResource{{UUID: envRes, Title: evidenceResourceTitle,
			RLinks: []OSCALLink{{Href: envelopeFile, Hashes: []OSCALHash{{Algorithm: "SHA-256", Value: envelopeDigest}}}}}}},
	}}, nil
}

// CheckOSCAL checks an assessment-results document for the fields the
// OSCAL 1.1 model requires (no copy of the OSCAL JSON schema can be had
// from the registries this project may use): what a validator would
// reject, named by path.
func CheckOSCAL(data []byte) error {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var errs []string
	req := func(m map[string]any, path string, keys ...string) {
		for _, k := range keys {
			v, ok := m[k]
			if !ok || v == nil || v == "" {
				errs = append(errs, path+"."+k+" is required")
			}
		}
	}
	obj := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	list := func(v any) []any { l, _ := v.([]any); return l }
	ar := obj(doc["assessment-results"])
	if ar == nil {
		return fmt.Errorf("assessment-results is required")
	}
	req(ar, "assessment-results", "uuid", "metadata", "import-ap", "results")
	req(obj(ar["metadata"]), "assessment-results.metadata", "title", "last-modified", "version", "oscal-version")
	req(obj(ar["import-ap"]), "assessment-results.import-ap", "href")
	if len(list(ar["results"])) == 0 {
		errs = append(errs, "assessment-results.results needs at least one result")
	}
	uuids := map[string]bool{}
	checkUUID := func(path string, v any) {
		s, _ := v.(string)
		if !uuidPattern(s) {
			errs = append(errs, fmt.Sprintf("%s %q is not an RFC 4122 UUID", path, s))
		}
		if uuids[s] {
			errs = append(errs, fmt.Sprintf("%s %q is not unique", path, s))
		}
		uuids[s] = true
	}
	checkUUID("assessment-results.uuid", ar["uuid"])
	for i, r := range list(ar["results"]) {
		p := fmt.Sprintf("assessment-results.results[%d]", i)
		rm := obj(r)
		req(rm, p, "uuid", "title", "description", "start", "reviewed-controls")
		checkUUID(p+".uuid", rm["uuid"])
		if len(list(obj(rm["reviewed-controls"])["control-selections"])) == 0 {
			errs = append(errs, p+".reviewed-controls.control-selections needs at least one selection")
		}
		for j, o := range list(rm["observations"]) {
			op := fmt.Sprintf("%s.observations[%d]", p, j)
			req(obj(o), op, "uuid", "description", "methods", "collected")
			checkUUID(op+".uuid", obj(o)["uuid"])
		}
		for j, f := range list(rm["findings"]) {
			fp := fmt.Sprintf("%s.findings[%d]", p, j)
			fm := obj(f)
			req(fm, fp, "uuid", "title", "description", "target")
			checkUUID(fp+".uuid", fm["uuid"])
			t := obj(fm["target"])
			req(t, fp+".target", "type", "target-id", "status")
			if st := obj(t["status"])["state"]; st != oscalSatisfied && st != oscalNotSatisfied {
				errs = append(errs, fmt.Sprintf("%s.target.status.state %v is not satisfied or not-satisfied", fp, st))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("OSCAL assessment results: %s", strings.Join(errs, "; "))
	}
	return nil
}

func uuidPattern(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
	}
	return strings.ContainsRune("12345", rune(s[14])) && strings.ContainsRune("89ab", rune(s[19]))
}
