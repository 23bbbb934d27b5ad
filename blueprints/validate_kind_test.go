package blueprints

import (
	"strings"
	"testing"
)

// TestProviderRefusals: what a provider cannot realise as written is a
// load error naming the field and what to write instead, never a weaker
// cluster.
func TestProviderRefusals(t *testing.T) {
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
		{"wireguard on kind loads", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, network: {transparentEncryption: wireguard}}\n", nil},
		{"ipsec on kind", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, network: {transparentEncryption: ipsec}}\n",
			[]string{"k.yaml:4:", "spec.network.transparentEncryption: refused on provider kind: kind takes wireguard or none"}},
		{"wireguard without cilium", "metadata: {name: k}\nspec: {environment: test, provider: {type: kind}, network: {cni: none, transparentEncryption: wireguard}}\n",
			[]string{"spec.network.transparentEncryption: wireguard is Cilium's transparent encryption"}},
		{"wireguard on local", "metadata: {name: k}\nspec: {environment: test, network: {transparentEncryption: wireguard}}\n",
			[]string{"spec.network.transparentEncryption: refused on provider local: local runs no nodes"}},
		{"none on local loads", "metadata: {name: k}\nspec: {environment: test, network: {transparentEncryption: none}}\n", nil},
		{"unknown mode", "metadata: {name: k}\nspec: {environment: test, network: {transparentEncryption: tls}}\n",
			[]string{`spec.network.transparentEncryption: unsupported value "tls"`}},
		{"egress to an outside CIDR loads", "metadata: {name: k}\nspec: {environment: test, namespaces: [{name: a}], network: {allow: [{from: {namespace: a}, to: {cidr: 192.0.2.10/32, ports: [8200]}}]}}\n", nil},
		{"egress CIDR inside the pod CIDR", "metadata: {name: k}\nspec: {environment: test, namespaces: [{name: a}], network: {podCIDR: 10.70.0.0/16, allow: [{from: {namespace: a}, to: {cidr: 10.70.1.0/24}}]}}\n",
			[]string{"spec.network.allow[0].to.cidr: 10.70.1.0/24 is inside this cluster's pod or service CIDR"}},
		{"egress CIDR and namespace", "metadata: {name: k}\nspec: {environment: test, namespaces: [{name: a}], network: {allow: [{from: {namespace: a}, to: {namespace: a, cidr: 192.0.2.0/24}}]}}\n",
			[]string{"spec.network.allow[0].to: set either to.namespace or to.cidr, not both"}},
		{"CIDR to CIDR", "metadata: {name: k}\nspec: {environment: test, network: {allow: [{from: {cidr: 198.51.100.0/24}, to: {cidr: 192.0.2.0/24}}]}}\n",
			[]string{"spec.network.allow[0].to.cidr: a rule from a CIDR to a CIDR"}},
		{"no destination", "metadata: {name: k}\nspec: {environment: test, namespaces: [{name: a}], network: {allow: [{from: {namespace: a}, to: {ports: [80]}}]}}\n",
			[]string{"spec.network.allow[0].to: set to.namespace or to.cidr"}},
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
