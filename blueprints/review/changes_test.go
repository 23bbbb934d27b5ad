package review

import (
	"slices"
	"strings"
	"testing"
)

const allowRule = "      - from: {namespace: storefront}\n        to: {namespace: payments, ports: [8443]}\n"

func TestChanges(t *testing.T) {
	type chg struct {
		path string
		sev  string
		msg  string // substring
	}
	tests := []struct {
		name       string
		base, edit []edit // on test.yaml
		want       []chg
	}{
		{name: "encryption to none", edit: []edit{{"provider: vault-kms", "provider: none"}},
			want: []chg{{"spec.encryptionAtRest.provider", "critical", `SP-ENC-001: spec.encryptionAtRest.provider weakened from "vault-kms" to "none" (base main)`}}},
		{name: "encryption to secretbox", edit: []edit{{"provider: vault-kms", "provider: secretbox"}},
			want: []chg{{"spec.encryptionAtRest.provider", "high", "SP-ENC-002"}}},
		{name: "encryption strengthened", base: []edit{{"provider: vault-kms", "provider: aescbc"}}},
		{name: "resource dropped", base: []edit{{"resources: [secrets]", "resources: [secrets, configmaps]"}},
			want: []chg{{"spec.encryptionAtRest.resources", "high", `SP-ENC-003: resource "configmaps" is no longer encrypted`}}},
		{name: "resource covered by wildcard", base: []edit{{"resources: [secrets]", "resources: [secrets, configmaps]"}}, edit: []edit{{"resources: [secrets]", `resources: ["*.*"]`}}},
		{name: "endpoint public", edit: []edit{endpointPublic},
			want: []chg{{"spec.apiServer.endpoint", "high", `weakened from "private" to "public"`}}},
		{name: "new allowed CIDR", base: []edit{endpointPublic, cidrs("[10.1.0.0/16]")}, edit: []edit{endpointPublic, cidrs("[10.1.0.0/16, 192.168.0.0/24]")},
			want: []chg{{"spec.apiServer.allowedCIDRs[1]", "high", `SP-API-002: allowed CIDR "192.168.0.0/24" added`}}},
		{name: "allowed CIDR removed", base: []edit{endpointPublic, cidrs("[10.1.0.0/16, 192.168.0.0/24]")}, edit: []edit{endpointPublic, cidrs("[10.1.0.0/16]")}},
		{name: "cni none", edit: []edit{{"cni: cilium", "cni: none"}}, want: []chg{{"spec.network.cni", "high", "SP-NET-001"}}},
		{name: "default deny off", edit: []edit{{"defaultDeny: true", "defaultDeny: false"}}, want: []chg{{"spec.network.defaultDeny", "high", "SP-NET-002"}}},
		{name: "new allow rule", edit: []edit{{allowRule, allowRule + "      - from: {namespace: payments}\n        to: {namespace: storefront, ports: [80]}\n"}},
			want: []chg{{"spec.network.allow[1]", "medium", `SP-NET-003: new allow rule from namespace "payments" to namespace "storefront" on ports [80]`}}},
		{name: "ports removed", edit: []edit{{"{namespace: payments, ports: [8443]}", "{namespace: payments}"}},
			want: []chg{{"spec.network.allow[0].to.ports", "medium", "ports [8443] removed"}}},
		{name: "port added", edit: []edit{{"ports: [8443]", "ports: [8443, 22]"}},
			want: []chg{{"spec.network.allow[0].to.ports", "medium", "ports [22] added"}}},
		{name: "from every namespace", edit: []edit{{"from: {namespace: storefront}", `from: {namespace: "*"}`}},
			want: []chg{{"spec.network.allow[0].from.namespace", "medium", "to every namespace"}}},
		{name: "to every namespace", edit: []edit{{"to: {namespace: payments,", `to: {namespace: "*",`}},
			want: []chg{{"spec.network.allow[0].to.namespace", "medium", `from namespace "payments" to every namespace`}}},
		{name: "CIDR widened", base: []edit{{"from: {namespace: storefront}", "from: {cidr: 10.1.2.0/24}"}}, edit: []edit{{"from: {namespace: storefront}", "from: {cidr: 10.0.0.0/8}"}},
			want: []chg{{"spec.network.allow[0].from.cidr", "medium", `widened from "10.1.2.0/24" to "10.0.0.0/8"`}}},
		{name: "selector dropped", base: []edit{{"to: {namespace: payments,", "to: {namespace: payments, podSelector: {app: api},"}},
			want: []chg{{"spec.network.allow[0].to.podSelector", "medium", "loosened"}}},
		{name: "allow narrowed", edit: []edit{{"to: {namespace: payments,", "to: {namespace: payments, podSelector: {app: api},"}}},
		{name: "allow rule reordered", base: []edit{{allowRule, "      - from: {namespace: payments}\n        to: {namespace: storefront, ports: [80]}\n" + allowRule}},
			edit: []edit{{allowRule, allowRule + "      - from: {namespace: payments}\n        to: {namespace: storefront, ports: [80]}\n"}}},
		{name: "vault off", edit: []edit{{"vault:\n", "vault:\n    enabled: false\n"}}, want: []chg{{"spec.vault.enabled", "high", "SP-VAULT-001"}}},
		{name: "audit off", edit: []edit{{"enabled: true\n    policy", "enabled: false\n    policy"}}, want: []chg{{"spec.audit.enabled", "high", "SP-AUDIT-001"}}},
		{name: "retention lowered", base: []edit{{"maxAgeDays: 30", "maxAgeDays: 90"}, {"maxBackups: 10", "maxBackups: 20"}},
			edit: []edit{{"maxAgeDays: 30", "maxAgeDays: 60"}, {"maxBackups: 10", "maxBackups: 15"}},
			want: []chg{{"spec.audit.maxAgeDays", "medium", "lowered from 90 to 60"}, {"spec.audit.maxBackups", "medium", "lowered from 20 to 15"}}},
		{name: "retention default written out", base: []edit{{"    maxAgeDays: 30\n", ""}}},
		{name: "pod security lowered", edit: []edit{{"enforce: restricted\n", "enforce: baseline\n    warn: privileged\n"}},
			want: []chg{{"spec.podSecurity.enforce", "high", "SP-PSS-001"}, {"spec.podSecurity.warn", "low", "SP-PSS-003"}}},
		{name: "new exempt namespace", edit: []edit{{"[kube-system]", "[kube-system, cilium]"}},
			want: []chg{{"spec.podSecurity.exemptNamespaces[1]", "medium", `namespace "cilium" newly exempt`}}},
		{name: "new admin", edit: []edit{{`["group:platform-admins"]`, `["group:platform-admins", "user:bob"]`}},
			want: []chg{{"spec.rbac.admins[1]", "critical", `SP-RBAC-001: "user:bob" newly bound to cluster-admin`}}},
		{name: "admin removed", base: []edit{{`["group:platform-admins"]`, `["group:platform-admins", "user:bob"]`}}},
		{name: "new exception is not excused by itself", edit: []edit{exc("SP-NET-001", why, "2027-01-01")},
			want: []chg{{"spec.exceptions[0]", "high", "new exception for SP-NET-001 until 2027-01-01"}}},
		{name: "exception extended", base: []edit{exc("SP-NET-001", why, "2026-12-01")}, edit: []edit{exc("SP-NET-001", why, "2027-06-01")},
			want: []chg{{"spec.exceptions[0].expires", "high", "extended from 2026-12-01 to 2027-06-01"}}},
		{name: "exception shortened", base: []edit{exc("SP-NET-001", why, "2027-06-01")}, edit: []edit{exc("SP-NET-001", why, "2027-01-01")}},
		{name: "weakening under an existing exception is info", base: []edit{exc("SP-ENC-002", why, "2027-06-01")},
			edit: []edit{exc("SP-ENC-002", why, "2027-06-01"), {"provider: vault-kms", "provider: secretbox"}},
			want: []chg{{"spec.encryptionAtRest.provider", "info", "excepted until 2027-06-01"}}},
		{name: "renamed cluster matched by file and document", edit: []edit{{"name: shop-test ", "name: shop-qa "}, endpointPublic},
			want: []chg{{"spec.apiServer.endpoint", "high", "SP-API-001"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := loadFiles(t, mutated(t, map[string][]edit{T: tt.base}))
			cur := loadFiles(t, mutated(t, map[string][]edit{T: tt.edit}))
			got := findingsOf(Review(cur, Options{Now: testNow, Base: NewBase("main", base)}), "SP-CHG-001")
			t.Log("\n" + dump(got))
			var gotS, wantS []string
			for _, f := range got {
				gotS = append(gotS, f.Path+" "+f.Severity.String())
			}
			for _, c := range tt.want {
				wantS = append(wantS, c.path+" "+c.sev)
			}
			slices.Sort(gotS)
			slices.Sort(wantS)
			if !slices.Equal(gotS, wantS) {
				t.Fatalf("SP-CHG-001 findings:\n  got  %q\n  want %q\n%s", gotS, wantS, dump(got))
			}
			for _, c := range tt.want {
				for _, f := range got {
					if f.Path == c.path && !strings.Contains(f.Message, c.msg) {
						t.Errorf("%s: message %q lacks %q", c.path, f.Message, c.msg)
					}
					if f.File != T || f.Line < 1 {
						t.Errorf("finding not located in %s: %+v", T, f)
					}
				}
			}
		})
	}
}

func TestBaseMatch(t *testing.T) {
	files := exampleFiles(t)
	base := NewBase("main", loadFiles(t, map[string][]byte{"all.yaml": append(append([]byte{}, files[P]...), append([]byte("---\n"), files[T]...)...)}))
	cur := loadFiles(t, files)
	for _, b := range cur {
		m := base.Match(b)
		if m == nil || m.Name() != b.Name() {
			t.Errorf("%s: matched %v; want the base blueprint of the same name from all.yaml", b.Name(), m)
		}
	}
	renamed := loadFiles(t, map[string][]byte{"all.yaml": applyEdits(t, T, files[T], []edit{{"name: shop-test ", "name: shop-qa "}})})
	if m := base.Match(renamed[0]); m == nil || m.Name() != "shop-prod" {
		t.Errorf("renamed blueprint at all.yaml doc 0 matched %v; want shop-prod by file and document", m)
	}
	newFile := loadFiles(t, map[string][]byte{"new.yaml": applyEdits(t, T, files[T], []edit{{"name: shop-test ", "name: shop-qa "}})})
	if m := base.Match(newFile[0]); m != nil {
		t.Errorf("new blueprint matched %s; want nothing", m.Name())
	}
	var nilBase *Base
	if nilBase.Match(cur[0]) != nil {
		t.Error("nil base matched")
	}
}
