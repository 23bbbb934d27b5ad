package vaultres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/vault"
)

func TestResourceTypesAreRegistered(t *testing.T) {
	reg, err := provision.PluginRegistry(providers.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{vaultres.TransitType, vaultres.KVType, vaultres.KubernetesAuthType, vaultres.NamespaceRoleType, vaultres.KMSTokenType} {
		k, ok := reg.ResourceType(tok)
		if !ok {
			t.Errorf("%s is not in provision.PluginRegistry(providers.Registry())", tok)
			continue
		}
		if !k.DeleteBeforeReplace {
			t.Errorf("%s: a replacement has the same Vault names as the original, so it must be deleted first", tok)
		}
		if !slices.Contains(k.ReplaceOnChanges, "access.address") {
			t.Errorf("%s: moving to another Vault must replace", tok)
		}
	}
}

func resourceType(t *testing.T, token string) *provider.ResourceType {
	t.Helper()
	reg, err := provider.NewRegistry(vaultres.ResourceTypes()...)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := reg.ResourceType(token)
	if !ok {
		t.Fatalf("no resource type %s", token)
	}
	return k
}

var access = map[string]any{"address": "https://vault.example.com:8200", "tokenFile": "/etc/secprov/token"}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		inputs map[string]any
		// failures lists the properties that must fail; empty means valid.
		failures []string
		// defaults are properties Check must fill in.
		defaults map[string]string
	}{
		{name: "transit ok", token: vaultres.TransitType,
			inputs: map[string]any{"access": access, "mount": "transit-shop", "key": "kms-shop"}},
		{name: "transit with a relative token file and a bad key", token: vaultres.TransitType,
			inputs:   map[string]any{"access": map[string]any{"address": "https://v:8200", "tokenFile": "token"}, "mount": "transit-shop", "key": "../x"},
			failures: []string{"access.tokenFile", "key"}},
		{name: "no address", token: vaultres.KVType,
			inputs: map[string]any{"access": map[string]any{}, "mount": "kv-shop"}, failures: []string{"access.address"}},
		{name: "kubernetes auth defaults the reviewer", token: vaultres.KubernetesAuthType,
			inputs:   map[string]any{"access": access, "path": "kubernetes-shop", "kubeconfig": "/c/admin.kubeconfig"},
			defaults: map[string]string{"reviewerNamespace": vault.ReviewerNamespace, "reviewerServiceAccount": vault.ReviewerServiceAccount}},
		{name: "kubernetes auth no longer takes a reviewer Secret", token: vaultres.KubernetesAuthType,
			inputs: map[string]any{"access": access, "path": "kubernetes-shop", "kubeconfig": "/c/admin.kubeconfig",
				"reviewerSecret": "secprov-vault-auth-token"}, failures: []string{"reviewerSecret"}},
		{name: "kubernetes auth with a relative kubeconfig", token: vaultres.KubernetesAuthType,
			inputs: map[string]any{"access": access, "path": "kubernetes-shop", "kubeconfig": "admin.kubeconfig"}, failures: []string{"kubeconfig"}},
		{name: "namespace role defaults its TTL", token: vaultres.NamespaceRoleType,
			inputs: map[string]any{"access": access, "cluster": "shop", "authPath": "kubernetes-shop", "kvMount": "kv-shop",
				"namespace": "payments", "paths": []any{"payments/*"}},
			defaults: map[string]string{"tokenTTL": vault.DefaultNamespaceTokenTTL.String()}},
		{name: "namespace role with bad paths and TTL", token: vaultres.NamespaceRoleType,
			inputs: map[string]any{"access": access, "cluster": "shop", "authPath": "kubernetes-shop", "kvMount": "kv-shop",
				"namespace": "Payments", "paths": []any{"/etc/*", "a/../b"}, "tokenTTL": "forever"},
			failures: []string{"namespace", "paths[0]", "paths[1]", "tokenTTL"}},
		{name: "namespace role without paths", token: vaultres.NamespaceRoleType,
			inputs: map[string]any{"access": access, "cluster": "shop", "authPath": "kubernetes-shop", "kvMount": "kv-shop",
				"namespace": "payments", "paths": []any{}},
			failures: []string{"paths"}},
		{name: "kms token defaults its period", token: vaultres.KMSTokenType,
			inputs:   map[string]any{"access": access, "cluster": "shop", "mount": "transit-shop", "key": "kms-shop", "tokenFile": "/c/kms/token"},
			defaults: map[string]string{"period": vault.DefaultKMSTokenPeriod.String()}},
		{name: "kms token needs an absolute file", token: vaultres.KMSTokenType,
			inputs:   map[string]any{"access": access, "cluster": "shop", "mount": "transit-shop", "key": "kms-shop", "tokenFile": "token"},
			failures: []string{"tokenFile"}},
		{name: "unknown property", token: vaultres.KMSTokenType,
			inputs: map[string]any{"access": access, "cluster": "shop", "mount": "transit-shop", "key": "kms-shop", "tokenFile": "/t",
				"token": "s.abc"},
			failures: []string{"token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			norm, failures, err := resourceType(t, tt.token).Check(context.Background(), resource.NewPropertyMapFromMap(tt.inputs))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range failures {
				got = append(got, f.Property)
				if f.Reason == "" {
					t.Errorf("failure on %s has no reason", f.Property)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.failures)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("failures on %v, want %v (%+v)", got, want, failures)
			}
			for k, v := range tt.defaults {
				if pv := norm[resource.PropertyKey(k)]; !pv.IsString() || pv.StringValue() != v {
					t.Errorf("%s = %v, want default %q", k, pv, v)
				}
			}
		})
	}
}

func TestNoSecretInputs(t *testing.T) {
	// Inputs end up in the state unencrypted: none may be named like a
	// secret value (paths to secrets are fine).
	reg, err := provider.NewRegistry(vaultres.ResourceTypes()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range reg.Tokens() {
		k, _ := reg.ResourceType(tok)
		for _, in := range k.Inputs {
			l := strings.ToLower(in)
			if (strings.Contains(l, "token") || strings.Contains(l, "jwt") || strings.Contains(l, "secret") || strings.Contains(l, "password")) &&
				!strings.HasSuffix(l, "file") && !strings.HasSuffix(l, "ttl") {
				t.Errorf("%s: input %q looks like a secret value", tok, in)
			}
		}
	}
}
