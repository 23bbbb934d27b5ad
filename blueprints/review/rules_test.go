package review

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

const (
	P = "prod.yaml"
	T = "test.yaml"
)

// w is an expected finding: rule, file, path, severity.
type w struct {
	rule, file, path string
	sev              blueprints.Severity
}

func (x w) String() string { return fmt.Sprintf("%s %s %s %s", x.rule, x.file, x.path, x.sev) }

const (
	crit = blueprints.SeverityCritical
	high = blueprints.SeverityHigh
	med  = blueprints.SeverityMedium
	low  = blueprints.SeverityLow
	info = blueprints.SeverityInfo
)

// ruleCase mutates the clean examples. want lists every finding expected;
// an empty want is a near miss the rule must not report.
type ruleCase struct {
	rule  string
	name  string
	edits map[string][]edit
	base  bool   // review against the unmodified examples as base
	msg   string // substring the rule's first finding's message must hold
	want  []w
}

var (
	endpointPublic = edit{"endpoint: private ", "endpoint: public "}
	noCIDRs        = "allowedCIDRs: []"
)

func cidrs(list string) edit { return edit{noCIDRs, "allowedCIDRs: " + list} }

func ruleCases() []ruleCase {
	return []ruleCase{
		{rule: "SP-API-001", name: "public endpoint", edits: map[string][]edit{T: {endpointPublic}}, msg: `endpoint is "public"`,
			want: []w{{"SP-API-001", T, "spec.apiServer.endpoint", high}}},
		{rule: "SP-API-001", name: "private", edits: map[string][]edit{T: {{"endpoint: private ", "endpoint: private "}}}},

		{rule: "SP-API-002", name: "0.0.0.0/0", edits: map[string][]edit{P: {endpointPublic, cidrs("[10.1.0.0/16, 0.0.0.0/0]")}}, msg: `"0.0.0.0/0" is world-open`,
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}, {"SP-API-002", P, "spec.apiServer.allowedCIDRs[1]", crit}}},
		{rule: "SP-API-002", name: "::/0", edits: map[string][]edit{P: {endpointPublic, cidrs("['::/0']")}},
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}, {"SP-API-002", P, "spec.apiServer.allowedCIDRs[0]", crit}}},
		{rule: "SP-API-002", name: "IPv4-mapped world", edits: map[string][]edit{P: {endpointPublic, cidrs("['::ffff:0.0.0.0/96']")}}, msg: "world-open",
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}, {"SP-API-002", P, "spec.apiServer.allowedCIDRs[0]", crit}}},
		{rule: "SP-API-002", name: "shorter than /8", edits: map[string][]edit{P: {endpointPublic, cidrs("[8.0.0.0/7]")}}, msg: "/7",
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}, {"SP-API-002", P, "spec.apiServer.allowedCIDRs[0]", crit}}},
		{rule: "SP-API-002", name: "world-open on public endpoint is critical", edits: map[string][]edit{P: {endpointPublic, cidrs("[0.0.0.0/0]")}}, msg: "public endpoint",
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}, {"SP-API-002", P, "spec.apiServer.allowedCIDRs[0]", crit}}},
		{rule: "SP-API-002", name: "/8 and an IPv6 /32 are fine", edits: map[string][]edit{P: {endpointPublic, cidrs("[10.0.0.0/8, '2001:db8::/32']")}},
			want: []w{{"SP-API-001", P, "spec.apiServer.endpoint", high}}},

		{rule: "SP-ENC-001", name: "none", edits: map[string][]edit{P: {{"provider: vault-kms", "provider: none"}}}, msg: `"none"`,
			want: []w{{"SP-ENC-001", P, "spec.encryptionAtRest.provider", crit}}},
		{rule: "SP-ENC-001", name: "secretbox", edits: map[string][]edit{P: {{"provider: vault-kms", "provider: secretbox"}}}},

		{rule: "SP-ENC-002", name: "aescbc", edits: map[string][]edit{P: {{"provider: vault-kms", "provider: aescbc"}}}, msg: `"aescbc"`,
			want: []w{{"SP-ENC-002", P, "spec.encryptionAtRest.provider", high}}},
		{rule: "SP-ENC-002", name: "aesgcm", edits: map[string][]edit{P: {{"provider: vault-kms", "provider: aesgcm"}}},
			want: []w{{"SP-ENC-002", P, "spec.encryptionAtRest.provider", med}}},
		{rule: "SP-ENC-002", name: "secretbox", edits: map[string][]edit{P: {{"provider: vault-kms", "provider: secretbox"}}}},

		{rule: "SP-ENC-003", name: "secrets missing", edits: map[string][]edit{P: {{"resources: [secrets]", "resources: [configmaps]"}}}, msg: `["configmaps"]`,
			want: []w{{"SP-ENC-003", P, "spec.encryptionAtRest.resources", high}}},
		{rule: "SP-ENC-003", name: "all resources", edits: map[string][]edit{P: {{"resources: [secrets]", `resources: [configmaps, "*.*"]`}}}},

		{rule: "SP-ADM-001", name: "prod by tag", edits: map[string][]edit{P: {{"requireDigest: true ", "requireDigest: false"}}}, msg: "by mutable tag",
			want: []w{{"SP-ADM-001", P, "spec.images.requireDigest", high}}},
		{rule: "SP-ADM-001", name: "prod from any registry", edits: map[string][]edit{P: {{"allowedRegistries: [registry.example.com/shop]", "allowedRegistries: []"}}},
			msg: "from any registry", want: []w{{"SP-ADM-001", P, "spec.images", med}}},
		{rule: "SP-ADM-001", name: "prod allows all of Docker Hub", edits: map[string][]edit{P: {{"[registry.example.com/shop]", "[registry.example.com/shop, docker.io, docker.io/library]"}}},
			msg: `"docker.io" is a whole public registry`, want: []w{{"SP-ADM-001", P, "spec.images.allowedRegistries[1]", high}, {"SP-ADM-001", P, "spec.images.allowedRegistries[2]", high}}},
		{rule: "SP-ADM-001", name: "prod allows an organisation on a public registry", edits: map[string][]edit{P: {{"[registry.example.com/shop]", "[ghcr.io/shop, docker.io/shopcorp]"}}}},
		{rule: "SP-ADM-001", name: "test by tag", edits: map[string][]edit{T: {{"allowedRegistries: [registry.example.com/shop]", "allowedRegistries: []"}}}},
		{rule: "SP-ADM-005", name: "warn in prod", edits: map[string][]edit{P: {{"mode: deny ", "mode: warn "}}}, msg: "only warn",
			want: []w{{"SP-ADM-005", P, "spec.guardrails.mode", high}}},
		{rule: "SP-ADM-005", name: "warn in test", edits: map[string][]edit{T: {{"mode: deny ", "mode: warn "}}},
			want: []w{{"SP-ADM-005", T, "spec.guardrails.mode", med}}},
		{rule: "SP-ADM-005", name: "deny", edits: map[string][]edit{T: {{"mode: deny ", "mode: deny "}}}},
		{rule: "SP-STATE-001", name: "prod state with a passphrase", edits: map[string][]edit{P: {{"secretsProvider: vault ", "secretsProvider: passphrase "}}}, msg: "encrypted only with a passphrase",
			want: []w{{"SP-STATE-001", P, "spec.state.secretsProvider", med}}},
		{rule: "SP-STATE-001", name: "prod state without the field", edits: map[string][]edit{P: {{"  state:\n    secretsProvider: vault ", "  # "}}}, msg: "secretsProvider: passphrase",
			want: []w{{"SP-STATE-001", P, "spec.state.secretsProvider", med}}},
		{rule: "SP-STATE-001", name: "test state with a passphrase", edits: map[string][]edit{T: {{"exceptions: []", "state: {secretsProvider: passphrase}\n  exceptions: []"}}}},
		{rule: "SP-VAULT-001", name: "disabled", edits: map[string][]edit{T: {{"vault:\n", "vault:\n    enabled: false\n"}}},
			want: []w{{"SP-VAULT-001", T, "spec.vault.enabled", high}}},
		{rule: "SP-VAULT-001", name: "explicitly enabled", edits: map[string][]edit{T: {{"vault:\n", "vault:\n    enabled: true\n"}}}},

		{rule: "SP-AUDIT-001", name: "off", edits: map[string][]edit{T: {{"enabled: true\n    policy", "enabled: false\n    policy"}, {"maxAgeDays: 30", "maxAgeDays: 1"}}},
			want: []w{{"SP-AUDIT-001", T, "spec.audit.enabled", high}}}, // retention of no logs is not reported
		{rule: "SP-AUDIT-001", name: "on by default", edits: map[string][]edit{T: {{"enabled: true\n    policy", "policy"}}}},

		{rule: "SP-AUDIT-002", name: "short retention", edits: map[string][]edit{T: {{"maxAgeDays: 30", "maxAgeDays: 7"}, {"maxBackups: 10", "maxBackups: 3"}, {"maxSizeMB: 100", "maxSizeMB: 50"}}}, msg: "audit.maxAgeDays is 7",
			want: []w{{"SP-AUDIT-002", T, "spec.audit.maxAgeDays", med}, {"SP-AUDIT-002", T, "spec.audit.maxBackups", med}, {"SP-AUDIT-002", T, "spec.audit.maxSizeMB", med}}},
		{rule: "SP-AUDIT-002", name: "long retention", edits: map[string][]edit{T: {{"maxAgeDays: 30", "maxAgeDays: 90"}, {"maxSizeMB: 100", "maxSizeMB: 500"}}}},

		{rule: "SP-PSS-001", name: "baseline", edits: map[string][]edit{P: {{"enforce: restricted", "enforce: baseline"}}}, msg: `"baseline"`,
			want: []w{{"SP-PSS-001", P, "spec.podSecurity.enforce", high}}},
		{rule: "SP-PSS-001", name: "privileged", edits: map[string][]edit{P: {{"enforce: restricted", "enforce: privileged"}}},
			want: []w{{"SP-PSS-001", P, "spec.podSecurity.enforce", crit}}},
		{rule: "SP-PSS-001", name: "restricted by default", edits: map[string][]edit{P: {{"enforce: restricted\n", ""}}}},

		{rule: "SP-PSS-002", name: "managed namespace", edits: map[string][]edit{P: {{"[kube-system]", "[kube-system, payments]"}}}, msg: `"payments"`,
			want: []w{{"SP-PSS-002", P, "spec.podSecurity.exemptNamespaces[1]", med}}},
		{rule: "SP-PSS-002", name: "default namespace", edits: map[string][]edit{P: {{"[kube-system]", "[default]"}}},
			want: []w{{"SP-PSS-002", P, "spec.podSecurity.exemptNamespaces[0]", med}}},
		{rule: "SP-PSS-002", name: "more than three", edits: map[string][]edit{P: {{"[kube-system]", "[kube-system, cilium, monitoring, logging]"}}}, msg: "4 namespaces",
			want: []w{{"SP-PSS-002", P, "spec.podSecurity.exemptNamespaces", med}}},
		{rule: "SP-PSS-002", name: "three infrastructure namespaces", edits: map[string][]edit{P: {{"[kube-system]", "[kube-system, cilium, monitoring]"}}}},

		{rule: "SP-PSS-003", name: "audit and warn weaker", edits: map[string][]edit{P: {{"enforce: restricted\n", "enforce: restricted\n    audit: baseline\n    warn: privileged\n"}}}, msg: `audit level is "baseline"`,
			want: []w{{"SP-PSS-003", P, "spec.podSecurity.audit", low}, {"SP-PSS-003", P, "spec.podSecurity.warn", low}}},
		{rule: "SP-PSS-003", name: "restricted written out", edits: map[string][]edit{P: {{"enforce: restricted\n", "enforce: restricted\n    audit: restricted\n    warn: restricted\n"}}}},

		{rule: "SP-NET-001", name: "no CNI", edits: map[string][]edit{T: {{"cni: cilium", "cni: none"}}},
			want: []w{{"SP-NET-001", T, "spec.network.cni", high}}},
		{rule: "SP-NET-001", name: "cilium by default", edits: map[string][]edit{T: {{"    cni: cilium\n", ""}}}},

		{rule: "SP-NET-002", name: "no default deny", edits: map[string][]edit{T: {{"defaultDeny: true", "defaultDeny: false"}}},
			want: []w{{"SP-NET-002", T, "spec.network.defaultDeny", high}}},
		{rule: "SP-NET-002", name: "default deny by default", edits: map[string][]edit{T: {{"    defaultDeny: true        # deny-all ingress and egress in every managed namespace (DNS egress allowed)\n", ""}}}},

		{rule: "SP-NET-003", name: "broad rules", edits: map[string][]edit{T: {{"      - from: {namespace: storefront}\n        to: {namespace: payments, ports: [8443]}\n",
			"      - from: {namespace: \"*\"}\n        to: {namespace: payments, ports: [8443]}\n" +
				"      - from: {cidr: 0.0.0.0/0}\n        to: {namespace: storefront, ports: [443]}\n" +
				"      - from: {cidr: 4.0.0.0/6}\n        to: {namespace: storefront, ports: [443]}\n" +
				"      - from: {namespace: storefront}\n        to: {namespace: \"*\", ports: [53]}\n" +
				"      - from: {namespace: storefront}\n        to: {namespace: payments}\n"}}},
			msg: `from every namespace`,
			want: []w{
				{"SP-NET-003", T, "spec.network.allow[0].from.namespace", med},
				{"SP-NET-003", T, "spec.network.allow[1].from.cidr", med},
				{"SP-NET-003", T, "spec.network.allow[2].from.cidr", med},
				{"SP-NET-003", T, "spec.network.allow[3].to.namespace", med},
				{"SP-NET-003", T, "spec.network.allow[4].to.ports", med},
			}},
		{rule: "SP-NET-003", name: "narrow CIDR", edits: map[string][]edit{T: {{"from: {namespace: storefront}", "from: {cidr: 10.20.0.0/16}"}}}},
		{rule: "SP-NET-003", name: "egress to the world", edits: map[string][]edit{T: {{"to: {namespace: payments, ports: [8443]}", "to: {cidr: 0.0.0.0/0, ports: [443]}"}}},
			msg:  `sends egress to "0.0.0.0/0", which is world-open`,
			want: []w{{"SP-NET-003", T, "spec.network.allow[0].to.cidr", med}}},
		{rule: "SP-NET-003", name: "egress to a narrow CIDR", edits: map[string][]edit{T: {{"to: {namespace: payments, ports: [8443]}", "to: {cidr: 192.0.2.10/32, ports: [8200]}"}}}},

		{rule: "SP-NET-005", name: "encryption off", edits: map[string][]edit{P: {{"    defaultDeny: true", "    transparentEncryption: none\n    defaultDeny: true"}}},
			msg:  "transparentEncryption is none",
			want: []w{{"SP-NET-005", P, "spec.network.transparentEncryption", med}}},
		{rule: "SP-NET-005", name: "unset: resolved live", edits: map[string][]edit{P: {{"    defaultDeny: true", "    transparentEncryption: \"\"\n    defaultDeny: true"}}}},

		{rule: "SP-RBAC-001", name: "broad subjects", edits: map[string][]edit{P: {{`admins: ["group:platform-admins"]`,
			`admins: ["group:platform-admins", "group:system:authenticated", "group:system:unauthenticated", "user:system:anonymous", "group:system:serviceaccounts", "user:*"]`}}},
			msg: `"group:system:authenticated"`,
			want: []w{
				{"SP-RBAC-001", P, "spec.rbac.admins[1]", crit}, {"SP-RBAC-001", P, "spec.rbac.admins[2]", crit}, {"SP-RBAC-001", P, "spec.rbac.admins[3]", crit},
				{"SP-RBAC-001", P, "spec.rbac.admins[4]", crit}, {"SP-RBAC-001", P, "spec.rbac.admins[5]", crit},
			}},
		{rule: "SP-RBAC-001", name: "named subjects", edits: map[string][]edit{P: {{`admins: ["group:platform-admins"]`, `admins: ["group:platform-admins", "user:alice@example.com", "serviceaccount:ci:deployer"]`}}}},

		{rule: "SP-ISO-001", name: "same cluster name", edits: map[string][]edit{T: {{"name: shop-test ", "name: shop-prod "}}}, msg: "prod.yaml:8",
			// The examples spell out their Vault names, so only the name collides.
			want: []w{{"SP-ISO-001", T, "metadata.name", crit}}},
		{rule: "SP-ISO-001", name: "distinct names", edits: map[string][]edit{T: {{"name: shop-test ", "name: shop-staging "}}}},

		{rule: "SP-ISO-002", name: "shared KV mount", edits: map[string][]edit{T: {{"kvMount: kv-shop-test", "kvMount: kv-shop-prod"}}}, msg: `"kv-shop-prod" is also used by "shop-prod"`,
			want: []w{{"SP-ISO-002", T, "spec.vault.kvMount", high}}},
		{rule: "SP-ISO-002", name: "shared transit mount, key and auth path", edits: map[string][]edit{
			T: {{"transitMount: transit-shop-test", "transitMount: transit-shop-prod"}, {"transitKey: kms-shop-test", "transitKey: kms-shop-prod"},
				{"authPath: kubernetes-shop-test", "authPath: kubernetes-shop-prod"}}},
			want: []w{{"SP-ISO-002", T, "spec.vault.transitMount", high}, {"SP-ISO-002", T, "spec.vault.transitKey", high}, {"SP-ISO-002", T, "spec.vault.authPath", high}}},
		{rule: "SP-ISO-002", name: "same key name in separate transit mounts", edits: map[string][]edit{
			P: {{"transitKey: kms-shop-prod", "transitKey: kms"}}, T: {{"transitKey: kms-shop-test", "transitKey: kms"}}}},
		{rule: "SP-ISO-002", name: "same names in different Vaults", edits: map[string][]edit{
			P: {{`address: ""`, `address: "https://vault.prod.example.com"`}},
			T: {{"kvMount: kv-shop-test", "kvMount: kv-shop-prod"}, {`address: ""`, `address: "https://vault.test.example.com"`}}}},
		{rule: "SP-ISO-002", name: "same environment may share", edits: map[string][]edit{
			T: {{"environment: test ", "environment: prod "}, {"env: test", "env: prod"}, {"kvMount: kv-shop-test", "kvMount: kv-shop-prod"},
				{"requireDigest: false", "requireDigest: true "}, {"exceptions: []", "state: {secretsProvider: vault}\n  exceptions: []"}}}},

		{rule: "SP-ISO-003", name: "same pod CIDR", edits: map[string][]edit{T: {{"podCIDR: 10.65.0.0/16", "podCIDR: 10.64.0.0/16"}}}, msg: "podCIDR 10.64.0.0/16 overlaps podCIDR 10.64.0.0/16",
			want: []w{{"SP-ISO-003", T, "spec.network.podCIDR", high}}},
		{rule: "SP-ISO-003", name: "service inside pod range", edits: map[string][]edit{T: {{"serviceCIDR: 10.129.0.0/16", "serviceCIDR: 10.64.16.0/20"}}}, msg: "serviceCIDR 10.64.16.0/20 overlaps podCIDR 10.64.0.0/16",
			want: []w{{"SP-ISO-003", T, "spec.network.serviceCIDR", high}}},
		{rule: "SP-ISO-003", name: "pod range containing the other service range", edits: map[string][]edit{T: {{"podCIDR: 10.65.0.0/16", "podCIDR: 10.128.0.0/12"}, {"serviceCIDR: 10.129.0.0/16", "serviceCIDR: 10.200.0.0/16"}}},
			msg:  "podCIDR 10.128.0.0/12 overlaps serviceCIDR 10.128.0.0/16",
			want: []w{{"SP-ISO-003", T, "spec.network.podCIDR", high}}},
		{rule: "SP-ISO-003", name: "allow rule into the other environment", edits: map[string][]edit{T: {{"to: {namespace: payments, ports: [8443]}", "to: {cidr: 10.64.8.0/24, ports: [8443]}"}}}, msg: "allow rule names 10.64.8.0/24, which overlaps podCIDR 10.64.0.0/16",
			want: []w{{"SP-ISO-003", T, "spec.network.allow[0].to.cidr", high}}},
		{rule: "SP-ISO-003", name: "allow rule from outside both environments", edits: map[string][]edit{T: {{"from: {namespace: storefront}", "from: {cidr: 192.0.2.0/24}"}}}},
		{rule: "SP-ISO-003", name: "disjoint", edits: map[string][]edit{T: {{"podCIDR: 10.65.0.0/16", "podCIDR: 10.66.0.0/16"}}}},

		{rule: "SP-ISO-004", name: "test labelled prod", edits: map[string][]edit{T: {
			{"env: test", "env: prod\n    app.kubernetes.io/environment: Production"},
			{"    - name: payments\n", "    - name: payments\n      labels: {tier: prod}\n"}}},
			msg: "env=prod",
			want: []w{
				{"SP-ISO-004", T, `metadata.labels["app.kubernetes.io/environment"]`, high},
				{"SP-ISO-004", T, "metadata.labels.env", high},
				{"SP-ISO-004", T, "spec.namespaces[1].labels.tier", high},
			}},
		{rule: "SP-ISO-004", name: "prod labelled prod, test mentions prod elsewhere", edits: map[string][]edit{T: {{"env: test", "env: test\n    team: prod"}}}},

		{rule: "SP-EXC-001", name: "expired", edits: map[string][]edit{T: {endpointPublic, {"exceptions: []", `exceptions: [{control: SP-API-001, justification: "demo endpoint for the customer workshop", expires: "2026-11-21"}]`}}},
			msg:  "expired on 2026-11-21",
			want: []w{{"SP-API-001", T, "spec.apiServer.endpoint", high}, {"SP-EXC-001", T, "spec.exceptions[0].expires", high}}},
		{rule: "SP-EXC-001", name: "expires today", edits: map[string][]edit{T: {endpointPublic, {"exceptions: []", `exceptions: [{control: SP-API-001, justification: "demo endpoint for the customer workshop", expires: "2026-11-22"}]`}}},
			want: []w{{"SP-API-001", T, "spec.apiServer.endpoint", info}}},

		{rule: "SP-EXC-002", name: "todo", edits: map[string][]edit{T: {endpointPublic, {"exceptions: []", `exceptions: [{control: SP-API-001, justification: "TODO: ask Bob about this", expires: "2027-01-01"}]`}}},
			want: []w{{"SP-API-001", T, "spec.apiServer.endpoint", high}, {"SP-EXC-002", T, "spec.exceptions[0].justification", med}}},
		{rule: "SP-EXC-002", name: "too short", edits: map[string][]edit{T: {{"exceptions: []", `exceptions: [{control: SP-API-001, justification: "needed  it", expires: "2027-01-01"}]`}}},
			want: []w{{"SP-EXC-002", T, "spec.exceptions[0].justification", med}}},
		{rule: "SP-EXC-002", name: "justified", edits: map[string][]edit{T: {{"exceptions: []", `exceptions: [{control: SP-API-001, justification: "todolist app demo, accepted by sec team", expires: "2027-01-01"}]`}}}},

		{rule: "SP-EXC-003", name: "unknown control", edits: map[string][]edit{T: {{"exceptions: []", `exceptions: [{control: SP-NOPE-001, justification: "nothing to see here, move on", expires: "2027-01-01"}]`}}},
			msg: `"SP-NOPE-001"`, want: []w{{"SP-EXC-003", T, "spec.exceptions[0].control", low}}},
		{rule: "SP-EXC-003", name: "known control without hardening", edits: map[string][]edit{T: {{"exceptions: []", `exceptions: [{control: SP-APISRV-004, justification: "profiling needed for a perf investigation", expires: "2027-01-01"}]`}}}},

		{rule: "SP-CHG-001", name: "encryption vault-kms to none", base: true, edits: map[string][]edit{P: {{"provider: vault-kms", "provider: none"}}},
			msg:  `SP-ENC-001: spec.encryptionAtRest.provider weakened from "vault-kms" to "none" (base main)`,
			want: []w{{"SP-CHG-001", P, "spec.encryptionAtRest.provider", crit}, {"SP-ENC-001", P, "spec.encryptionAtRest.provider", crit}}},
		{rule: "SP-CHG-001", name: "unchanged", base: true},
		{rule: "SP-CHG-001", name: "transparent encryption turned off", base: true, edits: map[string][]edit{P: {{"    defaultDeny: true", "    transparentEncryption: none\n    defaultDeny: true"}}},
			msg:  `SP-NET-005: spec.network.transparentEncryption weakened from "(default)" to "none" (base main)`,
			want: []w{{"SP-CHG-001", P, "spec.network.transparentEncryption", med}, {"SP-NET-005", P, "spec.network.transparentEncryption", med}}},
		{rule: "SP-CHG-001", name: "guardrails weakened", base: true, edits: map[string][]edit{P: {{"requireDigest: true ", "requireDigest: false"},
			{"[registry.example.com/shop]", "[registry.example.com/shop, ghcr.io/someone]"}, {"mode: deny ", "mode: warn "}}},
			msg: `SP-ADM-001: registry "ghcr.io/someone" newly allowed (base main)`,
			want: []w{{"SP-CHG-001", P, "spec.images.requireDigest", high}, {"SP-CHG-001", P, "spec.images.allowedRegistries[1]", high},
				{"SP-CHG-001", P, "spec.guardrails.mode", high},
				{"SP-ADM-001", P, "spec.images.requireDigest", high}, {"SP-ADM-005", P, "spec.guardrails.mode", high}}},
	}
}

