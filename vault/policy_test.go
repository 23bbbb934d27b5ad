package vault_test

import (
	"regexp"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/vault"
)

// shopProd are the names of a cluster as defaulting derives them.
var shopProd = vault.Names{
	Cluster: "shop-prod", TransitMount: "transit-shop-prod", TransitKey: "kms-shop-prod",
	KVMount: "kv-shop-prod", AuthPath: "kubernetes-shop-prod",
	Namespaces: []v1alpha1.VaultNamespace{
		{Namespace: "payments", Paths: []string{"payments/*", "shared/config"}},
		{Namespace: "storefront", Paths: []string{"storefront*"}},
	},
}

func TestPolicyGoldens(t *testing.T) {
	golden.Check(t, "kms-policy.hcl", []byte(vault.KMSPolicy(shopProd)))
	golden.Check(t, "namespace-policy-payments.hcl", []byte(vault.NamespacePolicy(shopProd, shopProd.Namespaces[0])))
	golden.Check(t, "namespace-policy-storefront.hcl", []byte(vault.NamespacePolicy(shopProd, shopProd.Namespaces[1])))
	golden.Check(t, "setup-policy.hcl", []byte(vault.SetupPolicy(shopProd)))
}

// stanzas parses the policies secprov renders into path -> capabilities.
func stanzas(t *testing.T, policy string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^path "([^"]+)" \{\n  capabilities = \[([^\]]*)\]\n\}$`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(policy, -1) {
		if _, dup := out[m[1]]; dup {
			t.Errorf("path %s appears twice", m[1])
		}
		out[m[1]] = m[2]
	}
	if n := strings.Count(policy, "path \""); n != len(out) {
		t.Fatalf("parsed %d of %d stanzas in\n%s", len(out), n, policy)
	}
	return out
}

func TestNamespacePolicyPaths(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  map[string]string
	}{
		{
			name:  "directory glob covers everything below",
			paths: []string{"payments/*"},
			want: map[string]string{
				"kv-shop-prod/data/payments/*":     `"read"`,
				"kv-shop-prod/metadata/payments/*": `"read", "list"`,
			},
		},
		{
			name:  "prefix glob stays a prefix",
			paths: []string{"payments*"},
			want: map[string]string{
				"kv-shop-prod/data/payments*":     `"read"`,
				"kv-shop-prod/metadata/payments*": `"read", "list"`,
			},
		},
		{
			name:  "exact path is exact",
			paths: []string{"payments/db"},
			want: map[string]string{
				"kv-shop-prod/data/payments/db":     `"read"`,
				"kv-shop-prod/metadata/payments/db": `"read", "list"`,
			},
		},
		{
			name:  "duplicates collapse, order does not matter",
			paths: []string{"b/*", "a", "b/*"},
			want: map[string]string{
				"kv-shop-prod/data/a": `"read"`, "kv-shop-prod/metadata/a": `"read", "list"`,
				"kv-shop-prod/data/b/*": `"read"`, "kv-shop-prod/metadata/b/*": `"read", "list"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stanzas(t, vault.NamespacePolicy(shopProd, v1alpha1.VaultNamespace{Namespace: "payments", Paths: tt.paths}))
			if len(got) != len(tt.want) {
				t.Errorf("got %d stanzas %v, want %v", len(got), got, tt.want)
			}
			for p, caps := range tt.want {
				if got[p] != caps {
					t.Errorf("path %s: capabilities [%s], want [%s]", p, got[p], caps)
				}
			}
			for p := range got {
				if strings.Contains(p, "/data/") && strings.Contains(got[p], "list") {
					t.Errorf("%s grants list on data", p)
				}
			}
		})
	}
}

func TestKMSPolicyIsNarrow(t *testing.T) {
	got := stanzas(t, vault.KMSPolicy(shopProd))
	want := map[string]string{
		"transit-shop-prod/encrypt/kms-shop-prod": `"update"`,
		"transit-shop-prod/decrypt/kms-shop-prod": `"update"`,
		"transit-shop-prod/keys/kms-shop-prod":    `"read"`,
	}
	if len(got) != len(want) {
		t.Errorf("KMS policy has %d stanzas, want %d: %v", len(got), len(want), got)
	}
	for p, caps := range want {
		if got[p] != caps {
			t.Errorf("path %s: [%s], want [%s]", p, got[p], caps)
		}
	}
}

func TestSetupPolicyStaysInsideTheCluster(t *testing.T) {
	other := vault.Names{Cluster: "shop-prod-ns-x", TransitMount: "transit-shop-prod-ns-x", TransitKey: "kms-shop-prod-ns-x",
		KVMount: "kv-shop-prod-ns-x", AuthPath: "kubernetes-shop-prod-ns-x"}
	for p := range stanzas(t, vault.SetupPolicy(shopProd)) {
		if strings.Contains(p, "*") && !strings.HasSuffix(p, "/*") {
			t.Errorf("%s: a prefix glob could match another cluster's object", p)
		}
		for _, o := range []string{other.TransitMount, other.KVMount, other.AuthPath, other.KMSPolicy(), other.KMSTokenRole(), other.NamespacePolicy("x")} {
			if strings.HasSuffix(p, "/"+o) || strings.Contains(p, "/"+o+"/") {
				t.Errorf("%s covers %s of cluster %s", p, o, other.Cluster)
			}
		}
	}
}
