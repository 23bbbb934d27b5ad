package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// infoTarget is a Target that only answers Info; runner tests need no more.
type infoTarget struct{ Target }

func (infoTarget) Info() Info                 { return Info{Name: "c1", Environment: "test", Provider: "local"} }
func (infoTarget) Capabilities() []Capability { return AllCapabilities() }

func TestRunnerOutcomes(t *testing.T) {
	var running, maxRunning atomic.Int32
	slow := func(ctx context.Context, _ Target) Outcome {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return Pass("ok")
	}
	exclusiveSawOthers := false
	checks := []Check{
		{ID: "SP-APISRV-001", Run: slow},
		{ID: "SP-APISRV-002", Run: slow},
		{ID: "SP-APISRV-003", Run: slow},
		{ID: "SP-AUDIT-001", Exclusive: true, Run: func(ctx context.Context, _ Target) Outcome {
			exclusiveSawOthers = running.Load() != 0
			return Fail("canary missing", Evidence{Object: "audit.log", Want: "canary", Got: ""})
		}},
		{ID: "SP-ENC-001", Run: func(context.Context, Target) Outcome { panic("boom") }},
		{ID: "SP-PSS-001", Run: func(context.Context, Target) Outcome { return Skip("") }},
		{ID: "SP-NET-002", Run: func(context.Context, Target) Outcome { return Skip("provider local has no nodes") }},
		{ID: "SP-CERT-001", Run: func(ctx context.Context, _ Target) Outcome { <-ctx.Done(); return Warn("slow") }},
	}
	rep := Run(context.Background(), infoTarget{}, checks, Options{Timeout: 200 * time.Millisecond})
	want := map[string]Status{
		"SP-APISRV-001": StatusPass, "SP-APISRV-002": StatusPass, "SP-APISRV-003": StatusPass,
		"SP-AUDIT-001": StatusFail, "SP-ENC-001": StatusError, "SP-PSS-001": StatusError,
		"SP-NET-002": StatusSkip, "SP-CERT-001": StatusError,
	}
	for i, r := range rep.Results {
		if r.ID != checks[i].ID {
			t.Errorf("result %d is %s, want check order", i, r.ID)
		}
		if r.Status != want[string(r.ID)] {
			t.Errorf("%s: status %s (%s), want %s", r.ID, r.Status, r.Reason, want[string(r.ID)])
		}
		ctl, _ := blueprints.ControlByID(r.ID)
		if r.Title != ctl.Title || r.Severity != ctl.Severity {
			t.Errorf("%s: declaration not copied from the catalog", r.ID)
		}
	}
	if maxRunning.Load() < 2 {
		t.Error("non-exclusive checks did not run concurrently")
	}
	if exclusiveSawOthers {
		t.Error("exclusive check ran alongside others")
	}
	if s := rep.Summary; s.Total != 8 || s.Passed != 3 || s.Failed != 1 || s.Skipped != 1 || s.Errored != 3 {
		t.Errorf("summary = %+v", s)
	}
	if !rep.Failed(blueprints.SeverityHigh) {
		t.Error("Failed(high) = false with a failing high check")
	}
	if !strings.Contains(rep.Results[4].Reason, "panicked: boom") {
		t.Errorf("panic reason = %q", rep.Results[4].Reason)
	}
	filtered := Run(context.Background(), infoTarget{}, checks, Options{Filter: regexp.MustCompile(`^SP-APISRV-00[12]$`)})
	if len(filtered.Results) != 2 {
		t.Errorf("filter kept %d results", len(filtered.Results))
	}
}

func fixedReports() []*Report {
	rep := &Report{Cluster: "shop-test", Environment: "test", Provider: "local", Duration: 1500 * time.Millisecond,
		Results: []Result{
			{ID: "SP-APISRV-001", Title: "Anonymous requests to the API server are refused", Status: StatusPass, Severity: blueprints.SeverityHigh,
				Reason: "anonymous GET /version got 401", Evidence: []Evidence{}, Refs: []string{"CIS 1.2.1"}},
			{ID: "SP-ENC-001", Title: "Secrets are encrypted at rest", Status: StatusFail, Severity: blueprints.SeverityCritical,
				Reason: "canary secret stored in plaintext", Remediation: "Set spec.encryptionAtRest.provider: vault-kms (or secretbox).",
				Evidence: []Evidence{{Object: "etcd /registry/secrets/default/canary", Field: "prefix", Want: "k8s:enc:secretbox:v1:", Got: "k8s\\x00"}}},
			{ID: "SP-NET-002", Title: "Managed namespaces deny traffic by default", Status: StatusSkip, Severity: blueprints.SeverityHigh,
				Reason: "provider local has no nodes", Evidence: []Evidence{}},
		}}
	rep.Summary = summarize(rep.Results)
	return []*Report{rep}
}

