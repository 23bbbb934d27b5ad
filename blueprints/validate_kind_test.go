package blueprints

import (
	"strings"
	"testing"
)

// TestKindRefusals: what the kind provider cannot realise as written is a
// load error naming the field and what to write instead, never a weaker
// cluster.
func TestKindRefusals(t *testing.T) {
	const head = "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\n"
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the error, one per expected error; none: loads
	}{
		{"secretbox loads", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, encryptionAtRest: {provider: secretbox}}\n", nil},
		{"vault-kms by default loads", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}}\n", nil},
		{"external Vault for workloads", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, vault: {address: \"https://vault.example.com:8200\", namespaces: [{namespace: payments, paths: [\"payments/*\"]}]}, namespaces: [{name: payments}]}\n",
			[]string{"spec.vault.address: on kind, the pods of spec.vault.namespaces reach only secprov's local Vault"}},
		{"external Vault for the KMS key only loads", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, vault: {address: \"https://vault.example.com:8200\"}}\n", nil},
		{"vault-kms on local loads", "metadata: {name: k}\nspec: {environment: test}\n", nil},
		{"public with CIDRs", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, encryptionAtRest: {provider: secretbox}, apiServer: {endpoint: public, allowedCIDRs: [10.0.0.0/8]}}\n",
			[]string{"spec.apiServer.allowedCIDRs: refused on provider kind: kind cannot enforce allowedCIDRs"}},
		{"private with CIDRs", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, encryptionAtRest: {provider: secretbox}, apiServer: {allowedCIDRs: [10.0.0.0/8]}}\n",
			[]string{"spec.apiServer.allowedCIDRs: refused on provider kind: kind cannot enforce allowedCIDRs", "use provider local"}},
		{"private with CIDRs on local", "metadata: {name: k}\nspec: {environment: test, apiServer: {allowedCIDRs: [10.0.0.0/8]}}\n",
			[]string{"spec.apiServer.allowedCIDRs: endpoint is private: refused on provider local: a private endpoint listens on"}},
		{"public with CIDRs on local loads", "metadata: {name: k}\nspec: {environment: test, apiServer: {endpoint: public, allowedCIDRs: [10.0.0.0/8]}}\n", nil},
		{"longest name loads", "metadata: {name: " + strings.Repeat("a", KindMaxNameLength) + "}\nspec: {environment: test, provider: {type: kind}, encryptionAtRest: {provider: secretbox}}\n", nil},
		{"name too long", "metadata: {name: " + strings.Repeat("a", KindMaxNameLength+1) + "}\nspec: {environment: test, provider: {type: kind}, encryptionAtRest: {provider: secretbox}}\n",
			[]string{"metadata.name: cluster name", "kind clusters take at most 49"}},
		{"long name on local loads", "metadata: {name: " + strings.Repeat("a", 63) + "}\nspec: {environment: test}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes("k.yaml", []byte(head+tc.doc))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want it to load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
