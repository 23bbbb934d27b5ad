package blueprints

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

func TestLoadValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/valid-*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			bps, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(bps) == 0 {
				t.Fatal("no blueprint loaded")
			}
			var out []v1alpha1.Blueprint
			for _, b := range bps {
				out = append(out, b.Blueprint)
			}
			data, _ := json.MarshalIndent(out, "", "  ")
			golden.Check(t, strings.TrimSuffix(filepath.Base(f), ".yaml")+".golden.json", append(data, '\n'))
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/invalid-*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			bps, err := Load(f)
			if err == nil {
				t.Fatalf("Load succeeded with %d blueprints; want errors", len(bps))
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			for _, e := range el {
				if e.File != f || e.Line == 0 || e.Column == 0 {
					t.Errorf("error without file:line:col: %q", e.Error())
				}
			}
			golden.Check(t, strings.TrimSuffix(filepath.Base(f), ".yaml")+".err", []byte(err.Error()+"\n"))
		})
	}
}

func TestExamplesLoad(t *testing.T) {
	bps, err := Load("examples")
	if err != nil {
		t.Fatal(err)
	}
	if len(bps) != 2 {
		t.Fatalf("got %d blueprints, want prod and test", len(bps))
	}
}

// TestKindExamplesLoad: the kind examples are two environments on kind,
// one each: prod encrypts through Vault's KMS, test shows secretbox.
func TestKindExamplesLoad(t *testing.T) {
	bps, err := Load("examples/kind")
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]bool{}
	for _, bp := range bps {
		want := map[string]string{"prod": v1alpha1.EncryptionVaultKMS, "test": v1alpha1.EncryptionSecretbox}[bp.Spec.Environment]
		if bp.Spec.Provider.Type != v1alpha1.ProviderKind || bp.Spec.EncryptionAtRest.Provider != want {
			t.Errorf("%s: provider %s, encryption %s; want kind and %s", bp.Name(), bp.Spec.Provider.Type, bp.Spec.EncryptionAtRest.Provider, want)
		}
		envs[bp.Spec.Environment] = true
	}
	if len(bps) != 2 || !envs["prod"] || !envs["test"] {
		t.Fatalf("got %d blueprints for %v, want prod and test", len(bps), envs)
	}
}

func TestDefaultsAreSecure(t *testing.T) {
	bps, err := LoadBytes("mini.yaml", []byte("apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: mini}\nspec: {environment: dev}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := bps[0].Spec
	checks := []struct {
		name string
		ok   bool
	}{
		{"endpoint private", s.APIServer.Endpoint == v1alpha1.EndpointPrivate},
		{"cilium", s.Network.CNI == v1alpha1.CNICilium},
		{"default deny", s.Network.DefaultDenyEnabled()},
		{"vault-kms", s.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS},
		{"secrets encrypted", len(s.EncryptionAtRest.Resources) == 1 && s.EncryptionAtRest.Resources[0] == "secrets"},
		{"vault on", s.Vault.IsEnabled()},
		{"per-cluster kv mount", s.Vault.KVMount == "kv-mini"},
		{"audit on", s.Audit.IsEnabled()},
		{"audit 30 days", *s.Audit.MaxAgeDays == 30},
		{"restricted", s.PodSecurity.Enforce == v1alpha1.PSSRestricted && s.PodSecurity.Warn == v1alpha1.PSSRestricted},
		{"version pinned", s.Kubernetes.Version == v1alpha1.KubernetesVersion},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("default not secure: %s", c.name)
		}
	}
}

func TestLimits(t *testing.T) {
	header := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata:\n  name: bomb\n"
	// Billion laughs: nine levels of nine aliases each.
	var bomb strings.Builder
	bomb.WriteString(header + "  labels: &a0 {k: v}\nspec:\n  environment: prod\n  x0: &a1 [")
	for lvl := 1; lvl <= 9; lvl++ {
		if lvl > 1 {
			bomb.WriteString("  x" + string(rune('0'+lvl-1)) + ": &a" + string(rune('0'+lvl)) + " [")
		}
		for i := range 9 {
			if i > 0 {
				bomb.WriteString(",")
			}
			bomb.WriteString("*a" + string(rune('0'+lvl-1)))
		}
		bomb.WriteString("]\n")
	}
	expanding := header + "spec:\n  environment: prod\n  apiServer:\n    allowedCIDRs: &c0 [10.0.0.0/8,10.0.0.0/8,10.0.0.0/8,10.0.0.0/8,10.0.0.0/8,10.0.0.0/8,10.0.0.0/8,10.0.0.0/8]\n" +
		"  rbac: {admins: &c1 [*c0,*c0,*c0,*c0,*c0,*c0,*c0,*c0]}\n"
	deep := header + "spec:\n  environment: prod\n  x: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n"

	tests := []struct {
		name string
		data string
		want string
	}{
		{"huge file", header + "spec:\n  environment: prod\n#" + strings.Repeat("x", 2<<20) + "\n", "byte limit"},
		{"alias bomb in unknown field", bomb.String(), "unknown field"},
		{"alias list into string field", expanding, "expected a string, got a list"},
		{"deep nesting", deep, "unknown field"},
		{"many documents", strings.Repeat("---\n"+header+"spec: {environment: prod}\n", 300), "YAML documents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := LoadBytes("bomb.yaml", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v; hostile input must fail fast", d)
			}
		})
	}
}

