package verify

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// psaFake is objectsFake plus the live admission configuration file the
// API server's flag points at, rendered from spec (mutated by tests).
func psaFake(mutate func(*v1alpha1.Spec)) func(*testing.T) *fakeTarget {
	return func(t *testing.T) *fakeTarget {
		f := objectsFake(t)
		spec := f.info.Spec
		if mutate != nil {
			mutate(&spec)
		}
		data, err := hardening.AdmissionConfig(spec)
		if err != nil {
			t.Fatal(err)
		}
		f.files[f.info.Files.AdmissionConfig] = data
		return f
	}
}

func TestPodSecurityExemptionsAndAuditWarn(t *testing.T) {
	ctx := context.Background()
	relabel := func(ns, key, value string) func(*fakeTarget) {
		return func(f *fakeTarget) {
			n, err := f.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n.Labels[key] = value
			if _, err := f.client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		fakeCase
		mutate func(*v1alpha1.Spec)
	}{
		{fakeCase{name: "exemptions hardened", id: "SP-PSS-002", want: StatusPass, reason: "exempt: kube-system only"}, nil},
		{fakeCase{name: "too many exemptions", id: "SP-PSS-002", want: StatusFail, reason: "4 namespaces are exempt"}, func(s *v1alpha1.Spec) {
			s.PodSecurity.ExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "monitoring"}
		}},
		{fakeCase{name: "workload namespace exempt", id: "SP-PSS-002", want: StatusFail, reason: "workload namespace payments is exempt"}, func(s *v1alpha1.Spec) {
			s.PodSecurity.ExemptNamespaces = []string{"kube-system", "payments"}
		}},
		{fakeCase{name: "exemption the blueprint lacks", id: "SP-PSS-002", want: StatusFail, reason: "the blueprint does not exempt it"}, nil},
		{fakeCase{name: "audit and warn hardened", id: "SP-PSS-003", want: StatusPass, reason: "audit and warn at restricted"}, nil},
		{fakeCase{name: "warn baseline cluster-wide", id: "SP-PSS-003", want: StatusFail, reason: "warn is baseline"}, func(s *v1alpha1.Spec) { s.PodSecurity.Warn = v1alpha1.PSSBaseline }},
		{fakeCase{name: "namespace audits privileged", id: "SP-PSS-003", want: StatusFail, reason: "namespace storefront audits at privileged",
			weaken: relabel("storefront", hardening.PodSecurityLabelKey+"audit", "privileged")}, nil},
	}
	for _, c := range cases {
		base := psaFake(c.mutate)
		if c.name == "exemption the blueprint lacks" {
			// The live config exempts "monitoring" while the blueprint
			// (f.info.Spec) does not: drift or a hand edit.
			base = func(t *testing.T) *fakeTarget {
				f := psaFake(func(s *v1alpha1.Spec) { s.PodSecurity.ExemptNamespaces = []string{"kube-system", "monitoring"} })(t)
				return f
			}
		}
		runFakeCases(t, base, []fakeCase{c.fakeCase})
	}
}

func TestAllowRulesCheck(t *testing.T) {
	ctx := context.Background()
	runFakeCases(t, objectsFake, []fakeCase{
		{name: "hardened", id: "SP-NET-003", want: StatusPass, reason: "exactly the blueprint's"},
		{name: "allow rule widened to every peer", id: "SP-NET-003", want: StatusFail, reason: "differs from the blueprint", weaken: func(f *fakeTarget) {
			np, err := f.client.NetworkingV1().NetworkPolicies("payments").Get(ctx, "secprov-allow-0-ingress", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			np.Spec.Ingress[0].From = nil
			if _, err := f.client.NetworkingV1().NetworkPolicies("payments").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "allow rule deleted", id: "SP-NET-003", want: StatusFail, reason: "is missing", weaken: func(f *fakeTarget) {
			if err := f.client.NetworkingV1().NetworkPolicies("payments").Delete(ctx, "secprov-allow-0-ingress", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "foreign allow-all policy", id: "SP-NET-003", want: StatusFail, reason: "allows ingress from every peer", weaken: func(f *fakeTarget) {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: "storefront"},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
			if _, err := f.client.NetworkingV1().NetworkPolicies("storefront").Create(ctx, np, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "foreign policy from every namespace", id: "SP-NET-003", want: StatusFail, reason: "every pod of every namespace", weaken: func(f *fakeTarget) {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "from-anywhere", Namespace: "default"},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}}}
			if _, err := f.client.NetworkingV1().NetworkPolicies("default").Create(ctx, np, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "foreign narrow policy is fine", id: "SP-NET-003", want: StatusPass, reason: "exactly the blueprint's", weaken: func(f *fakeTarget) {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "from-web", Namespace: "default"},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "web"}}}}}}}}
			if _, err := f.client.NetworkingV1().NetworkPolicies("default").Create(ctx, np, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	})
}
