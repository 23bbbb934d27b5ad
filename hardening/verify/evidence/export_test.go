package evidence

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestExports: the ClusterReport and the OSCAL assessment results of a
// signed run carry every check, their verdicts and the envelope's digest;
// the OSCAL document has what the model requires, and the checker
// rejects a document that lacks it.
func TestExports(t *testing.T) {
	fx := newFixture(t)
	env, err := Sign(context.Background(), fx.test, fx.in)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(context.Background(), env, VerifyOptions{Keys: fx.keys, Now: runDay})
	if err != nil {
		t.Fatal(err)
	}
	digest := EnvelopeDigest(env)

	rep, err := ClusterReport(v.Claims, digest)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "ClusterReport" || rep.APIVersion != "openreports.io/v1alpha1" || rep.Annotations[EnvelopeDigestKey] != digest {
		t.Errorf("report header: %s %s %v", rep.APIVersion, rep.Kind, rep.Annotations)
	}
	if s := rep.Summary; s.Pass != 1 || s.Warn != 1 || s.Fail != 1 || s.Skip != 1 || len(rep.Results) != 4 {
		t.Errorf("summary %+v, %d results; want one of each of 4", s, len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Source != ReportSource || r.Policy == "" || r.Properties[EnvelopeDigestKey] != digest || r.Category == "" {
			t.Errorf("result %+v", r)
		}
	}

	doc, err := OSCAL(v.Claims, "test.dsse.json", digest)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOSCAL(data); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	ar := doc.AssessmentResults
	if len(ar.Results[0].Findings) != 4 || ar.BackMatter.Resources[0].RLinks[0].Hashes[0].Value != digest {
		t.Errorf("findings or back matter: %s", data)
	}
	states := map[string]string{}
	for _, f := range ar.Results[0].Findings {
		states[f.Target.TargetID] = f.Target.Status.State
	}
	if states["sp-enc-001"] != "not-satisfied" || states["sp-api-001"] != "satisfied" {
		t.Errorf("finding states %v", states)
	}
	again, _ := OSCAL(v.Claims, "test.dsse.json", digest)
	if again.AssessmentResults.UUID != ar.UUID {
		t.Error("the same envelope gives another document UUID")
	}

	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", "{", "not JSON"},
		{"no root", `{}`, "assessment-results is required"},
		{"no metadata", `{"assessment-results":{"uuid":"` + ar.UUID + `","import-ap":{"href":"#x"},"results":[]}}`, "metadata is required"},
		{"bad uuid", strings.Replace(string(data), ar.UUID, "not-a-uuid", 1), `"not-a-uuid" is not an RFC 4122 UUID`},
		{"bad state", strings.Replace(string(data), `"not-satisfied"`, `"failed"`, 1), "is not satisfied or not-satisfied"},
	} {
		if err := CheckOSCAL([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
