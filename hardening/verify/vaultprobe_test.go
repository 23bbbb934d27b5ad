package verify

import (
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

func TestPlanVaultProbes(t *testing.T) {
	spec := v1alpha1.Spec{
		Namespaces: []v1alpha1.Namespace{{Name: "storefront"}, {Name: "payments"}},
		Vault: v1alpha1.Vault{Namespaces: []v1alpha1.VaultNamespace{
			{Namespace: "payments", Paths: []string{"payments/*"}},
		}},
	}
	got := planVaultProbes(spec)
	want := []vaultFlow{
		{ID: "vault-0-granted", Namespace: "payments", Path: "payments/secprov-verify-probe", Want: "read"},
		{ID: "vault-0-other", Namespace: "payments", Path: "secprov-verify-ungranted/payments", Want: "denied"},
		// default is a workload namespace (default deny) that Vault does not list.
		{ID: "vault-unlisted", Namespace: "default", Path: "payments/secprov-verify-probe", Want: "dropped"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if *got[i] != want[i] {
			t.Errorf("flow %d = %+v, want %+v", i, *got[i], want[i])
		}
	}
	// Every workload namespace listed: nobody to show the drop with.
	spec.Vault.Namespaces = append(spec.Vault.Namespaces,
		v1alpha1.VaultNamespace{Namespace: "storefront", Paths: []string{"shop/+/config"}},
		v1alpha1.VaultNamespace{Namespace: "default", Paths: []string{"default/app"}})
	got = planVaultProbes(spec)
	if len(got) != 6 || got[2].Path != "shop/secprov-verify-probe/config" || got[4].Path != "default/app" {
		for _, f := range got {
			t.Logf("%+v", *f)
		}
		t.Errorf("all listed: %d flows, want 6 with the granted paths made concrete", len(got))
	}
}

// TestVaultFlowMet: only Vault's own answers count as a read or a denial,
// and only silence counts as dropped; an error after connecting (TLS,
// HTTP) is a connection that should not have happened.
func TestVaultFlowMet(t *testing.T) {
	for _, tc := range []struct {
		want, verdict string
		met           bool
	}{
		{"read", "read", true},
		{"read", "not-found", true},
		{"read", "login-denied", false},
		{"read", "timeout", false},
		{"denied", "read-denied", true},
		{"denied", "not-found", false},
		{"denied", "read", false},
		{"dropped", "timeout", true},
		{"dropped", "unreachable", true},
		{"dropped", "error", false},
		{"dropped", "login-denied", false},
	} {
		if got := vaultFlowMet(&vaultFlow{Want: tc.want, Verdict: tc.verdict}); got != tc.met {
			t.Errorf("want %s, observed %s: met = %v, want %v", tc.want, tc.verdict, got, tc.met)
		}
	}
}
