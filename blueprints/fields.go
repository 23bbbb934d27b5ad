package blueprints

import (
	"fmt"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Support says how one provider honours one blueprint field: which
// controls render it, which verify checks prove it on the live cluster,
// or that the provider refuses it with a load error naming what to use
// instead. Every field has an entry for every provider
// (TestEveryFieldIsHonouredOrRefused walks the types), so no field is a
// silent no-op; docs/fields.md is generated from this table.
type Support struct {
	// Rendered are the controls whose hardening renders the field.
	Rendered []ControlID
	// Verified are the controls whose verify check proves the field on
	// the live cluster (a check's ID is its control's).
	Verified []ControlID
	// Reviewed are the review rules that judge the field. Review alone
	// honours nothing: it reads the blueprint, not the cluster.
	Reviewed []ControlID
	// By names, for a field that shapes the cluster rather than hardens
	// it, the Go file that realises it (module-relative) and how:
	// "provision/kind/render.go: one node per worker".
	By string
	// Refused is the load error (after the field path) for a blueprint
	// that sets the field where this provider cannot honour it: why, and
	// what to use instead. With RefusedWhen the refusal is conditional
	// and the field is honoured otherwise.
	Refused     string
	RefusedWhen string
	// Example is a blueprint spec (flow YAML, the part after "spec: ")
	// that the refusal must refuse; a test loads it.
	Example string
	// Inert says why a field changes nothing on this provider and is
	// still accepted: descriptive metadata, or a field of the nodes a
	// provider without nodes does not have, kept so one blueprint moves
	// between providers. `secprov up` says so for each one a blueprint
	// writes (ProviderNotes).
	Inert string
	// Note qualifies how it is honoured here, where that differs from
	// what the field suggests.
	Note string
}

// Honoured reports whether the provider realises the field (at least
// under some condition): rendered, verified or realised by its own code.
func (s Support) Honoured() bool {
	return len(s.Rendered)+len(s.Verified) > 0 || s.By != ""
}

// FieldSupport is one blueprint field's support per provider.
type FieldSupport struct {
	// Path is the field's YAML path, list items written as [].
	Path string
	// Local and Kind are the providers' support.
	Local, Kind Support
}

// For returns the support of provider p (local or kind).
func (f FieldSupport) For(p string) Support {
	if p == v1alpha1.ProviderKind {
		return f.Kind
	}
	return f.Local
}

func ids(id ...ControlID) []ControlID { return id }

// Refusal texts shared by the table and the validator.
const (
	refuseKindOptions   = "local runs no nodes, so there is nothing to configure: set spec.provider.type: kind, or remove spec.provider.kind"
	refusePrivateCIDRs  = "a private endpoint listens on the provider's private address only (loopback on local), so allowedCIDRs would change nothing: remove allowedCIDRs, or use endpoint: public (with an exception for " + string(APIEndpointPrivate) + ") to admit exactly these networks through the host's packet filter"
	refuseKindCIDRs     = "kind cannot enforce allowedCIDRs: Docker publishes a public endpoint's port to every client of the host, and a private endpoint listens on loopback only; remove allowedCIDRs (keep endpoint: private), or use provider local, which narrows a public endpoint to allowedCIDRs with nftables"
	refuseKindName      = "kind nodes are hostnamed <name>-control-plane and a hostname holds at most 63 characters: use a shorter metadata.name"
	refuseKindVaultAddr = "default deny would drop their traffic to it: leave spec.vault.address empty, or list no namespaces until allow rules can name an outside address"
	noPodsNote          = "as NetworkPolicy objects, which the API serves and verify judges; no pod runs on local, so no traffic is enforced (" + string(NetworkEnforced) + " proves that on kind)"
	refuseLocalEncrypt  = "local runs no nodes, so there is no pod traffic between nodes to encrypt: remove transparentEncryption (or set none), or use provider type kind"
	refuseKindIPsec     = "kind takes wireguard or none: secprov does not manage Cilium's IPsec keys (a pre-shared key rotated by hand); use wireguard"
	inertNoNodes        = "local runs a control plane without nodes, so no pod runs and no CNI is installed; accepted so the same blueprint makes a kind cluster"
)

// Fields is the support table. A new field of the types fails
// TestEveryFieldIsHonouredOrRefused until it has an entry here (its yaml
// path, list items as []; any order): say per provider which controls
// render it, which checks verify it, or — where the provider cannot — add
// Refused with an Example and refuse it in validate.go through
// validator.refuse, so the message is this table's. Then regenerate
// docs/fields.md (go test ./blueprints -run TestFieldsDocIsFresh -update).
var Fields = func() []FieldSupport {
	f := func(path string, local, kind Support) FieldSupport {
		return FieldSupport{Path: path, Local: local, Kind: kind}
	}
	net3 := Support{Rendered: ids(NetworkAllowNarrow), Verified: ids(NetworkAllowNarrow), Reviewed: ids(NetworkAllowNarrow), Note: noPodsNote}
	net3kind := Support{Rendered: ids(NetworkAllowNarrow), Verified: ids(NetworkAllowNarrow, NetworkEnforced), Reviewed: ids(NetworkAllowNarrow)}
	same := func(path string, s Support) FieldSupport { return f(path, s, s) }
	kindOnly := func(path, by string) FieldSupport {
		return f(path, Support{Refused: refuseKindOptions, Example: "{environment: test, provider: {kind: {workers: 2}}}"}, Support{By: by})
	}
	loader := Support{By: "blueprints/load.go: the loader reads it first and accepts only " + v1alpha1.APIVersion + " " + v1alpha1.Kind}
	return []FieldSupport{
		f("apiVersion", loader, loader),
		f("kind", loader, loader),
		f("metadata.name",
			Support{By: "provision/cluster/program.go: the cluster's name, directory, record and every name derived from it (Vault mounts, key, auth path)", Reviewed: ids(IsolationOwnCluster)},
			Support{By: "provision/cluster/program.go: the cluster's name, directory, record and every name derived from it (Vault mounts, key, auth path, Docker network)", Reviewed: ids(IsolationOwnCluster),
				Refused: refuseKindName, RefusedWhen: "it is longer than " + fmt.Sprint(KindMaxNameLength) + " characters",
				Example: "{environment: test, provider: {type: kind}}", // with a long name: see the test
			}),
		same("metadata.labels", Support{Reviewed: ids(IsolationProdLabels), Inert: "labels describe the blueprint (review judges its env labels); nothing is rendered into the cluster"}),
		same("metadata.annotations", Support{Inert: "annotations describe the blueprint for people and tools; secprov reads nothing from them"}),
		same("spec.environment", Support{Rendered: ids(VaultEnvironmentsIsolated), Verified: ids(VaultEnvironmentsIsolated, IsolationForeignCredentials),
			By: "provision/cluster/record.go: recorded with the cluster; clusters of other environments are its peers in isolation checks"}),
		same("spec.provider.type", Support{By: "provision/provision.go: picks the provider that creates the cluster; recorded with it"}),
		kindOnly("spec.provider.kind.workers", "provision/kind/render.go: one worker node each"),
		kindOnly("spec.provider.kind.nodeImage", "provision/kind/program.go: the node image of every node"),
		kindOnly("spec.provider.kind.images", "provision/kind/program.go: the upstream or offline image set"),
		same("spec.kubernetes.version", Support{By: "blueprints/validate.go: only the pinned version loads, the one the toolchain provides"}),
		same("spec.apiServer.endpoint", Support{Rendered: ids(APIEndpointPrivate), Verified: ids(APIEndpointPrivate), Reviewed: ids(APIEndpointPrivate)}),
		f("spec.apiServer.allowedCIDRs",
			Support{Rendered: ids(APIAllowedCIDRsNarrow), Verified: ids(APIAllowedCIDRsNarrow), Reviewed: ids(APIAllowedCIDRsNarrow),
				Refused: refusePrivateCIDRs, RefusedWhen: "the endpoint is private",
				Example: "{environment: test, apiServer: {endpoint: private, allowedCIDRs: [10.0.0.0/8]}}"},
			Support{Reviewed: ids(APIAllowedCIDRsNarrow), Refused: refuseKindCIDRs,
				Example: "{environment: test, provider: {type: kind}, apiServer: {allowedCIDRs: [10.0.0.0/8]}}"}),
		f("spec.network.cni",
			Support{Reviewed: ids(CiliumCNI), Inert: inertNoNodes},
			Support{By: "provision/kind/provider.go: installs Cilium with Helm when cilium", Verified: ids(CiliumCNI), Reviewed: ids(CiliumCNI)}),
		f("spec.network.defaultDeny",
			Support{Rendered: ids(NetworkDefaultDeny), Verified: ids(NetworkDefaultDeny), Reviewed: ids(NetworkDefaultDeny), Note: noPodsNote},
			Support{Rendered: ids(NetworkDefaultDeny), Verified: ids(NetworkDefaultDeny, NetworkEnforced), Reviewed: ids(NetworkDefaultDeny)}),
		f("spec.network.podCIDR",
			Support{Reviewed: ids(IsolationNetworks), Inert: inertNoNodes},
			Support{By: "provision/kind/render.go: kubeadm's pod subnet, Cilium's pool", Reviewed: ids(IsolationNetworks)}),
		f("spec.network.serviceCIDR",
			Support{By: "hardening/controlplane.go: --service-cluster-ip-range of the API server and controller manager", Reviewed: ids(IsolationNetworks)},
			Support{By: "provision/kind/render.go: kubeadm's service subnet (and the same flags)", Reviewed: ids(IsolationNetworks)}),
		f("spec.network.allow[].from.namespace", net3, net3kind),
		f("spec.network.allow[].from.podSelector", net3, net3kind),
		f("spec.network.allow[].from.cidr", net3, net3kind),
		f("spec.network.allow[].to.namespace", net3, net3kind),
		f("spec.network.allow[].to.cidr", net3,
			Support{Rendered: ids(NetworkAllowNarrow), Verified: ids(NetworkAllowNarrow), Reviewed: ids(NetworkAllowNarrow, IsolationNetworks),
				Note: "an egress CiliumNetworkPolicy to the CIDR; the probes do not send to it (an address outside the cluster verify cannot serve)"}),
		f("spec.network.transparentEncryption",
			Support{Reviewed: ids(NetworkEncrypted), Refused: refuseLocalEncrypt, RefusedWhen: "it is wireguard or ipsec",
				By:      "blueprints/validate.go: none (or unset) is what local has: no nodes, no traffic between them",
				Example: "{environment: test, network: {transparentEncryption: wireguard}}"},
			Support{Rendered: ids(NetworkEncrypted), Verified: ids(NetworkEncrypted), Reviewed: ids(NetworkEncrypted),
				By:      "provision/kind/encryption.go: resolved against the host kernel before anything is created; wireguard on a kernel without it is refused there",
				Refused: refuseKindIPsec, RefusedWhen: "it is ipsec",
				Example: "{environment: test, provider: {type: kind}, network: {transparentEncryption: ipsec}}"}),
		f("spec.network.allow[].to.podSelector", net3, net3kind),
		f("spec.network.allow[].to.ports", net3, net3kind),
		f("spec.network.allow[].to.protocol", net3, net3kind),
		same("spec.namespaces[].name", Support{Rendered: ids(RBACNoTokenAutomount, NetworkDefaultDeny, PodSecurityRestricted), Verified: ids(RBACNoTokenAutomount, NetworkDefaultDeny, PodSecurityRestricted)}),
		same("spec.namespaces[].labels", Support{By: "hardening/objects.go: labels of the namespace, beside the Pod Security labels"}),
		same("spec.encryptionAtRest.provider", Support{Rendered: ids(EncryptionAtRestOn, KMSPluginHealthy), Verified: ids(EncryptionAtRestOn, EncryptionProviderStrong, KMSPluginHealthy), Reviewed: ids(EncryptionAtRestOn, EncryptionProviderStrong)}),
		same("spec.encryptionAtRest.resources", Support{Rendered: ids(EncryptionCoversSecrets), Verified: ids(EncryptionCoversSecrets), Reviewed: ids(EncryptionCoversSecrets)}),
		same("spec.vault.enabled", Support{Rendered: ids(VaultSecrets), Verified: ids(VaultSecrets), Reviewed: ids(VaultSecrets)}),
		f("spec.vault.address",
			Support{By: "provision/provision.go: secprov uses this Vault instead of running its own", Verified: ids(VaultSecrets)},
			Support{By: "provision/provision.go: secprov uses this Vault instead of running its own", Verified: ids(VaultSecrets),
				Refused: refuseKindVaultAddr, RefusedWhen: "spec.vault.namespaces lists namespaces",
				Example: "{environment: test, provider: {type: kind}, vault: {address: \"https://vault.example.com:8200\", namespaces: [{namespace: payments, paths: [\"payments/*\"]}]}, namespaces: [{name: payments}]}"}),
		same("spec.vault.transitMount", Support{Rendered: ids(KMSTokenNarrow, VaultEnvironmentsIsolated), Verified: ids(KMSTokenNarrow, VaultEnvironmentsIsolated), Reviewed: ids(IsolationVault)}),
		same("spec.vault.transitKey", Support{Rendered: ids(KMSTokenNarrow, KMSCurrentKey), Verified: ids(KMSTokenNarrow, KMSCurrentKey), Reviewed: ids(IsolationVault)}),
		same("spec.vault.kvMount", Support{Rendered: ids(VaultRolesScoped, VaultEnvironmentsIsolated), Verified: ids(VaultRolesScoped, VaultEnvironmentsIsolated), Reviewed: ids(IsolationVault)}),
		same("spec.vault.authPath", Support{Rendered: ids(VaultRolesScoped), Verified: ids(VaultRolesScoped), Reviewed: ids(IsolationVault)}),
		f("spec.vault.namespaces[].namespace",
			Support{Rendered: ids(VaultRolesScoped), Verified: ids(VaultRolesScoped)},
			Support{Rendered: ids(VaultRolesScoped), Verified: ids(VaultRolesScoped, VaultWorkloadsLive)}),
		f("spec.vault.namespaces[].paths",
			Support{Rendered: ids(VaultRolesScoped), Verified: ids(VaultRolesScoped)},
			Support{Rendered: ids(VaultRolesScoped), Verified: ids(VaultRolesScoped, VaultWorkloadsLive)}),
		same("spec.audit.enabled", Support{Rendered: ids(AuditLogging), Verified: ids(AuditLogging), Reviewed: ids(AuditLogging)}),
		same("spec.audit.policy", Support{Rendered: ids(AuditLogging), Verified: ids(AuditLogging)}),
		same("spec.audit.maxAgeDays", Support{Rendered: ids(AuditRetention), Verified: ids(AuditRetention), Reviewed: ids(AuditRetention)}),
		same("spec.audit.maxBackups", Support{Rendered: ids(AuditRetention), Verified: ids(AuditRetention), Reviewed: ids(AuditRetention)}),
		same("spec.audit.maxSizeMB", Support{Rendered: ids(AuditRetention), Verified: ids(AuditRetention), Reviewed: ids(AuditRetention)}),
		same("spec.podSecurity.enforce", Support{Rendered: ids(PodSecurityRestricted, GuardrailPodSecurity), Verified: ids(PodSecurityRestricted, GuardrailPodSecurity), Reviewed: ids(PodSecurityRestricted)}),
		same("spec.podSecurity.audit", Support{Rendered: ids(PodSecurityAuditWarn), Verified: ids(PodSecurityAuditWarn), Reviewed: ids(PodSecurityAuditWarn)}),
		same("spec.podSecurity.warn", Support{Rendered: ids(PodSecurityAuditWarn), Verified: ids(PodSecurityAuditWarn), Reviewed: ids(PodSecurityAuditWarn)}),
		same("spec.podSecurity.exemptNamespaces", Support{Rendered: ids(PodSecurityExemptionsFew), Verified: ids(PodSecurityExemptionsFew), Reviewed: ids(PodSecurityExemptionsFew)}),
		same("spec.rbac.admins", Support{Rendered: ids(RBACAdminsNamed), Verified: ids(RBACAdminsNamed), Reviewed: ids(RBACAdminsNamed)}),
		same("spec.images.allowedRegistries", Support{Rendered: ids(GuardrailImages), Verified: ids(GuardrailImages), Reviewed: ids(GuardrailImages)}),
		same("spec.images.requireDigest", Support{Rendered: ids(GuardrailImages), Verified: ids(GuardrailImages), Reviewed: ids(GuardrailImages)}),
		same("spec.guardrails.mode", Support{By: "hardening/guardrails.go: every guardrail's binding denies, or warns and audits", Verified: ids(GuardrailImages, GuardrailPodSecurity, GuardrailRBAC, GuardrailNetwork), Reviewed: ids(GuardrailsEnforced)}),
		same("spec.state.secretsProvider", Support{By: "provision/statesecrets.go: the stack's secrets provider, a Transit key and a narrow token in the cluster's Vault for vault", Reviewed: ids(StateSecretsVault)}),
		same("spec.exceptions[].control", Support{By: "hardening/guardrails.go: that control's guardrail warns instead of denying; verify reports its failures as excepted", Reviewed: ids(ExceptionsKnownControl)}),
		same("spec.exceptions[].justification", Support{By: "hardening/verify/verify.go: quoted in the excepted result and the guardrail's warning", Reviewed: ids(ExceptionsExplained)}),
		same("spec.exceptions[].expires", Support{By: "blueprints/exceptions.go: an expired exception weakens nothing (ActiveException)", Reviewed: ids(ExceptionsCurrent)}),
	}
}()

// FieldSupportOf returns the entry of a field path (list indices may be
// written as [N] or []).
func FieldSupportOf(path string) (FieldSupport, bool) {
	path = listIndex.ReplaceAllString(path, "[]")
	i := slices.IndexFunc(Fields, func(f FieldSupport) bool { return f.Path == path })
	if i < 0 {
		return FieldSupport{}, false
	}
	return Fields[i], true
}

// refuse reports that provider p cannot honour the field at path, with
// the table's reason and what to use instead after detail (which may say
// what the blueprint wrote).
func (v *validator) refuse(path, p, detail string) {
	fs, ok := FieldSupportOf(path)
	if !ok || fs.For(p).Refused == "" {
		panic("no refusal in the field table for " + path + " on " + p) // the table is tested against the validator
	}
	v.errorf(path, "%srefused on provider %s: %s", detail, p, fs.For(p).Refused)
}

// ProviderNotes says, for each field bp writes that changes nothing on
// provider p, why it is accepted anyway (Support.Inert); metadata is left
// out, it never renders anything anywhere.
func ProviderNotes(bp *Blueprint, p string) []string {
	var out []string
	for _, f := range Fields {
		s := f.For(p)
		if s.Inert == "" || strings.HasPrefix(f.Path, "metadata.") || !bp.HasField(f.Path) {
			continue
		}
		out = append(out, fmt.Sprintf("%s has no effect on %s: %s", f.Path, p, s.Inert))
	}
	return out
}
