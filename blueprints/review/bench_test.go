package review

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
)

// generatedBlueprints returns n varied blueprints as YAML files: four
// environments, most with their own networks and some with findings of
// most rules (public endpoints, weak encryption, broad allow rules, prod
// labels on test, shared Vault mounts, derived CIDRs that collide).
func generatedBlueprints(n int) map[string][]byte {
	envs := []string{"prod", "test", "staging", "dev"}
	files := make(map[string][]byte, n)
	for i := range n {
		env := envs[i%len(envs)]
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata:\n  name: cluster-%04d\n  labels:\n", i)
		label := env
		if i%17 == 1 {
			label = "prod" // a test cluster labelled prod (SP-ISO-004)
		}
		fmt.Fprintf(&b, "    env: %s\n    team: team-%d\nspec:\n  environment: %s\n", label, i%23, env)
		endpoint := "private"
		if i%7 == 0 {
			endpoint = "public"
		}
		fmt.Fprintf(&b, "  apiServer:\n    endpoint: %s\n", endpoint)
		if endpoint == "public" { // a private endpoint refuses allowedCIDRs
			fmt.Fprintf(&b, "    allowedCIDRs: [192.0.2.%d/32]\n", i%250)
		}
		b.WriteString("  network:\n    cni: cilium\n")
		if i%10 != 0 { // every tenth keeps the derived CIDRs, which collide
			fmt.Fprintf(&b, "    podCIDR: 10.%d.%d.0/24\n    serviceCIDR: 172.%d.%d.%d/28\n", i/256, i%256, 16+i/4096, (i/16)%256, (i%16)*16)
		}
		b.WriteString("    allow:\n      - from: {namespace: web}\n        to: {namespace: api, ports: [8443]}\n")
		if i%13 == 0 {
			b.WriteString("      - from: {namespace: \"*\"}\n        to: {namespace: api}\n")
		}
		b.WriteString("  namespaces:\n    - name: web\n    - name: api\n      labels: {tier: backend}\n")
		provider := "vault-kms"
		if i%11 == 0 {
			provider = "aescbc"
		}
		fmt.Fprintf(&b, "  encryptionAtRest:\n    provider: %s\n", provider)
		if i%19 == 0 {
			b.WriteString("  vault:\n    kvMount: shared-kv\n")
		}
		fmt.Fprintf(&b, "  audit:\n    maxAgeDays: %d\n", 20+i%20)
		b.WriteString("  podSecurity:\n    enforce: restricted\n    exemptNamespaces: [kube-system]\n")
		b.WriteString("  rbac:\n    admins: [\"group:platform-admins\"]\n")
		if i%7 == 0 {
			b.WriteString("  exceptions:\n    - {control: SP-API-001, justification: \"partner webhook, approved by security\", expires: \"2027-06-30\"}\n")
		}
		files[fmt.Sprintf("bp/cluster-%04d.yaml", i)] = []byte(b.String())
	}
	return files
}

func loadGenerated(tb testing.TB, files map[string][]byte) []*blueprints.Blueprint {
	tb.Helper()
	bps := make([]*blueprints.Blueprint, 0, len(files))
	for name, data := range files {
		got, err := blueprints.LoadBytes(name, data)
		if err != nil {
			tb.Fatalf("generated blueprint does not load: %v", err)
		}
		bps = append(bps, got...)
	}
	return bps
}

func TestGeneratedBlueprintsHaveFindings(t *testing.T) {
	bps := loadGenerated(t, generatedBlueprints(1000))
	fs := Review(bps, Options{Now: testNow})
	seen := map[blueprints.ControlID]int{}
	for _, f := range fs {
		seen[f.Rule]++
	}
	for _, r := range []blueprints.ControlID{"SP-API-001", "SP-ENC-002", "SP-NET-003", "SP-ISO-002", "SP-ISO-003", "SP-ISO-004", "SP-AUDIT-002"} {
		if seen[r] == 0 {
			t.Errorf("no %s findings in the generated set: %v", r, seen)
		}
	}
	t.Logf("%d blueprints, %d findings: %v", len(bps), len(fs), seen)
}

