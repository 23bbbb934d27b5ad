package hardening

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

const testDigest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                          "docker.io/library/nginx",
		"nginx:1.27":                     "docker.io/library/nginx:1.27",
		"library/nginx":                  "docker.io/library/nginx",
		"team/app" + testDigest:          "docker.io/team/app" + testDigest,
		"docker.io/nginx":                "docker.io/library/nginx",
		"docker.io/team/app":             "docker.io/team/app",
		"localhost/app":                  "localhost/app",
		"localhost:5000/app:1":           "localhost:5000/app:1",
		"registry.example.com/team/app":  "registry.example.com/team/app",
		"myregistry:5000/app":            "myregistry:5000/app",
		"registry.example.com.evil.io/x": "registry.example.com.evil.io/x",
	} {
		if got := NormalizeImage(in); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryAdmits(t *testing.T) {
	for _, c := range []struct {
		pattern, image string
		want           bool
	}{
		{"registry.example.com/team", "registry.example.com/team/app" + testDigest, true},
		{"registry.example.com/team", "registry.example.com/team/sub/app:1", true},
		{"registry.example.com/team", "registry.example.com/other/app", false},
		{"registry.example.com/team", "registry.example.com/teamx/app", false},
		{"registry.example.com/team", "registry.example.com.evil.io/team/app", false},
		{"registry.example.com/team/app", "registry.example.com/team/app:1", true},
		{"registry.example.com/team/app", "registry.example.com/team/app" + testDigest, true},
		{"registry.example.com/team/app", "registry.example.com/team/application", false},
		{"registry.example.com", "registry.example.com/anything", true},
		{"registry.example.com", "registry.example.com:443/anything", false},
		{"localhost:5000", "localhost:5000/app", true},
		{"localhost", "localhost:5000/app", false},
		{"docker.io/library", "nginx", true},
		{"docker.io/library", "team/app", false},
	} {
		if got := RegistryAdmits(c.pattern, NormalizeImage(c.image)); got != c.want {
			t.Errorf("RegistryAdmits(%q, %q) = %v, want %v", c.pattern, c.image, got, c.want)
		}
	}
}

func TestDigestPinned(t *testing.T) {
	for in, want := range map[string]bool{
		"a/b" + testDigest:                      true,
		"a/b:1" + testDigest:                    true,
		"a/b:1":                                 false,
		"a/b@sha256:abc":                        false,
		"a/b" + strings.ToUpper(testDigest[8:]): false,
		"a/b@sha512:" + testDigest[8:]:          false,
	} {
		if got := DigestPinned(in); got != want {
			t.Errorf("DigestPinned(%q) = %v, want %v", in, got, want)
		}
	}
}

func guardSpec(env string) v1alpha1.Spec {
	b := v1alpha1.Blueprint{Metadata: v1alpha1.ObjectMeta{Name: "c"}, Spec: v1alpha1.Spec{Environment: env}}
	v1alpha1.SetDefaults(&b)
	return b.Spec
}

func TestJudgeImage(t *testing.T) {
	prod := guardSpec("prod")
	prod.Images.AllowedRegistries = []string{"registry.example.com/shop"}
	own := []string{"secprov.local/cilium:v1.20.2-x"}
	for _, c := range []struct {
		image, why string
	}{
		{"registry.example.com/shop/app" + testDigest, ""},
		{"registry.example.com/shop/app:1", "not pinned by digest"},
		{"nginx" + testDigest, "not from an allowed registry"},
		{"secprov.local/cilium:v1.20.2-x", ""}, // secprov's own, by tag
		{"secprov.local/other:1", "not from an allowed registry"},
	} {
		got := JudgeImage(prod, own, c.image)
		if (c.why == "") != (got == "") || !strings.Contains(got, c.why) {
			t.Errorf("JudgeImage(%q) = %q, want %q", c.image, got, c.why)
		}
	}
	if got := JudgeImage(guardSpec("test"), nil, "nginx"); got != "" {
		t.Errorf("test without image rules judges nginx: %q", got)
	}
}

func TestJudgeNamespaceLabels(t *testing.T) {
	s := guardSpec("prod")
	for _, c := range []struct {
		name   string
		labels map[string]string
		bad    int
	}{
		{"a", nil, 0},
		{"a", map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}, 0},
		{"a", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}, 1},
		{"a", map[string]string{"pod-security.kubernetes.io/warn": "baseline", "pod-security.kubernetes.io/audit-version": "v1.20"}, 2},
		{"a", map[string]string{"pod-security.kubernetes.io/enforce-version": "v1.37"}, 0},
		{"a", map[string]string{"pod-security.kubernetes.io/enforce-version": "v1.99"}, 0},
		{"a", map[string]string{"pod-security.kubernetes.io/enforce-version": "1.37"}, 1},
		{"kube-system", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}, 0},
	} {
		if got := JudgeNamespaceLabels(s, c.name, c.labels); len(got) != c.bad {
			t.Errorf("%s %v: %v, want %d problems", c.name, c.labels, got, c.bad)
		}
	}
}

