package blueprints

import (
	"regexp"
	"testing"
)

func TestControlsCatalog(t *testing.T) {
	id := regexp.MustCompile(`^SP-[A-Z]+-[0-9]{3}$`)
	seen := map[string]bool{}
	for _, c := range Controls {
		if !id.MatchString(c.ID) {
			t.Errorf("%q: bad ID", c.ID)
		}
		if seen[c.ID] {
			t.Errorf("%s: duplicate ID", c.ID)
		}
		seen[c.ID] = true
		if c.Title == "" || c.Remediation == "" || c.Severity < SeverityInfo || c.Severity > SeverityCritical || c.Where == 0 {
			t.Errorf("%s: incomplete: %+v", c.ID, c)
		}
		got, ok := ControlByID(c.ID)
		if !ok || got.ID != c.ID {
			t.Errorf("ControlByID(%s) = %v, %v", c.ID, got.ID, ok)
		}
	}
	if _, ok := ControlByID("SP-NOPE-001"); ok {
		t.Error("unknown ID found")
	}
}

func TestParseSeverity(t *testing.T) {
	for _, s := range []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		got, err := ParseSeverity(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%s) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error("want error for unknown severity")
	}
}
