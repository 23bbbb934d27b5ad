package v1alpha1

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// KubernetesVersion is the pinned Kubernetes version secprov provisions.
const KubernetesVersion = "v1.37.2"

// Default values, all the secure choice.
const (
	DefaultAuditMaxAgeDays   = 30
	DefaultAuditMaxBackups   = 10
	DefaultAuditMaxSizeMB    = 100
	DefaultKindWorkers       = 1
	DefaultNetworkProtocol   = "TCP"
	DefaultEncryptedResource = "secrets"
)

// SetDefaults fills every unset field with its secure default. It is
// idempotent and never overrides what the user wrote.
func SetDefaults(b *Blueprint) {
	s := &b.Spec
	name := b.Metadata.Name
	setString(&s.Provider.Type, ProviderLocal)
	if s.Provider.Type == ProviderKind {
		if s.Provider.Kind == nil {
			s.Provider.Kind = &KindProvider{}
		}
		setInt(&s.Provider.Kind.Workers, DefaultKindWorkers)
	}
	setString(&s.Kubernetes.Version, KubernetesVersion)
	setString(&s.APIServer.Endpoint, EndpointPrivate)

	setString(&s.Network.CNI, CNICilium)
	setBool(&s.Network.DefaultDeny, true)
	pod, svc := DerivedCIDRs(name)
	setString(&s.Network.PodCIDR, pod)
	setString(&s.Network.ServiceCIDR, svc)
	for i := range s.Network.Allow {
		if len(s.Network.Allow[i].To.Ports) > 0 {
			setString(&s.Network.Allow[i].To.Protocol, DefaultNetworkProtocol)
		}
	}

	setString(&s.EncryptionAtRest.Provider, EncryptionVaultKMS)
	if len(s.EncryptionAtRest.Resources) == 0 {
		s.EncryptionAtRest.Resources = []string{DefaultEncryptedResource}
	}

	setBool(&s.Vault.Enabled, true)
	setString(&s.Vault.TransitMount, "transit-"+name)
	setString(&s.Vault.TransitKey, "kms-"+name)
	setString(&s.Vault.KVMount, "kv-"+name)
	setString(&s.Vault.AuthPath, "kubernetes-"+name)

	setBool(&s.Audit.Enabled, true)
	setString(&s.Audit.Policy, AuditPolicyDefault)
	setInt(&s.Audit.MaxAgeDays, DefaultAuditMaxAgeDays)
	setInt(&s.Audit.MaxBackups, DefaultAuditMaxBackups)
	setInt(&s.Audit.MaxSizeMB, DefaultAuditMaxSizeMB)

	setString(&s.PodSecurity.Enforce, PSSRestricted)
	setString(&s.PodSecurity.Audit, PSSRestricted)
	setString(&s.PodSecurity.Warn, PSSRestricted)
	if s.PodSecurity.ExemptNamespaces == nil {
		s.PodSecurity.ExemptNamespaces = []string{"kube-system"}
	}

	setBool(&s.Images.RequireDigest, IsProd(s.Environment))
	setString(&s.Guardrails.Mode, GuardrailsDeny)
	setString(&s.State.SecretsProvider, StateSecretsPassphrase)
}

// IsProd reports whether env names production (prod or production, in
// any case), whose defaults are the strictest (images pinned by digest).
func IsProd(env string) bool {
	return strings.EqualFold(env, "prod") || strings.EqualFold(env, "production")
}

// DerivedCIDRs returns the default pod and service CIDRs for a cluster
// name: a /16 in 10.64.0.0/10 and one in 10.128.0.0/10, picked by hash so
// that clusters with different names usually differ. Review flags the rare
// collision between environments.
func DerivedCIDRs(name string) (pod, svc string) {
	h := fnv.New32a()
	h.Write([]byte(name))
	n := h.Sum32() % 64
	return fmt.Sprintf("10.%d.0.0/16", 64+n), fmt.Sprintf("10.%d.0.0/16", 128+n)
}

// DefaultDenyEnabled reports the effective network.defaultDeny.
func (n Network) DefaultDenyEnabled() bool { return n.DefaultDeny == nil || *n.DefaultDeny }

// IsEnabled reports the effective vault.enabled.
func (v Vault) IsEnabled() bool { return v.Enabled == nil || *v.Enabled }

// IsEnabled reports the effective audit.enabled.
func (a Audit) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// DigestRequired reports whether images must be pinned by digest; unset
// means the environment's default.
func (s Spec) DigestRequired() bool {
	if s.Images.RequireDigest != nil {
		return *s.Images.RequireDigest
	}
	return IsProd(s.Environment)
}

// Int returns *p, or def when p is nil.
func Int(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setBool(p **bool, v bool) {
	if *p == nil {
		*p = &v
	}
}

func setInt(p **int, v int) {
	if *p == nil {
		*p = &v
	}
}