func TestJudgeRBAC(t *testing.T) {
	if got := JudgeRoleRules([]RoleRule{{Verbs: []string{"get"}, Resources: []string{"pods"}}}); len(got) != 0 {
		t.Errorf("narrow role judged: %v", got)
	}
	if got := JudgeRoleRules([]RoleRule{{Verbs: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"impersonate", "bind"}, Resources: []string{"users"}}}); len(got) != 3 {
		t.Errorf("*/* and two escalation verbs: %v", got)
	}
	if got := JudgeBinding("ClusterRole", "cluster-admin", []Subject{{"Group", "system:authenticated"}, {"User", "alice"}}); len(got) != 2 {
		t.Errorf("cluster-admin to everyone: %v", got)
	}
	if got := JudgeBinding("ClusterRole", "view", []Subject{{"User", "alice"}}); len(got) != 0 {
		t.Errorf("view for alice judged: %v", got)
	}
}

func TestJudgeNetworkPolicy(t *testing.T) {
	named := &Selector{}
	empty := &Selector{Empty: true}
	for _, c := range []struct {
		name            string
		ingress, egress []Rule
		want            string
	}{
		{"narrow", []Rule{{Peers: []Peer{{NamespaceSelector: named, PodSelector: named}, {CIDR: "10.1.0.0/16"}}}}, nil, ""},
		{"no from", []Rule{{}}, nil, "ingress[0] has no from"},
		{"every namespace", []Rule{{Peers: []Peer{{NamespaceSelector: empty, PodSelector: named}}}}, nil, "selects every namespace"},
		{"every pod of a namespace", nil, []Rule{{Peers: []Peer{{NamespaceSelector: named}}}}, "egress[0].to[0] selects every pod"},
		{"internet", []Rule{{Peers: []Peer{{CIDR: "0.0.0.0/0"}}}}, nil, "as wide as the internet"},
		{"/7", []Rule{{Peers: []Peer{{CIDR: "10.0.0.0/7"}}}}, nil, "as wide as the internet"},
		{"ipv6 /31", []Rule{{Peers: []Peer{{CIDR: "2001::/31"}}}}, nil, "as wide as the internet"},
		{"same namespace pods", []Rule{{Peers: []Peer{{PodSelector: empty}}}}, nil, ""},
	} {
		got := strings.Join(JudgeNetworkPolicy(c.ingress, c.egress), "; ")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestGuardrailsExceptionAndMode(t *testing.T) {
	s := guardSpec("prod")
	s.Exceptions = []v1alpha1.Exception{{Control: "SP-ADM-003", Justification: "migration of the old deployer, ticket OPS-1", Expires: "2027-01-31"}}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	gs, err := Guardrails(s, GuardrailInputs{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
		warn := g.Control == "SP-ADM-003"
		if g.Warn != warn || (warn && !strings.Contains(g.WarnBecause, "OPS-1")) {
			t.Errorf("%s: warn %v (%s)", g.Name, g.Warn, g.WarnBecause)
		}
	}
	// prod requires digests even without a registry list
	if !slices.Contains(names, ImagesGuardrail) {
		t.Errorf("prod without allowedRegistries has no image guardrail: %v", names)
	}
	// the exception expires: deny again
	gs, _ = Guardrails(s, GuardrailInputs{Now: now.AddDate(0, 3, 0)})
	for _, g := range gs {
		if g.Warn {
			t.Errorf("%s warns after the exception expired", g.Name)
		}
	}
	s.Guardrails.Mode = v1alpha1.GuardrailsWarn
	gs, _ = Guardrails(s, GuardrailInputs{Now: now})
	for _, g := range gs {
		if !g.Warn || len(g.Binding.Spec.ValidationActions) != 2 {
			t.Errorf("%s does not warn in warn mode: %v", g.Name, g.Binding.Spec.ValidationActions)
		}
	}
	if gs, _ := Guardrails(guardSpec("test"), GuardrailInputs{Now: now}); slices.ContainsFunc(gs, func(g Guardrail) bool { return g.Name == ImagesGuardrail }) {
		t.Errorf("test without image rules has an image guardrail")
	}
}

func TestCELStringRefusesControlCharacters(t *testing.T) {
	if got := celString(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("celString = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("celString accepted a newline")
		}
	}()
	celString("a\nb")
}

// ciliumPolicyCase is one case of testdata/cilium-policies.yaml.
type ciliumPolicyCase struct {
	Name        string         `json:"name"`
	Clusterwide bool           `json:"clusterwide"`
	Want        string         `json:"want"`
	Object      map[string]any `json:"object"`
}

func TestJudgeCiliumPolicy(t *testing.T) {
	b, err := os.ReadFile("testdata/cilium-policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []ciliumPolicyCase
	if err := yaml.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		got := strings.Join(JudgeCiliumPolicy(c.Object, c.Clusterwide), "; ")
		if (c.Want == "") != (got == "") || !strings.Contains(got, c.Want) {
			t.Errorf("%s: %q, want %q", c.Name, got, c.Want)
		}
	}
}