func TestAliasBombInDecodedField(t *testing.T) {
	// 1,000 references to a 1,000-item list, in a field the decoder must
	// expand: a million nodes from a 20 KB file.
	data := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: bomb}\nspec:\n  environment: prod\n  vault:\n    namespaces:\n"
	data += "      - {namespace: n, paths: &p [" + strings.Repeat("a, ", 999) + "a]}\n"
	data += strings.Repeat("      - {namespace: n, paths: *p}\n", 1000)
	start := time.Now()
	_, err := LoadBytes("bomb.yaml", []byte(data))
	if err == nil || !strings.Contains(err.Error(), "alias bomb") {
		t.Fatalf("err = %v; want the alias bomb refused", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n > 1 {
		t.Errorf("%d errors; want the single limit error", n)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v; hostile input must fail fast", time.Since(start))
	}
}

func TestTooManyErrors(t *testing.T) {
	data := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: x}\nspec:\n  environment: prod\n  rbac:\n    admins: [" + strings.Repeat("1, ", 500) + "1]\n"
	_, err := LoadBytes("x.yaml", []byte(data))
	if err == nil || !strings.Contains(err.Error(), "more errors") {
		t.Fatalf("err = %v; want the list cut short", err)
	}
}

func TestLoadPathsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no *.yaml") {
		t.Errorf("empty dir: err = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	one := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: same}\nspec: {environment: prod}\n"
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(one), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte(one), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden.yaml"), []byte("garbage: ["), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	bps, err := Load(dir)
	if err != nil || len(bps) != 2 {
		t.Fatalf("Load = %d blueprints, %v; want both (review reports duplicates)", len(bps), err)
	}
	err = CheckUniqueNames(bps)
	if err == nil || !strings.Contains(err.Error(), `b.yml:3:18: metadata.name: cluster name "same" is already used by the blueprint at `) {
		t.Errorf("CheckUniqueNames: err = %v", err)
	}
}

func TestPosOf(t *testing.T) {
	bps, err := Load("examples/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := bps[0]
	tests := []struct {
		path string
		want Pos
	}{
		{"spec.encryptionAtRest.provider", Pos{32, 15}},
		{"spec.network.allow[0].to.ports[0]", Pos{27, 43}},
		{"spec.provider.kind.workers", Pos{14, 5}}, // absent: nearest ancestor spec.provider
	}
	for _, tt := range tests {
		if got := b.PosOf(tt.path); got != tt.want {
			t.Errorf("PosOf(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