func TestEncodersGolden(t *testing.T) {
	for _, f := range Formats {
		t.Run(f, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteReports(&buf, f, fixedReports(), WriteOptions{Blueprints: fixedBlueprints(t), SrcRoot: "testdata"}); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "report."+f, buf.Bytes())
			switch f {
			case "json":
				var v struct {
					Cluster string `json:"cluster"`
					Results []struct {
						ID, Title, Status, Severity, Reason string
						Evidence                            []Evidence
					} `json:"results"`
					Summary Summary `json:"summary"`
				}
				if err := json.Unmarshal(buf.Bytes(), &v); err != nil || v.Cluster != "shop-test" || len(v.Results) != 3 || v.Results[1].Severity != "critical" || v.Summary.Failed != 1 {
					t.Errorf("json shape: %+v, %v", v, err)
				}
			case "junit", "sarif":
				var anyv any
				if f == "junit" {
					err := xml.Unmarshal(buf.Bytes(), new(junitSuites))
					if err != nil {
						t.Error(err)
					}
				} else if err := json.Unmarshal(buf.Bytes(), &anyv); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if err := WriteReports(&bytes.Buffer{}, "yaml", fixedReports(), WriteOptions{}); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestArgs(t *testing.T) {
	got := Args([]string{"--a=1", "--b", "2", "--c", "-d=x", "--a=3", "positional"})
	want := map[string]string{"a": "3", "b": "2", "c": "true", "d": "x"}
	if len(got) != len(want) {
		t.Fatalf("Args = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// exceptionTarget carries blueprint exceptions in its Info.
type exceptionTarget struct {
	Target
	exceptions []v1alpha1.Exception
}

func (exceptionTarget) Capabilities() []Capability { return AllCapabilities() }

func (e exceptionTarget) Info() Info {
	return Info{Name: "c1", Environment: "prod", Provider: "local", Spec: v1alpha1.Spec{Exceptions: e.exceptions}}
}

func TestExceptionsTurnFailuresIntoWarnings(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) }
	failing := []Check{{ID: "SP-API-001", Run: func(context.Context, Target) Outcome {
		return Fail("listens on 0.0.0.0", Evidence{Object: "kube-apiserver", Field: "socket", Want: "loopback", Got: "0.0.0.0:6443"})
	}}}
	why := "public demo endpoint for the Q4 workshop, accepted by security"
	tests := []struct {
		name string
		exc  []v1alpha1.Exception
		want Status
	}{
		{"none", nil, StatusFail},
		{"valid", []v1alpha1.Exception{{Control: "SP-API-001", Justification: why, Expires: "2027-01-31"}}, StatusWarn},
		{"expires today is still valid", []v1alpha1.Exception{{Control: "SP-API-001", Justification: why, Expires: "2026-11-23"}}, StatusWarn},
		{"expired", []v1alpha1.Exception{{Control: "SP-API-001", Justification: why, Expires: "2026-11-22"}}, StatusFail},
		{"unjustified", []v1alpha1.Exception{{Control: "SP-API-001", Justification: "TODO", Expires: "2027-01-31"}}, StatusFail},
		{"other control", []v1alpha1.Exception{{Control: "SP-ENC-001", Justification: why, Expires: "2027-01-31"}}, StatusFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Run(context.Background(), exceptionTarget{exceptions: tt.exc}, failing, Options{Now: now})
			r := rep.Results[0]
			if r.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", r.Status, r.Reason, tt.want)
			}
			if tt.want == StatusWarn {
				if !strings.Contains(r.Reason, "excepted until") || !strings.Contains(r.Reason, "listens on 0.0.0.0") {
					t.Errorf("reason %q must name the exception and keep the finding", r.Reason)
				}
				if rep.Failed(blueprints.SeverityInfo) {
					t.Error("an excepted failure still fails the report")
				}
			}
		})
	}
}

// fixedBlueprints are the blueprints of fixedReports' clusters.
func fixedBlueprints(t testing.TB) []*blueprints.Blueprint {
	t.Helper()
	bps, err := blueprints.Load(filepath.Join("testdata", "blueprints"))
	if err != nil {
		t.Fatal(err)
	}
	return bps
}