func BenchmarkReview1000(b *testing.B) {
	files := generatedBlueprints(1000)
	bps := loadGenerated(b, files)
	base := NewBase("main", bps)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Review(bps, Options{Now: testNow, Base: base})
	}
}

func BenchmarkLoadAndReview1000(b *testing.B) {
	files := generatedBlueprints(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bps := loadGenerated(b, files)
		Review(bps, Options{Now: testNow})
	}
}

// smallBlueprints returns n small, valid, finding-free blueprints as
// bp/c-NNNNN.yaml, alternating prod and test, each with networks of its
// own (derived CIDRs would collide in thousands).
func smallBlueprints(n int) map[string][]byte {
	files := make(map[string][]byte, n)
	for i := range n {
		env := "prod"
		if i%2 == 1 {
			env = "test"
		}
		files[fmt.Sprintf("bp/c-%05d.yaml", i)] = fmt.Appendf(nil, `apiVersion: secprov.dev/v1alpha1
kind: Blueprint
metadata:
  name: c-%05d
  labels: {env: %s}
spec:
  environment: %s
  network:
    podCIDR: 10.%d.%d.0/24
    serviceCIDR: 172.%d.%d.%d/28
  encryptionAtRest:
    provider: vault-kms
  rbac:
    admins: ["group:platform-admins"]
`, i, env, env, i/256, i%256, 16+i/4096, (i/16)%256, (i%16)*16)
	}
	return files
}

// BenchmarkReviewBase compares review of n blueprint files in a git work
// tree (blueprints.Load + Review: the plain sub-benchmark) with review
// against a base revision (the same plus LoadBaseReusing, as secprov
// review --base runs it: base; or plus LoadBase, parsing every base file
// as if every file had changed: base-parse-all). The base commit differs
// in every hundredth file, so the changes rule has findings to report.
// Its objects are loose, as after local commits (a clone's packed objects
// read faster).
//
// The base sub-benchmarks also time an untimed plain review before each
// iteration and report their time as a multiple of it (x-plain): paired
// this way, the ratio holds on a machine whose load drifts between
// sub-benchmarks.
//
//	go test -run '^$' -bench ReviewBase -benchtime 5x ./blueprints/review
func BenchmarkReviewBase(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		r := newGitRepo(b)
		files := smallBlueprints(n)
		for name, data := range files {
			r.write(name, data)
		}
		r.commit("base")
		for i := 0; i < n; i += 100 {
			name := fmt.Sprintf("bp/c-%05d.yaml", i)
			r.write(name, bytes.Replace(files[name], []byte("vault-kms"), []byte("aescbc"), 1))
		}
		r.commit("weaken every hundredth")
		dir := r.path("bp")
		load := func(b *testing.B) []*blueprints.Blueprint {
			bps, err := blueprints.Load(dir)
			if err != nil || len(bps) != n {
				b.Fatalf("Load: %d blueprints, %v", len(bps), err)
			}
			return bps
		}
		b.Run(fmt.Sprintf("files=%d/plain", n), func(b *testing.B) {
			for b.Loop() {
				Review(load(b), Options{Now: testNow})
			}
		})
		for _, mode := range []struct {
			name  string
			reuse bool
		}{{"base", true}, {"base-parse-all", false}} {
			b.Run(fmt.Sprintf("files=%d/%s", n, mode.name), func(b *testing.B) {
				var (
					plain   time.Duration
					changes int
				)
				for b.Loop() {
					b.StopTimer()
					start := time.Now()
					Review(load(b), Options{Now: testNow})
					plain += time.Since(start)
					b.StartTimer()

					bps := load(b)
					var current []*blueprints.Blueprint
					if mode.reuse {
						current = bps
					}
					base, err := LoadBaseReusing(b.Context(), nil, "HEAD~1", current, dir)
					if err != nil || len(base.Blueprints) != n {
						b.Fatalf("LoadBase: %v, %v", base, err)
					}
					changes = len(findingsOf(Review(bps, Options{Now: testNow, Base: base}), "SP-CHG-001"))
				}
				if changes != n/100 {
					b.Fatalf("%d SP-CHG-001 findings, want %d", changes, n/100)
				}
				b.ReportMetric(float64(b.Elapsed())/float64(plain), "x-plain")
			})
		}
	}
}
