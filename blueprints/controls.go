package blueprints

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Severity of a finding or control, from most to least severe.
type Severity int

// Severities. The zero value is invalid so a forgotten field is caught.
const (
	SeverityInfo Severity = iota + 1
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = map[Severity]string{
	SeverityInfo: "info", SeverityLow: "low", SeverityMedium: "medium", SeverityHigh: "high", SeverityCritical: "critical",
}

func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText encodes the severity by name (JSON, YAML).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name, so a report written as JSON
// (signed evidence embeds one) reads back.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses a severity name as used by --fail-on.
func ParseSeverity(s string) (Severity, error) {
	for k, v := range severityNames {
		if strings.EqualFold(v, s) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q: use critical, high, medium, low or info", s)
}

// Ref points at an external benchmark item. Our IDs are stable; a new
// benchmark revision only changes refs.
type Ref struct {
	Source string `json:"source"` // "CIS" (CIS Kubernetes Benchmark v1.10) or "NSA" (NSA/CISA Kubernetes Hardening Guide v1.2)
	ID     string `json:"id"`     // section, e.g. 1.2.1
}

func (r Ref) String() string { return r.Source + " " + r.ID }

// Where a control is enforced and proven.
const (
	ByReview    = 1 << iota // a static review rule reads the blueprint
	ByHardening             // hardening renders it into the cluster
	ByVerify                // a live verify check proves it on the cluster
)

// ControlID is a control's stable ID (SP-AREA-NNN). Code names a control
// only through the constants below, so each ID is spelled once, here.
type ControlID string

// The controls of the catalog, by area.
const (
	APIEndpointPrivate    ControlID = "SP-API-001"
	APIAllowedCIDRsNarrow ControlID = "SP-API-002"

	APIServerNoAnonymous          ControlID = "SP-APISRV-001"
	APIServerAuthorization        ControlID = "SP-APISRV-002"
	APIServerAdmission            ControlID = "SP-APISRV-003"
	ProfilingOff                  ControlID = "SP-APISRV-004"
	APIServerServiceAccountTokens ControlID = "SP-APISRV-005"
	APIServerTLS                  ControlID = "SP-APISRV-006"
	APIServerEtcdTLS              ControlID = "SP-APISRV-007"
	APIServerKubeletAndLimits     ControlID = "SP-APISRV-008"
	ControllerManagerHardened     ControlID = "SP-KCM-001"
	SchedulerLoopback             ControlID = "SP-SCHED-001"

	EtcdClientTLS ControlID = "SP-ETCD-001"
	EtcdPeerTLS   ControlID = "SP-ETCD-002"
	EtcdLoopback  ControlID = "SP-ETCD-003"

	CertificatesValid ControlID = "SP-CERT-001"
	FilesPrivate      ControlID = "SP-FILE-001"

	CiliumCNI          ControlID = "SP-NET-001"
	NetworkDefaultDeny ControlID = "SP-NET-002"
	NetworkAllowNarrow ControlID = "SP-NET-003"
	NetworkEnforced    ControlID = "SP-NET-004"
	NetworkEncrypted   ControlID = "SP-NET-005"

	EncryptionAtRestOn       ControlID = "SP-ENC-001"
	EncryptionProviderStrong ControlID = "SP-ENC-002"
	EncryptionCoversSecrets  ControlID = "SP-ENC-003"

	VaultSecrets              ControlID = "SP-VAULT-001"
	VaultRolesScoped          ControlID = "SP-VAULT-002"
	VaultEnvironmentsIsolated ControlID = "SP-VAULT-003"
	VaultWorkloadsLive        ControlID = "SP-VAULT-004"
	KMSPluginHealthy          ControlID = "SP-KMS-001"
	KMSCurrentKey             ControlID = "SP-KMS-002"
	KMSTokenNarrow            ControlID = "SP-KMS-003"

	AuditLogging   ControlID = "SP-AUDIT-001"
	AuditRetention ControlID = "SP-AUDIT-002"

	PodSecurityRestricted    ControlID = "SP-PSS-001"
	PodSecurityExemptionsFew ControlID = "SP-PSS-002"
	PodSecurityAuditWarn     ControlID = "SP-PSS-003"

	RBACAdminsNamed      ControlID = "SP-RBAC-001"
	RBACNoTokenAutomount ControlID = "SP-RBAC-002"

	KubeletAuth         ControlID = "SP-NODE-001"
	KubeletReadOnlyPort ControlID = "SP-NODE-002"
	KubeletHardened     ControlID = "SP-NODE-003"
	KubeletFilesPrivate ControlID = "SP-NODE-004"

	IsolationOwnCluster         ControlID = "SP-ISO-001"
	IsolationVault              ControlID = "SP-ISO-002"
	IsolationNetworks           ControlID = "SP-ISO-003"
	IsolationProdLabels         ControlID = "SP-ISO-004"
	IsolationForeignCredentials ControlID = "SP-ISO-005"
	IsolationPodReach           ControlID = "SP-ISO-006"

	GuardrailImages      ControlID = "SP-ADM-001"
	GuardrailPodSecurity ControlID = "SP-ADM-002"
	GuardrailRBAC        ControlID = "SP-ADM-003"
	GuardrailNetwork     ControlID = "SP-ADM-004"
	GuardrailsEnforced   ControlID = "SP-ADM-005"

	StateSecretsVault ControlID = "SP-STATE-001"

	ExceptionsCurrent      ControlID = "SP-EXC-001"
	ExceptionsExplained    ControlID = "SP-EXC-002"
	ExceptionsKnownControl ControlID = "SP-EXC-003"
	NoWeakeningChange      ControlID = "SP-CHG-001"
)

// Who the admission guardrails (SP-ADM-*) do not judge, and why: the API
// server and the control-plane components acting for Kubernetes itself,
// the controllers in kube-system (they create pods from templates that
// were judged when a person created them), kubelets (mirror pods of
// static pods) and secprov's own bootstrap identity (system:masters, held
// only by the super-admin credential secprov and kubeadm keep on the
// control plane). Blueprint admins are not exempt: they need an
// exception, which turns the guardrail into a warning.
var (
	GuardrailExemptUsers        = []string{"system:apiserver", "system:kube-controller-manager", "system:kube-scheduler"}
	GuardrailExemptUserPrefixes = []string{"system:serviceaccount:kube-system:", "system:node:"}
	GuardrailExemptGroups       = []string{"system:masters"}
)

// GuardrailExemptions says the lists in one sentence.
func GuardrailExemptions() string {
	return fmt.Sprintf("Admission guardrails (SP-ADM-*) do not judge requests of the users %s, of users starting with %s, or of the groups %s (the bootstrap identity); blueprint admins are judged and need an exception, which turns a guardrail into a warning.",
		strings.Join(GuardrailExemptUsers, ", "), strings.Join(GuardrailExemptUserPrefixes, " or "), strings.Join(GuardrailExemptGroups, ", "))
}

// Area is the middle part of the ID (API, ENC, …), which groups controls
// in reports; a malformed ID is its own area.
func (id ControlID) Area() string {
	parts := strings.Split(string(id), "-")
	if len(parts) != 3 {
		return string(id)
	}
	return parts[1]
}

// LoadErrorRule is no control: it is the rule ID review reports blueprint
// load errors under where every result needs a rule (SARIF).
const LoadErrorRule ControlID = "SP-LOAD-001"

// Control is one security measure with a stable ID shared by the review
// rule, the hardening that renders it and the verify check that proves it.
type Control struct {
	ID          ControlID
	Title       string
	Severity    Severity
	Refs        []Ref
	Rationale   string
	Remediation string
	// Field is the blueprint field that configures the control, if any.
	Field string
	// Where is a bit set of ByReview, ByHardening, ByVerify.
	Where int
	// Thresholds the control is judged by, if it has any.
	Thresholds Thresholds
}

// Thresholds are the numbers a control is judged by. Review rules and
// verify checks read them from the catalog, so the two cannot drift apart.
// Only the fields of the control's own measure are set.
type Thresholds struct {
	// MaxExemptNamespaces (SP-PSS-002) is the most Pod Security exemptions
	// allowed: kube-system plus a couple of infrastructure namespaces.
	MaxExemptNamespaces int
	// MinAuditAgeDays, MinAuditBackups and MinAuditSizeMB (SP-AUDIT-002)
	// are the least audit log retention, whatever a blueprint asks for.
	MinAuditAgeDays, MinAuditBackups, MinAuditSizeMB int
	// CertRenewWithin (SP-CERT-001): a certificate that expires sooner is
	// due for renewal; verify warns about it and secprov up renews it.
	CertRenewWithin time.Duration
}

// Thresholds returns the catalog's thresholds of the control (zero for an
// unknown ID).
func (id ControlID) Thresholds() Thresholds {
	c, _ := ControlByID(id)
	return c.Thresholds
}

// The catalog's thresholds, named once here because remediation texts
// quote them.
const (
	maxExemptNamespaces = 3
	minAuditAgeDays     = 30
	minAuditBackups     = 10
	minAuditSizeMB      = 100
	certRenewWithin     = 30 * 24 * time.Hour
)

func cis(ids ...string) []Ref { return refs("CIS", ids) }
func nsa(ids ...string) []Ref { return refs("NSA", ids) }
func refs(src string, ids []string) []Ref {
	out := make([]Ref, len(ids))
	for i, id := range ids {
		out[i] = Ref{Source: src, ID: id}
	}
	return out
}

const all = ByReview | ByHardening | ByVerify

// Controls is the catalog of every control, sorted by ID. CIS refs are to
// the CIS Kubernetes Benchmark v1.10; NSA refs to the NSA/CISA Kubernetes
// Hardening Guide v1.2 section titles.
var Controls = sortControls([]Control{
	// API server exposure.
	{ID: APIEndpointPrivate, Title: "API server endpoint is private", Severity: SeverityHigh, Where: all, Field: "spec.apiServer.endpoint",
		Refs:        append(nsa("Control plane: limit access"), cis("5.4.2")...),
		Rationale:   "A public API endpoint exposes authentication and every future API server CVE to the internet.",
		Remediation: "Set spec.apiServer.endpoint: private and reach the cluster through a bastion or VPN."},
	{ID: APIAllowedCIDRsNarrow, Title: "API server allowed CIDRs are not world-open", Severity: SeverityHigh, Where: all, Field: "spec.apiServer.allowedCIDRs",
		Refs:        nsa("Control plane: limit access"),
		Rationale:   "0.0.0.0/0 (or a huge range) in allowedCIDRs makes an endpoint reachable from anywhere; a list that no packet filter enforces admits everyone.",
		Remediation: "List only the office/VPN/CI networks that need the API, each as narrow as possible; secprov up (local) loads them as the nftables table inet secprov_<cluster>, which must not be deleted or widened by hand."},

	// Control-plane flags (not configurable: always rendered, always verified).
	{ID: APIServerNoAnonymous, Title: "Anonymous requests to the API server are refused", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.2.1"), Rationale: "Anonymous access lets anyone probe the API and reach endpoints bound to system:unauthenticated.",
		Remediation: "Run kube-apiserver with --anonymous-auth=false."},
	{ID: APIServerAuthorization, Title: "API server authorizes with Node and RBAC only", Severity: SeverityCritical, Where: ByHardening | ByVerify,
		Refs: cis("1.2.6", "1.2.7", "1.2.8"), Rationale: "AlwaysAllow grants every authenticated user everything.",
		Remediation: "Run kube-apiserver with --authorization-mode=Node,RBAC."},
	{ID: APIServerAdmission, Title: "Admission plugins harden the API", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs:        cis("1.2.9", "1.2.10", "1.2.13", "1.2.14", "1.2.3"),
		Rationale:   "NodeRestriction, NamespaceLifecycle, PodSecurity, ServiceAccount and DenyServiceExternalIPs block whole classes of abuse; AlwaysAdmit disables admission control.",
		Remediation: "Enable NodeRestriction,NamespaceLifecycle,ServiceAccount,PodSecurity,DenyServiceExternalIPs,EventRateLimit and never AlwaysAdmit."},
	{ID: ProfilingOff, Title: "Profiling endpoints are off", Severity: SeverityMedium, Where: ByHardening | ByVerify,
		Refs: cis("1.2.15", "1.3.2", "1.4.1"), Rationale: "pprof endpoints leak internals and cost CPU on demand.",
		Remediation: "Run kube-apiserver, kube-controller-manager and kube-scheduler with --profiling=false."},
	{ID: APIServerServiceAccountTokens, Title: "Service account tokens are validated and signed with a dedicated key", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.2.21", "1.2.22", "1.3.4"), Rationale: "Without lookup, tokens of deleted service accounts stay valid.",
		Remediation: "Set --service-account-lookup=true, --service-account-key-file, --service-account-signing-key-file and --service-account-issuer."},
	{ID: APIServerTLS, Title: "API server serves TLS 1.2+ with strong ciphers and client certificates", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.2.24", "1.2.25", "1.2.29"), Rationale: "Old TLS versions and weak ciphers are breakable.",
		Remediation: "Set --tls-cert-file, --tls-private-key-file, --client-ca-file, --tls-min-version=VersionTLS12 and --tls-cipher-suites to AEAD suites only."},
	{ID: APIServerEtcdTLS, Title: "API server talks to etcd over mutual TLS", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.2.23", "1.2.26"), Rationale: "etcd holds every secret; an unauthenticated link exposes them.",
		Remediation: "Set --etcd-certfile, --etcd-keyfile and --etcd-cafile, and https:// etcd servers."},
	{ID: APIServerKubeletAndLimits, Title: "API server authenticates kubelets and is protected against overload", Severity: SeverityMedium, Where: ByHardening | ByVerify,
		Refs: cis("1.2.2", "1.2.4", "1.2.5", "1.2.20"), Rationale: "Static token files cannot be rotated; unverified kubelets can be impersonated; unbounded requests exhaust the server.",
		Remediation: "Never set --token-auth-file; set --kubelet-client-certificate/--kubelet-client-key, --kubelet-certificate-authority and --request-timeout."},
	{ID: ControllerManagerHardened, Title: "Controller manager is hardened", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs:        cis("1.3.1", "1.3.3", "1.3.4", "1.3.5", "1.3.6", "1.3.7"),
		Rationale:   "Per-controller service-account credentials limit what a compromised controller can do; loopback binding hides its endpoints.",
		Remediation: "Run kube-controller-manager with --use-service-account-credentials=true, --service-account-private-key-file, --root-ca-file, --bind-address=127.0.0.1, --terminated-pod-gc-threshold and RotateKubeletServerCertificate."},
	{ID: SchedulerLoopback, Title: "Scheduler is bound to loopback", Severity: SeverityMedium, Where: ByHardening | ByVerify,
		Refs: cis("1.4.2"), Rationale: "The scheduler's endpoints need not be reachable from other hosts.",
		Remediation: "Run kube-scheduler with --bind-address=127.0.0.1."},
	{ID: EtcdClientTLS, Title: "etcd requires TLS client certificates", Severity: SeverityCritical, Where: ByHardening | ByVerify,
		Refs: cis("2.1", "2.2", "2.3", "2.7"), Rationale: "Anyone reaching an etcd without client-cert auth can read every secret.",
		Remediation: "Run etcd with --cert-file, --key-file, --client-cert-auth=true, --trusted-ca-file of a dedicated etcd CA and without --auto-tls."},
	{ID: EtcdPeerTLS, Title: "etcd peers use mutual TLS", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("2.4", "2.5", "2.6"), Rationale: "Peer traffic replicates every key.",
		Remediation: "Run etcd with --peer-cert-file, --peer-key-file, --peer-client-cert-auth=true and without --peer-auto-tls."},
	{ID: EtcdLoopback, Title: "etcd listens on loopback only", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: nsa("Control plane: etcd"), Rationale: "Only the API server needs etcd.",
		Remediation: "Bind --listen-client-urls and --listen-peer-urls to 127.0.0.1."},
	{ID: CertificatesValid, Title: "Certificates are valid, not expiring soon, with strong keys", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.1.19", "1.1.20", "1.1.21"), Rationale: "Expired certificates take the cluster down; weak keys can be forged.",
		Remediation: fmt.Sprintf("Run secprov up to renew certificates that expire within %d days; use ECDSA P-256+ or RSA 2048+ keys.", int(certRenewWithin.Hours()/24)),
		Thresholds:  Thresholds{CertRenewWithin: certRenewWithin}},
	{ID: FilesPrivate, Title: "Kubeconfigs, keys and state are private", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("1.1.1", "1.1.11", "1.1.13", "1.1.21"), Rationale: "A readable key or kubeconfig is a stolen identity.",
		Remediation: "chmod 0600 key and kubeconfig files and 0700 their directories."},

	// Nodes (providers with nodes: kind). The kubelet's running
	// configuration is read from the node itself (configz), not from the
	// file secprov wrote.
	{ID: KubeletAuth, Title: "Kubelets refuse anonymous requests and authorize with the API server", Severity: SeverityCritical, Where: ByHardening | ByVerify,
		Refs: cis("4.2.1", "4.2.2", "4.2.3"), Rationale: "An anonymous or always-allow kubelet API runs commands in any pod of the node.",
		Remediation: "KubeletConfiguration: authentication.anonymous.enabled false, authentication.webhook.enabled true, authentication.x509.clientCAFile set, authorization.mode Webhook."},
	{ID: KubeletReadOnlyPort, Title: "Kubelet read-only port is off", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("4.2.4"), Rationale: "The read-only port serves pod specs and node details without authentication.",
		Remediation: "KubeletConfiguration: readOnlyPort 0."},
	{ID: KubeletHardened, Title: "Kubelets rotate certificates, use strong TLS and limit idle streams", Severity: SeverityMedium, Where: ByHardening | ByVerify,
		Refs: cis("4.2.5", "4.2.6", "4.2.7", "4.2.8", "4.2.10", "4.2.12"), Rationale: "Long-lived certificates, weak ciphers and idle exec streams widen the window for a stolen credential.",
		Remediation: "KubeletConfiguration: rotateCertificates true, tlsCipherSuites strong only, streamingConnectionIdleTimeout non-zero, eventRecordQPS above 0, makeIPTablesUtilChains true, protectKernelDefaults true where the node allows."},
	{ID: KubeletFilesPrivate, Title: "Kubelet configuration and credentials on nodes are private", Severity: SeverityHigh, Where: ByHardening | ByVerify,
		Refs: cis("4.1.1", "4.1.5", "4.1.7", "4.1.9"), Rationale: "A writable kubelet config or readable kubeconfig on a node lets a local user take over the node's identity.",
		Remediation: "chmod 0600 /var/lib/kubelet/config.yaml and /etc/kubernetes/kubelet.conf; 0644 or stricter for the kubelet unit and the client CA."},

	// Network.
	// Verified where clusters have nodes (kind); the local provider has
	// none and so no CNI: verify skips it there, saying so.
	{ID: CiliumCNI, Title: "Cilium is the CNI and healthy on every node", Severity: SeverityHigh, Where: all, Field: "spec.network.cni",
		Refs: nsa("Network separation and hardening"), Rationale: "Without a policy-enforcing CNI, NetworkPolicies are ignored.",
		Remediation: "Set spec.network.cni: cilium."},
	{ID: NetworkDefaultDeny, Title: "Managed namespaces deny traffic by default", Severity: SeverityHigh, Where: all, Field: "spec.network.defaultDeny",
		Refs: append(cis("5.3.2"), nsa("Network policies")...), Rationale: "Without default deny, one compromised pod can reach every other pod.",
		Remediation: "Set spec.network.defaultDeny: true and allow what is needed with spec.network.allow."},
	{ID: NetworkAllowNarrow, Title: "Allow rules are narrow", Severity: SeverityMedium, Where: all, Field: "spec.network.allow",
		Refs: nsa("Network policies"), Rationale: "A rule from every namespace, from 0.0.0.0/0, to every namespace or to every port undoes default deny.",
		Remediation: "Name the source namespace (or a narrow CIDR), the destination namespace and the ports."},
	{ID: NetworkEnforced, Title: "Network policy is enforced for live traffic", Severity: SeverityHigh, Where: ByVerify, Field: "spec.network",
		Refs: append(cis("5.3.2"), nsa("Network policies")...), Rationale: "A policy object that the CNI does not enforce (no policy engine, a wrong selector, an allow wider than written) passes every object check and protects nothing.",
		Remediation: "Run secprov up to restore Cilium and the policies; the flow named in the report shows what got through or what was dropped."},
	{ID: NetworkEncrypted, Title: "Pod traffic between nodes is encrypted", Severity: SeverityMedium, Where: all, Field: "spec.network.transparentEncryption",
		Refs: nsa("Network separation and hardening"), Rationale: "Pod traffic between nodes crosses the node network in VXLAN, readable and forgeable by anything on that network, unless Cilium encrypts it.",
		Remediation: "Run the nodes on a kernel with WireGuard and leave spec.network.transparentEncryption unset (or set wireguard); where the nodes share one host and its kernel has none, add an exception saying so."},

	// Encryption at rest.
	{ID: EncryptionAtRestOn, Title: "Secrets are encrypted at rest", Severity: SeverityCritical, Where: all, Field: "spec.encryptionAtRest.provider",
		Refs: append(cis("1.2.27", "1.2.28"), nsa("Secrets")...), Rationale: "Without encryption, anyone with an etcd backup or disk reads every secret.",
		Remediation: "Set spec.encryptionAtRest.provider: vault-kms (or secretbox)."},
	{ID: EncryptionProviderStrong, Title: "Encryption at rest uses a strong provider", Severity: SeverityHigh, Where: ByReview | ByVerify, Field: "spec.encryptionAtRest.provider",
		Refs: cis("1.2.28"), Rationale: "aescbc is vulnerable to padding oracles; aesgcm needs a key rotation every 200k writes; a local key sits next to the data.",
		Remediation: "Use vault-kms (KMS v2 backed by Vault Transit), or secretbox."},
	{ID: EncryptionCoversSecrets, Title: "Secrets are among the encrypted resources", Severity: SeverityHigh, Where: ByReview | ByHardening | ByVerify, Field: "spec.encryptionAtRest.resources",
		Refs: cis("1.2.28"), Rationale: "Encrypting other resources but not secrets misses the point.",
		Remediation: "Include secrets in spec.encryptionAtRest.resources."},

	// Vault.
	{ID: VaultSecrets, Title: "Workload secrets come from Vault", Severity: SeverityHigh, Where: all, Field: "spec.vault.enabled",
		Refs: append(cis("5.4.2"), nsa("Secrets")...), Rationale: "Kubernetes Secrets are only base64 in the API; an external secret store adds auditing, leasing and rotation.",
		Remediation: "Set spec.vault.enabled: true (the default); secprov configures Kubernetes auth and one role per spec.vault.namespaces entry."},
	{ID: VaultRolesScoped, Title: "Vault roles are read-only and scoped to their namespace", Severity: SeverityHigh, Where: ByHardening | ByVerify, Field: "spec.vault.namespaces",
		Refs: nsa("Authentication and authorization"), Rationale: "A namespace that can read another namespace's paths, write, or log in with someone else's role turns one compromised pod into many secrets.",
		Remediation: "Run secprov up to put the roles and policies back; grant paths only through spec.vault.namespaces."},
	{ID: VaultEnvironmentsIsolated, Title: "Environments are isolated inside Vault", Severity: SeverityCritical, Where: ByHardening | ByVerify, Field: "spec.vault",
		Refs: nsa("Secrets"), Rationale: "If a test workload or test's KMS token can use prod's key or read prod's KV mount, separate clusters protect nothing.",
		Remediation: "Remove the grant on the other environment's mount or key from this cluster's Vault policies (secprov up rewrites them)."},
	{ID: VaultWorkloadsLive, Title: "Pods of listed namespaces read their Vault paths; other pods cannot reach Vault", Severity: SeverityHigh, Where: ByVerify, Field: "spec.vault.namespaces",
		Refs: nsa("Secrets"), Rationale: "Roles and policies that exist prove nothing if a workload cannot reach Vault, or if any pod can: the path from a pod through network policy to a login and a read is what workloads depend on.",
		Remediation: "Run secprov up to restore the secprov-allow-vault policy, the secprov-vault ConfigMap and the Vault relay; check secprov status for the vault-relay process."},
	{ID: KMSPluginHealthy, Title: "The KMS v2 plugin is healthy and serves the API server", Severity: SeverityCritical, Where: ByHardening | ByVerify, Field: "spec.encryptionAtRest.provider",
		Refs: cis("1.2.27"), Rationale: "With the plugin down the API server cannot create new data keys; once its cached key expires, writes of secrets fail.",
		Remediation: "Run secprov up to restart the plugin, and check that Vault is reachable (secprov vault status)."},
	{ID: KMSCurrentKey, Title: "Stored secrets use the current Vault key", Severity: SeverityMedium, Where: ByHardening | ByVerify, Field: "spec.encryptionAtRest.provider",
		Refs: cis("1.2.27"), Rationale: "After a key rotation, data still under old key versions keeps those versions in use and cannot be retired.",
		Remediation: "Run secprov rotate-keys --cluster NAME, which rewrites every encrypted object under the new key."},
	{ID: KMSTokenNarrow, Title: "The KMS plugin's Vault token can only use its own key", Severity: SeverityHigh, Where: ByHardening | ByVerify, Field: "spec.encryptionAtRest.provider",
		Refs: nsa("Secrets"), Rationale: "The token sits on the control plane's disk; anything more than encrypt and decrypt with one key is a standing privilege for whoever reads it.",
		Remediation: "Run secprov up to rewrite the KMS policy, or revoke the token (secprov up mints a new narrow one)."},

	// Audit.
	{ID: AuditLogging, Title: "API audit logging is on", Severity: SeverityHigh, Where: all, Field: "spec.audit.enabled",
		Refs: append(cis("1.2.16", "3.2.1"), nsa("Audit logging")...), Rationale: "Without audit logs, an intrusion cannot be reconstructed.",
		Remediation: "Set spec.audit.enabled: true."},
	{ID: AuditRetention, Title: "Audit logs are kept long enough", Severity: SeverityMedium, Where: all, Field: "spec.audit",
		Refs: cis("1.2.17", "1.2.18", "1.2.19"), Rationale: "Intrusions are often found weeks later.",
		Remediation: fmt.Sprintf("Keep at least %d days (maxAgeDays), %d backups (maxBackups) of at least %d MB (maxSizeMB).", minAuditAgeDays, minAuditBackups, minAuditSizeMB),
		Thresholds:  Thresholds{MinAuditAgeDays: minAuditAgeDays, MinAuditBackups: minAuditBackups, MinAuditSizeMB: minAuditSizeMB}},

	// Pod Security.
	{ID: PodSecurityRestricted, Title: "Pod Security enforces restricted", Severity: SeverityHigh, Where: all, Field: "spec.podSecurity.enforce",
		Refs: append(cis("5.2.2", "5.2.3", "5.2.4", "5.2.5"), nsa("Pod security")...), Rationale: "Weaker levels allow privileged, host-namespace or root containers.",
		Remediation: "Set spec.podSecurity.enforce: restricted."},
	{ID: PodSecurityExemptionsFew, Title: "Pod Security exemptions are few and not workload namespaces", Severity: SeverityMedium, Where: all, Field: "spec.podSecurity.exemptNamespaces",
		Refs: cis("5.2.1"), Rationale: "Every exempt namespace may run privileged pods.",
		Remediation: "Exempt only system namespaces (kube-system); never a managed workload namespace.",
		Thresholds:  Thresholds{MaxExemptNamespaces: maxExemptNamespaces}},
	{ID: PodSecurityAuditWarn, Title: "Pod Security audits and warns at restricted", Severity: SeverityLow, Where: all, Field: "spec.podSecurity",
		Refs: nsa("Pod security"), Rationale: "Audit and warn at restricted show what would break before enforcement tightens.",
		Remediation: "Set spec.podSecurity.audit and warn to restricted."},

	// RBAC.
	{ID: RBACAdminsNamed, Title: "Cluster admins are named, not wildcards", Severity: SeverityCritical, Where: all, Field: "spec.rbac.admins",
		Refs: append(cis("5.1.1", "5.1.3"), nsa("Authentication and authorization")...), Rationale: "Binding cluster-admin to system:authenticated or a wildcard gives everyone everything.",
		Remediation: "List specific groups or users in spec.rbac.admins; never system:authenticated, system:unauthenticated, system:serviceaccounts or '*'."},
	{ID: RBACNoTokenAutomount, Title: "Default service accounts do not automount tokens", Severity: SeverityMedium, Where: ByHardening | ByVerify,
		Refs: cis("5.1.5", "5.1.6"), Rationale: "Pods that need no API access should not carry a token.",
		Remediation: "Set automountServiceAccountToken: false on the default service account of every workload namespace."},

	// Isolation between environments.
	// A blueprint property; the live separation it leads to is proven by
	// SP-ISO-005.
	{ID: IsolationOwnCluster, Title: "Each environment has its own cluster", Severity: SeverityCritical, Where: ByReview, Field: "metadata.name",
		Refs: nsa("Network separation and hardening"), Rationale: "Two blueprints with one cluster name would make prod and test share a control plane.",
		Remediation: "Give every blueprint its own metadata.name."},
	{ID: IsolationVault, Title: "Environments do not share Vault mounts or keys", Severity: SeverityHigh, Where: ByReview, Field: "spec.vault",
		Refs: nsa("Secrets"), Rationale: "A shared KV mount, transit key or auth path lets test workloads read prod secrets.",
		Remediation: "Leave spec.vault.kvMount, transitKey and authPath empty (derived per cluster) or make them unique."},
	{ID: IsolationNetworks, Title: "Environments do not share networks", Severity: SeverityHigh, Where: all, Field: "spec.network",
		Refs: nsa("Network separation and hardening"), Rationale: "Overlapping pod or service CIDRs make routed prod/test connectivity and mistaken policies likely.",
		Remediation: "Give each environment disjoint podCIDR and serviceCIDR ranges; with nodes, keep each cluster's nodes on a network of its own (secprov up does)."},
	{ID: IsolationProdLabels, Title: "Non-production blueprints carry no production labels", Severity: SeverityHigh, Where: ByReview, Field: "metadata.labels",
		Refs: nsa("Network separation and hardening"), Rationale: "A test cluster labelled prod is picked up by prod automation, selectors and dashboards.",
		Remediation: "Make env/environment labels match spec.environment."},
	{ID: IsolationForeignCredentials, Title: "Another environment's credentials are rejected", Severity: SeverityCritical, Where: ByHardening | ByVerify,
		Refs: nsa("Authentication and authorization"), Rationale: "Separate clusters are only separate if their CAs are.",
		Remediation: "Give each cluster its own CA (secprov does); never copy PKI between clusters."},
	{ID: IsolationPodReach, Title: "Pods cannot reach another environment's nodes", Severity: SeverityCritical, Where: ByVerify, Field: "spec.network",
		Refs: nsa("Network separation and hardening"), Rationale: "Network policy only covers what a namespace's owner wrote; the networks between environments must keep out even a pod without any policy.",
		Remediation: "Keep each cluster on a network of its own (secprov up does for kind); remove routes or firewall exceptions joining prod's and test's networks."},

	// Admission guardrails: ValidatingAdmissionPolicies that keep a
	// cluster as secure as it was created. verify proves each by
	// behaviour (a dry-run of a forbidden change as an identity with just
	// the rights to make it) and judges every live object it covers.
	{ID: GuardrailImages, Title: "Images come only from allowed registries, pinned by digest where required", Severity: SeverityHigh, Where: all, Field: "spec.images",
		Refs: nsa("Pod security"), Rationale: "Any image from any registry by mutable tag can be swapped under a running cluster or carry anything; provenance is a top supply-chain risk.",
		Remediation: "List your registries in spec.images.allowedRegistries, keep requireDigest true for prod, and pin images @sha256:."},
	{ID: GuardrailPodSecurity, Where: ByHardening | ByVerify, Title: "No namespace weakens Pod Security below the cluster default", Severity: SeverityHigh, Field: "spec.podSecurity",
		Refs: append(cis("5.2.1"), nsa("Pod security")...), Rationale: "Anyone who may create or label namespaces can otherwise label one privileged and run privileged pods in it.",
		Remediation: "Remove the weaker pod-security.kubernetes.io labels (or pin -version to latest); exempt a system namespace through spec.podSecurity.exemptNamespaces."},
	{ID: GuardrailRBAC, Where: ByHardening | ByVerify, Title: "No new binding grants cluster-admin or escalation rights", Severity: SeverityCritical, Field: "spec.rbac",
		Refs: append(cis("5.1.1", "5.1.8"), nsa("Authentication and authorization")...), Rationale: "A binding to cluster-admin, or a role with */* or escalate/bind/impersonate, turns one deployer credential into the whole cluster.",
		Remediation: "Bind a narrow role instead; cluster administrators are named in spec.rbac.admins and bound by secprov."},
	{ID: GuardrailNetwork, Where: ByHardening | ByVerify, Title: "No NetworkPolicy opens a namespace to everything", Severity: SeverityHigh, Field: "spec.network",
		Refs: nsa("Network policies"), Rationale: "A tenant policy admitting every namespace, every pod of another namespace or 0.0.0.0/0 silently undoes default deny.",
		Remediation: "Name the peer namespace and pods with label selectors and narrow CIDRs; cluster-wide flows belong in spec.network.allow."},
	{ID: GuardrailsEnforced, Title: "Guardrails deny, not only warn", Severity: SeverityHigh, Where: ByReview, Field: "spec.guardrails.mode",
		Refs: nsa("Pod security"), Rationale: "In warn mode every guardrail admits what it exists to stop.",
		Remediation: "Set spec.guardrails.mode: deny and give the few objects that must differ a justified, expiring exception."},

	// State.
	{ID: StateSecretsVault, Title: "Production state secrets are encrypted by Vault, not only a passphrase", Severity: SeverityMedium, Where: ByReview, Field: "spec.state.secretsProvider",
		Refs: nsa("Secrets"), Rationale: "The state holds the cluster's secrets (Vault accessors, credentials of resources). A passphrase kept in a file on a laptop or in CI is one copy away from every secret in it, and losing it loses them; a Vault Transit key never leaves Vault, every decryption is audited and access is revoked centrally.",
		Remediation: "Set spec.state.secretsProvider: vault, then run secprov state rekey --cluster NAME --to vault for a cluster that exists."},

	// Exceptions and changes.
	{ID: ExceptionsCurrent, Title: "Exceptions have not expired", Severity: SeverityHigh, Where: ByReview, Field: "spec.exceptions",
		Remediation: "Fix the weakened control, or renew the exception with a new expires date and a fresh justification."},
	{ID: ExceptionsExplained, Title: "Exceptions are justified", Severity: SeverityMedium, Where: ByReview, Field: "spec.exceptions",
		Remediation: "Write why the control is weakened, who accepted the risk and what compensates for it."},
	{ID: ExceptionsKnownControl, Title: "Exceptions name a known control", Severity: SeverityLow, Where: ByReview, Field: "spec.exceptions",
		Remediation: "Use an ID from `secprov review --list-rules`."},
	{ID: NoWeakeningChange, Title: "Change does not weaken security versus the base revision", Severity: SeverityHigh, Where: ByReview,
		Remediation: "Revert the weakening change, or add a justified, expiring exception for the control it weakens."},
})

func sortControls(cs []Control) []Control {
	slices.SortFunc(cs, func(a, b Control) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return cs
}

// ControlByID returns the control with that ID.
func ControlByID(id ControlID) (Control, bool) {
	i, ok := slices.BinarySearchFunc(Controls, id, func(c Control, id ControlID) int { return strings.Compare(string(c.ID), string(id)) })
	if !ok {
		return Control{}, false
	}
	return Controls[i], true
}