func TestRules(t *testing.T) {
	triggered, clean := map[string]bool{}, map[string]bool{}
	for _, tc := range ruleCases() {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			bps := loadFiles(t, mutated(t, tc.edits))
			opts := Options{Now: testNow}
			if tc.base {
				opts.Base = NewBase("main", loadFiles(t, exampleFiles(t)))
			}
			got := Review(bps, opts)
			var gotW, wantW []string
			for _, f := range got {
				gotW = append(gotW, w{string(f.Rule), f.File, f.Path, f.Severity}.String())
				if f.Line < 1 || f.Column < 1 || f.Blueprint == "" || f.Message == "" || f.Remediation == "" {
					t.Errorf("incomplete finding: %+v", f)
				}
			}
			for _, x := range tc.want {
				wantW = append(wantW, x.String())
			}
			slices.Sort(gotW)
			slices.Sort(wantW)
			if !slices.Equal(gotW, wantW) {
				t.Fatalf("findings:\n  got  %q\n  want %q\n%s", gotW, wantW, dump(got))
			}
			if own := findingsOf(got, tc.rule); len(own) > 0 {
				triggered[tc.rule] = true
				if tc.msg != "" && !strings.Contains(own[0].Message, tc.msg) {
					t.Errorf("message %q does not contain %q", own[0].Message, tc.msg)
				}
			} else {
				clean[tc.rule] = true
			}
		})
	}
	for _, c := range Rules() {
		if id := string(c.ID); !triggered[id] || !clean[id] {
			t.Errorf("%s: needs a case that triggers it (%v) and one that does not (%v)", id, triggered[id], clean[id])
		}
	}
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s:%d:%d %s %s %s: %s\n", f.File, f.Line, f.Column, f.Severity, f.Rule, f.Path, f.Message)
	}
	return b.String()
}

