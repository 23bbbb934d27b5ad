package blueprints

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

func TestControlsCatalog(t *testing.T) {
	id := regexp.MustCompile(`^SP-[A-Z]+-[0-9]{3}$`)
	seen := map[ControlID]bool{}
	for _, c := range Controls {
		if !id.MatchString(string(c.ID)) {
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

// TestControlIDsSpelledOnce keeps every control ID in the catalog's
// constants: a string literal anywhere else in the module's non-test code
// that spells one (alone or inside a message) is a second definition that
// a renumbering or a typo would silently miss.
func TestControlIDsSpelledOnce(t *testing.T) {
	spelled := regexp.MustCompile(`SP-[A-Z]+-[0-9]{3}`)
	root := filepath.Join("..")
	catalog := filepath.Join(root, "blueprints", "controls.go")
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || path == catalog {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				s = lit.Value
			}
			if id := spelled.FindString(s); id != "" {
				t.Errorf("%s: string literal spells control ID %s; use the blueprints.ControlID constant from controls.go", fset.Position(lit.Pos()), id)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned only %d Go files under %s; is the module root where the test thinks it is?", files, root)
	}
}

// TestThresholds: the controls that are judged by numbers carry them, and
// the blueprint defaults meet them (secure by default).
func TestThresholds(t *testing.T) {
	if n := PodSecurityExemptionsFew.Thresholds().MaxExemptNamespaces; n < 1 {
		t.Errorf("%s: MaxExemptNamespaces = %d", PodSecurityExemptionsFew, n)
	}
	if w := CertificatesValid.Thresholds().CertRenewWithin; w <= 0 {
		t.Errorf("%s: CertRenewWithin = %v", CertificatesValid, w)
	}
	least := AuditRetention.Thresholds()
	for _, f := range []struct {
		name       string
		min, deflt int
	}{
		{"maxAgeDays", least.MinAuditAgeDays, v1alpha1.DefaultAuditMaxAgeDays},
		{"maxBackups", least.MinAuditBackups, v1alpha1.DefaultAuditMaxBackups},
		{"maxSizeMB", least.MinAuditSizeMB, v1alpha1.DefaultAuditMaxSizeMB},
	} {
		if f.min < 1 || f.deflt < f.min {
			t.Errorf("%s %s: minimum %d, default %d", AuditRetention, f.name, f.min, f.deflt)
		}
	}
	if (ControlID("SP-NOPE-001").Thresholds() != Thresholds{}) {
		t.Error("unknown control has thresholds")
	}
}
