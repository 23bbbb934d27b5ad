package verify

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// An edit to any part of a guardrail policy that decides what it judges
// shows as a difference; the server's own defaults elsewhere do not.
func TestPolicyDiff(t *testing.T) {
	b := v1alpha1.Blueprint{Metadata: v1alpha1.ObjectMeta{Name: "c"}, Spec: v1alpha1.Spec{Environment: "prod"}}
	v1alpha1.SetDefaults(&b)
	b.Spec.Images.AllowedRegistries = []string{"registry.example.com/team"}
	gs, err := hardening.Guardrails(b.Spec, hardening.GuardrailInputs{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		want := g.Policy.Spec
		live := *want.DeepCopy()
		live.MatchConstraints.MatchPolicy = new(admissionv1.Equivalent) // a server default
		if d := policyDiff(want, live); d != "" {
			t.Errorf("%s: unedited policy differs: %s", g.Name, d)
		}
		for name, edit := range map[string]func(*admissionv1.ValidatingAdmissionPolicySpec){
			"validation removed": func(s *admissionv1.ValidatingAdmissionPolicySpec) { s.Validations = s.Validations[1:] },
			"expression weakened": func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.Validations[0].Expression = "true"
			},
			"failure policy Ignore": func(s *admissionv1.ValidatingAdmissionPolicySpec) { s.FailurePolicy = new(admissionv1.Ignore) },
			"exempt everyone": func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConditions[0].Expression = "false"
			},
			"other resources": func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConstraints.ResourceRules[0].Resources = []string{"configmaps"}
			},
			"namespace selector": func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
			},
		} {
			live := *want.DeepCopy()
			edit(&live)
			if d := policyDiff(want, live); d == "" {
				t.Errorf("%s: %s not seen", g.Name, name)
			}
		}
	}
}
