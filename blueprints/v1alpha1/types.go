// Package v1alpha1 holds the public, versioned blueprint types
// (apiVersion secprov.dev/v1alpha1, kind Blueprint). One blueprint describes
// exactly one cluster. Every field's default is the secure choice; see
// SetDefaults.
package v1alpha1

// Group, Version and the resulting APIVersion of these types.
const (
	Group      = "secprov.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	Kind       = "Blueprint"
)

// Blueprint declares one hardened cluster.
type Blueprint struct {
	APIVersion string     `yaml:"apiVersion" json:"apiVersion"`
	Kind       string     `yaml:"kind" json:"kind"`
	Metadata   ObjectMeta `yaml:"metadata" json:"metadata"`
	Spec       Spec       `yaml:"spec" json:"spec"`
}

// ObjectMeta names the blueprint. Name is the cluster name: an RFC 1123 DNS
// label (lowercase alphanumerics and '-', at most 63 characters).
type ObjectMeta struct {
	Name        string            `yaml:"name" json:"name"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Spec is the desired cluster.
type Spec struct {
	// Environment this cluster serves (prod, test, staging, …). Required.
	// Clusters of different environments never share a CA, key, Vault
	// mount, audit sink or network.
	Environment string `yaml:"environment" json:"environment"`
	// Provider that creates the cluster. Default: local.
	Provider Provider `yaml:"provider" json:"provider"`
	// Kubernetes version. Default: the pinned version secprov ships.
	Kubernetes Kubernetes `yaml:"kubernetes" json:"kubernetes"`
	// APIServer exposure.
	APIServer APIServer `yaml:"apiServer" json:"apiServer"`
	// Network: CNI, CIDRs and network policy.
	Network Network `yaml:"network" json:"network"`
	// Namespaces secprov creates and manages for workloads. Each gets Pod
	// Security labels, a default-deny NetworkPolicy and a default service
	// account that does not automount its token.
	Namespaces []Namespace `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
	// EncryptionAtRest of API resources in etcd.
	EncryptionAtRest EncryptionAtRest `yaml:"encryptionAtRest" json:"encryptionAtRest"`
	// Vault backing secrets and the KMS key.
	Vault Vault `yaml:"vault" json:"vault"`
	// Audit logging of the API server.
	Audit Audit `yaml:"audit" json:"audit"`
	// PodSecurity admission defaults for the whole cluster.
	PodSecurity PodSecurity `yaml:"podSecurity" json:"podSecurity"`
	// RBAC: who administers the cluster.
	RBAC RBAC `yaml:"rbac" json:"rbac"`
	// Images says where the cluster's container images may come from; an
	// admission guardrail enforces it on every pod and pod template.
	Images Images `yaml:"images" json:"images"`
	// Guardrails are admission policies that keep the cluster as secure as
	// it was created: image provenance, Pod Security labels, RBAC and
	// network policy.
	Guardrails Guardrails `yaml:"guardrails" json:"guardrails"`
	// State says how secprov keeps this cluster's state.
	State State `yaml:"state" json:"state"`
	// Exceptions weaken a control on purpose. Each names the review rule /
	// control ID, why, and when the exception expires. Review reports them.
	Exceptions []Exception `yaml:"exceptions,omitempty" json:"exceptions,omitempty"`
}

// Provider types.
const (
	ProviderLocal = "local"
	ProviderKind  = "kind"
)

// Provider selects what creates the cluster.
type Provider struct {
	// Type is local (embedded control plane without nodes, the default) or
	// kind (Docker-based cluster with nodes).
	Type string `yaml:"type" json:"type"`
	// Kind holds options for type kind.
	Kind *KindProvider `yaml:"kind,omitempty" json:"kind,omitempty"`
}

// KindProvider configures a kind cluster.
type KindProvider struct {
	// Workers is the number of worker nodes (0–20). Default 1.
	Workers *int `yaml:"workers,omitempty" json:"workers,omitempty"`
	// NodeImage overrides the node image (default: built by secprov for the
	// pinned Kubernetes version).
	NodeImage string `yaml:"nodeImage,omitempty" json:"nodeImage,omitempty"`
	// Images picks the image set: upstream (default: the pinned kind node
	// and Cilium images from their registries) or offline (the set
	// `secprov images build` made from pinned sources, for sites without a
	// registry).
	Images string `yaml:"images,omitempty" json:"images,omitempty"`
}

// Image sets of the kind provider.
const (
	KindImagesUpstream = "upstream"
	KindImagesOffline  = "offline"
)

// Kubernetes selects the version.
type Kubernetes struct {
	// Version like v1.37.2. Default: the pinned version.
	Version string `yaml:"version" json:"version"`
}

// API server endpoint exposure.
const (
	EndpointPrivate = "private"
	EndpointPublic  = "public"
)

// APIServer describes how the API server is reached.
type APIServer struct {
	// Endpoint is private (default: bound to loopback / private addresses
	// only) or public.
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// AllowedCIDRs narrows a public endpoint to these client networks (on
	// local, an nftables table on the host; loopback is always allowed).
	// Refused with a private endpoint, which listens on the private
	// address only, and on kind, which cannot enforce it.
	AllowedCIDRs []string `yaml:"allowedCIDRs,omitempty" json:"allowedCIDRs,omitempty"`
}

