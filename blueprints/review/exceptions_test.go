package review

import (
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

func exc(control, justification, expires string) edit {
	return edit{"exceptions: []", `exceptions: [{control: ` + control + `, justification: "` + justification + `", expires: "` + expires + `"}]`}
}

const why = "customer workshop demo; risk accepted by security (JIRA SEC-42)"

func TestExceptions(t *testing.T) {
	tests := []struct {
		name     string
		edits    []edit
		rule     string
		sev      string
		excepted bool
		msgHas   []string
		others   []string // other rules expected
	}{
		{"applied", []edit{endpointPublic, exc("SP-API-001", why, "2027-03-01")}, "SP-API-001", "info", true,
			[]string{`endpoint is "public"`, "excepted until 2027-03-01", why}, nil},
		{"expired keeps severity", []edit{endpointPublic, exc("SP-API-001", why, "2026-01-01")}, "SP-API-001", "high", false,
			[]string{`endpoint is "public"`}, []string{"SP-EXC-001"}},
		{"unjustified does not apply", []edit{endpointPublic, exc("SP-API-001", "n/a", "2027-03-01")}, "SP-API-001", "high", false,
			nil, []string{"SP-EXC-002"}},
		{"placeholder with padding does not apply", []edit{endpointPublic, exc("SP-API-001", "TBD - fill in later", "2027-03-01")}, "SP-API-001", "high", false,
			nil, []string{"SP-EXC-002"}},
		{"other control does not apply", []edit{endpointPublic, exc("SP-NET-002", why, "2027-03-01")}, "SP-API-001", "high", false, nil, nil},
		{"unknown control", []edit{endpointPublic, exc("SP-XYZ-001", why, "2027-03-01")}, "SP-API-001", "high", false, nil, []string{"SP-EXC-003"}},
		{"cross-blueprint rule", []edit{{"kvMount: kv-shop-test", "kvMount: kv-shop-prod"}, exc("SP-ISO-002", why, "2027-03-01")}, "SP-ISO-002", "info", true,
			[]string{"kv-shop-prod", "excepted until 2027-03-01"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bps := loadFiles(t, mutated(t, map[string][]edit{T: tt.edits}))
			got := Review(bps, Options{Now: testNow})
			fs := findingsOf(got, tt.rule)
			if len(fs) != 1 {
				t.Fatalf("want one %s finding, got:\n%s", tt.rule, dump(got))
			}
			f := fs[0]
			if f.Severity.String() != tt.sev || f.Excepted() != tt.excepted {
				t.Errorf("severity %s excepted %v; want %s %v", f.Severity, f.Excepted(), tt.sev, tt.excepted)
			}
			for _, s := range tt.msgHas {
				if !strings.Contains(f.Message, s) {
					t.Errorf("message %q lacks %q", f.Message, s)
				}
			}
			for _, r := range tt.others {
				if len(findingsOf(got, r)) != 1 {
					t.Errorf("want one %s finding, got:\n%s", r, dump(got))
				}
			}
			if n := len(got) - 1 - len(tt.others); n != 0 {
				t.Errorf("%d unexpected findings:\n%s", n, dump(got))
			}
		})
	}
}

func TestIsJustified(t *testing.T) {
	for j, want := range map[string]bool{
		"":                            false,
		"short":                       false,
		"a b c d e f g h i":           false, // 9 non-space characters
		"abcdefghij":                  true,
		"TODO":                        false,
		"todo: write a justification": false,
		"tbd":                         false,
		"N/A":                         false,
		"FIXME later please":          false,
		"todolist app is a demo":      true,
		"needed for the load test of Q3, approved by CISO": true,
	} {
		if got := blueprints.ExceptionJustified(j); got != want {
			t.Errorf("blueprints.ExceptionJustified(%q) = %v, want %v", j, got, want)
		}
	}
}