func TestExamplesReviewClean(t *testing.T) {
	// Each directory is one set of environments, reviewed together.
	for _, dir := range []string{"../examples", "../examples/kind"} {
		bps, err := blueprints.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := Review(bps, Options{Now: testNow}); len(got) != 0 {
			t.Errorf("%s has findings:\n%s", dir, dump(got))
		}
	}
}

// TestRulesMatchCatalog keeps the rule set and the catalog in step: every
// ByReview control has a rule and every rule a ByReview control.
func TestRulesMatchCatalog(t *testing.T) {
	have := map[blueprints.ControlID]bool{}
	for _, r := range ruleSet() {
		if have[r.id] {
			t.Errorf("%s: two rules", r.id)
		}
		have[r.id] = true
		c, ok := blueprints.ControlByID(r.id)
		if !ok || c.Where&blueprints.ByReview == 0 {
			t.Errorf("rule %s has no ByReview control in the catalog", r.id)
		}
		if (r.one == nil) == (r.all == nil) {
			t.Errorf("rule %s: set exactly one of one and all", r.id)
		}
	}
	for _, c := range blueprints.Controls {
		if c.Where&blueprints.ByReview != 0 && !have[c.ID] {
			t.Errorf("control %s is marked ByReview but has no rule", c.ID)
		}
	}
	if n := len(Rules()); n != len(have) {
		t.Errorf("Rules() has %d entries, ruleSet %d", n, len(have))
	}
}

func TestFindingPosition(t *testing.T) {
	bps := loadFiles(t, mutated(t, map[string][]edit{T: {endpointPublic}}))
	got := Review(bps, Options{Now: testNow})
	if len(got) != 1 || got[0].Line != 18 || got[0].Column != 15 || got[0].Blueprint != "shop-test" {
		t.Fatalf("got %+v; want SP-API-001 at test.yaml:18:15 in shop-test", got)
	}
	// A defaulted field points at its nearest written ancestor.
	bps = loadFiles(t, mutated(t, map[string][]edit{T: {{"vault:\n    address", "vault:\n    enabled: false\n    address"}}}))
	if got := Review(bps, Options{Now: testNow}); len(got) != 1 || got[0].Line != 35 {
		t.Fatalf("got %+v; want the written vault.enabled at line 35", got)
	}
}