// CNI plugins.
const (
	CNICilium = "cilium"
	CNINone   = "none"
)

// Network configures pod networking and policy.
type Network struct {
	// CNI is cilium (default) or none.
	CNI string `yaml:"cni" json:"cni"`
	// DefaultDeny installs a deny-all ingress and egress NetworkPolicy
	// (allowing DNS egress) in every managed namespace. Default true.
	DefaultDeny *bool `yaml:"defaultDeny,omitempty" json:"defaultDeny,omitempty"`
	// PodCIDR for pods. Default: a /16 in 10.64.0.0/10 derived from the
	// cluster name.
	PodCIDR string `yaml:"podCIDR" json:"podCIDR"`
	// ServiceCIDR for services. Default: a /16 in 10.128.0.0/10 derived
	// from the cluster name.
	ServiceCIDR string `yaml:"serviceCIDR" json:"serviceCIDR"`
	// Allow lists the traffic permitted on top of default deny.
	Allow []AllowRule `yaml:"allow,omitempty" json:"allow,omitempty"`
	// TransparentEncryption encrypts pod traffic between nodes:
	// wireguard, ipsec or none. Default: the strongest mode the nodes'
	// kernel offers, resolved when the cluster is created (none where it
	// has no WireGuard, and verify then fails SP-NET-005 unless an
	// exception says why).
	TransparentEncryption string `yaml:"transparentEncryption,omitempty" json:"transparentEncryption,omitempty"`
}

// Transparent encryption modes for spec.network.transparentEncryption.
const (
	TransparentEncryptionWireGuard = "wireguard"
	TransparentEncryptionIPsec     = "ipsec"
	TransparentEncryptionNone      = "none"
)

// AllowRule permits traffic from a source to a namespace.
type AllowRule struct {
	From Peer        `yaml:"from" json:"from"`
	To   Destination `yaml:"to" json:"to"`
}

// Peer is a traffic source: a namespace (optionally narrowed by pod
// labels) or a CIDR. "*" as namespace means every namespace.
type Peer struct {
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	PodSelector map[string]string `yaml:"podSelector,omitempty" json:"podSelector,omitempty"`
	CIDR        string            `yaml:"cidr,omitempty" json:"cidr,omitempty"`
}

// Destination is where allowed traffic goes: a namespace (optionally
// narrowed by pod labels), or a CIDR outside the cluster (egress from
// from.namespace, e.g. to an external Vault). Empty Ports means all ports.
type Destination struct {
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	PodSelector map[string]string `yaml:"podSelector,omitempty" json:"podSelector,omitempty"`
	CIDR        string            `yaml:"cidr,omitempty" json:"cidr,omitempty"`
	Ports       []int             `yaml:"ports,omitempty" json:"ports,omitempty"`
	// Protocol is TCP (default) or UDP or SCTP.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

// Namespace is a workload namespace secprov manages.
type Namespace struct {
	Name   string            `yaml:"name" json:"name"`
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Encryption providers for spec.encryptionAtRest.provider, strongest first;
// blueprints.EncryptionProviders ranks and judges them.
const (
	EncryptionVaultKMS  = "vault-kms" // KMS v2 backed by Vault Transit
	EncryptionSecretbox = "secretbox" // XSalsa20-Poly1305, key on the control plane
	EncryptionAESGCM    = "aesgcm"    // needs rotation every 200k writes
	EncryptionAESCBC    = "aescbc"    // padding-oracle prone; not recommended
	EncryptionNone      = "none"      // identity: plaintext in etcd
)

// EncryptionAtRest configures the API server's EncryptionConfiguration.
type EncryptionAtRest struct {
	// Provider is vault-kms (default), secretbox, aesgcm, aescbc or none.
	Provider string `yaml:"provider" json:"provider"`
	// Resources to encrypt, as resource or resource.group. Default [secrets].
	Resources []string `yaml:"resources,omitempty" json:"resources,omitempty"`
}

// Vault configures the Vault that backs secrets and the KMS key. Empty
// fields are derived per cluster so two clusters never share them.
type Vault struct {
	// Enabled: whether workloads get their secrets from Vault. Default true.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Address of an existing Vault (https://…). Empty: secprov runs one
	// local Vault for the clusters it manages (per-cluster mounts, keys,
	// roles and tokens inside it).
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// TransitMount is the transit secrets engine mount. Default:
	// transit-<cluster>, so `down` can remove it with the cluster.
	TransitMount string `yaml:"transitMount,omitempty" json:"transitMount,omitempty"`
	// TransitKey is the KMS key name. Default: kms-<cluster>.
	TransitKey string `yaml:"transitKey,omitempty" json:"transitKey,omitempty"`
	// KVMount is the kv-v2 mount for workload secrets. Default: kv-<cluster>.
	KVMount string `yaml:"kvMount,omitempty" json:"kvMount,omitempty"`
	// AuthPath is the Kubernetes auth mount. Default: kubernetes-<cluster>.
	AuthPath string `yaml:"authPath,omitempty" json:"authPath,omitempty"`
	// Namespaces grants a namespace's workloads read access to KV paths.
	Namespaces []VaultNamespace `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
}

// VaultNamespace maps a Kubernetes namespace to the KV paths it may read.
type VaultNamespace struct {
	Namespace string   `yaml:"namespace" json:"namespace"`
	Paths     []string `yaml:"paths" json:"paths"`
}

// Audit policies.
const AuditPolicyDefault = "default"

// Audit configures API server audit logging and its retention.
type Audit struct {
	// Enabled: default true.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Policy is the audit policy preset: default (metadata for secrets and
	// tokens so no secret bodies are logged, full bodies for RBAC changes
	// and exec, nothing for health checks).
	Policy string `yaml:"policy" json:"policy"`
	// MaxAgeDays to keep rotated logs. Default 30 (CIS 1.2.17).
	MaxAgeDays *int `yaml:"maxAgeDays,omitempty" json:"maxAgeDays,omitempty"`
	// MaxBackups rotated files to keep. Default 10 (CIS 1.2.18).
	MaxBackups *int `yaml:"maxBackups,omitempty" json:"maxBackups,omitempty"`
	// MaxSizeMB before rotation. Default 100 (CIS 1.2.19).
	MaxSizeMB *int `yaml:"maxSizeMB,omitempty" json:"maxSizeMB,omitempty"`
}

// Pod Security levels, strongest first.
const (
	PSSRestricted = "restricted"
	PSSBaseline   = "baseline"
	PSSPrivileged = "privileged"
)

// PodSecurity sets cluster-wide Pod Security admission defaults.
type PodSecurity struct {
	// Enforce level: restricted (default), baseline or privileged.
	Enforce string `yaml:"enforce" json:"enforce"`
	// Audit and Warn levels. Default: restricted.
	Audit string `yaml:"audit" json:"audit"`
	Warn  string `yaml:"warn" json:"warn"`
	// ExemptNamespaces are not checked. Default [kube-system].
	ExemptNamespaces []string `yaml:"exemptNamespaces,omitempty" json:"exemptNamespaces,omitempty"`
}

// RBAC configures cluster administration.
type RBAC struct {
	// Admins bound to cluster-admin, as "group:NAME", "user:NAME" or
	// "serviceaccount:NAMESPACE:NAME".
	Admins []string `yaml:"admins,omitempty" json:"admins,omitempty"`
}

// Exception deliberately weakens one control.
type Exception struct {
	// Control is the review rule / control ID, e.g. SP-API-001.
	Control string `yaml:"control" json:"control"`
	// Justification says why; review reports it.
	Justification string `yaml:"justification" json:"justification"`
	// Expires is the date (YYYY-MM-DD) after which the exception is void.
	Expires string `yaml:"expires" json:"expires"`
}

// Images constrains the container images of every Pod and pod template
// (containers, initContainers, ephemeralContainers) through an admission
// guardrail (SP-ADM-001). An image without a registry host (nginx,
// library/nginx) is judged as the container runtime resolves it:
// docker.io/library/nginx.
type Images struct {
	// AllowedRegistries lists where images may come from: a registry host
	// (with an optional :port) and an optional path prefix.
	// registry.example.com/team admits registry.example.com/team/app, not
	// registry.example.com/other/app nor registry.example.com.evil.io/team.
	// secprov adds the registries of the images it runs itself. Empty: any
	// registry.
	AllowedRegistries []string `yaml:"allowedRegistries,omitempty" json:"allowedRegistries,omitempty"`
	// RequireDigest admits only images pinned by digest (@sha256:…).
	// Default true for environment prod, false elsewhere.
	RequireDigest *bool `yaml:"requireDigest,omitempty" json:"requireDigest,omitempty"`
}

// State secrets providers.
const (
	StateSecretsPassphrase = "passphrase"
	StateSecretsVault      = "vault"
)

// State configures the cluster's state (the Pulumi stack secprov keeps
// it in; the backend itself is chosen per run with --state, since one
// backend holds many clusters).
type State struct {
	// SecretsProvider encrypts the secrets in the cluster's state:
	// passphrase (default: SECPROV_PASSPHRASE, or one generated and kept
	// 0600 in the state directory) or vault (a Transit key of this cluster
	// in the cluster's Vault, used through a token that can only encrypt
	// and decrypt with it). Move an existing cluster between them with
	// secprov state rekey.
	SecretsProvider string `yaml:"secretsProvider" json:"secretsProvider"`
}

// Guardrail modes.
const (
	GuardrailsDeny = "deny"
	GuardrailsWarn = "warn"
)

// Guardrails configures the admission guardrails.
type Guardrails struct {
	// Mode is deny (default: a forbidden change is refused) or warn (it is
	// admitted with a warning and an audit annotation). An exception for
	// one guardrail's control turns that guardrail alone to warn.
	Mode string `yaml:"mode" json:"mode"`
}
