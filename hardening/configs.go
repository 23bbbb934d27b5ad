package hardening

import (
	"encoding/base64"
	"fmt"

	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// EncryptionKey is one data-encryption key of an encryption provider whose
// key sits on the control plane (secretbox, aesgcm, aescbc). The first key
// encrypts; the others only decrypt, which is how rotation works without
// downtime.
type EncryptionKey struct {
	Name   string
	Secret Secret // 32 random bytes
}

// KMS names a KMS v2 plugin socket for the vault-kms encryption provider.
type KMS struct {
	Name     string // KMS provider name, shows in the raw etcd prefix k8s:enc:kms:v2:NAME:
	Endpoint string // unix:///path/to/socket
}

// EncryptionPrefix is the raw etcd value prefix each encryption provider
// writes, used by verify to prove a value is encrypted.
func EncryptionPrefix(provider, kmsName string) string {
	switch provider {
	case v1alpha1.EncryptionSecretbox:
		return "k8s:enc:secretbox:v1:"
	case v1alpha1.EncryptionAESGCM:
		return "k8s:enc:aesgcm:v1:"
	case v1alpha1.EncryptionAESCBC:
		return "k8s:enc:aescbc:v1:"
	case v1alpha1.EncryptionVaultKMS:
		return "k8s:enc:kms:v2:" + kmsName + ":"
	}
	return ""
}

type encryptionConfiguration struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Resources  []encryptionResource `json:"resources"`
}

type encryptionResource struct {
	Resources []string             `json:"resources"`
	Providers []encryptionProvider `json:"providers"`
}

type encryptionProvider struct {
	Secretbox *keyList     `json:"secretbox,omitempty"`
	AESGCM    *keyList     `json:"aesgcm,omitempty"`
	AESCBC    *keyList     `json:"aescbc,omitempty"`
	KMS       *kmsProvider `json:"kms,omitempty"`
	Identity  *struct{}    `json:"identity,omitempty"`
}

type keyList struct {
	Keys []namedKey `json:"keys"`
}

type namedKey struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

type kmsProvider struct {
	APIVersion string `json:"apiVersion"`
	Name       string `json:"name"`
	Endpoint   string `json:"endpoint"`
	Timeout    string `json:"timeout"`
}

// EncryptionConfig renders the API server's EncryptionConfiguration
// (SP-ENC-001, SP-ENC-003) for the given encryption provider. The identity
// provider comes last so data written before encryption was enabled stays
// readable until it is rewritten. The result contains key material: write
// it 0600.
func EncryptionConfig(spec v1alpha1.Spec, provider string, keys []EncryptionKey, kms *KMS) ([]byte, error) {
	var p encryptionProvider
	switch provider {
	case v1alpha1.EncryptionSecretbox, v1alpha1.EncryptionAESGCM, v1alpha1.EncryptionAESCBC:
		if len(keys) == 0 {
			return nil, fmt.Errorf("encryption provider %s needs at least one key", provider)
		}
		kl := &keyList{}
		for _, k := range keys {
			if len(k.Secret) != 32 {
				return nil, fmt.Errorf("encryption key %q has %d bytes, want 32", k.Name, len(k.Secret))
			}
			kl.Keys = append(kl.Keys, namedKey{Name: k.Name, Secret: base64.StdEncoding.EncodeToString(k.Secret.Reveal())})
		}
		switch provider {
		case v1alpha1.EncryptionSecretbox:
			p.Secretbox = kl
		case v1alpha1.EncryptionAESGCM:
			p.AESGCM = kl
		default:
			p.AESCBC = kl
		}
	case v1alpha1.EncryptionVaultKMS:
		if kms == nil {
			return nil, fmt.Errorf("encryption provider vault-kms needs a KMS plugin endpoint")
		}
		p.KMS = &kmsProvider{APIVersion: "v2", Name: kms.Name, Endpoint: kms.Endpoint, Timeout: "3s"}
		if len(keys) > 0 {
			// Keys of an earlier encryption provider with keys on the
			// control plane (a cluster moved from secretbox to vault-kms)
			// stay as a read-only provider so data written before the move
			// remains readable until rewritten.
			legacy, err := EncryptionConfig(spec, v1alpha1.EncryptionSecretbox, keys, nil)
			if err != nil {
				return nil, err
			}
			var old encryptionConfiguration
			if err := yaml.Unmarshal(legacy, &old); err != nil {
				return nil, err
			}
			return marshalEncryption(spec, p, old.Resources[0].Providers[0])
		}
	case v1alpha1.EncryptionNone:
		return nil, fmt.Errorf("encryption provider none needs no EncryptionConfiguration")
	default:
		return nil, fmt.Errorf("unknown encryption provider %q", provider)
	}
	return marshalEncryption(spec, p)
}

// marshalEncryption writes the providers in order (the first encrypts,
// all decrypt), then identity.
func marshalEncryption(spec v1alpha1.Spec, providers ...encryptionProvider) ([]byte, error) {
	cfg := encryptionConfiguration{
		APIVersion: "apiserver.config.k8s.io/v1",
		Kind:       "EncryptionConfiguration",
		Resources: []encryptionResource{{
			Resources: spec.EncryptionAtRest.Resources,
			Providers: append(providers, encryptionProvider{Identity: &struct{}{}}),
		}},
	}
	return yaml.Marshal(cfg)
}

type auditPolicy struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	OmitStages []string    `json:"omitStages"`
	Rules      []auditRule `json:"rules"`
}

type auditRule struct {
	Level           string       `json:"level"`
	Users           []string     `json:"users,omitempty"`
	Verbs           []string     `json:"verbs,omitempty"`
	Resources       []auditGroup `json:"resources,omitempty"`
	NonResourceURLs []string     `json:"nonResourceURLs,omitempty"`
}

type auditGroup struct {
	Group     string   `json:"group"`
	Resources []string `json:"resources,omitempty"`
}

// AuditPolicy renders the default audit policy (SP-AUDIT-001). Order
// matters: the first matching rule wins.
//   - None for health, version and metrics probes and leader-election
//     lease renewals: noise that would bury real events.
//   - Metadata for secrets, configmaps and token reviews/requests: who did
//     what, never the bodies, so no secret or token lands in the log.
//   - RequestResponse for RBAC changes and exec/attach/port-forward:
//     privilege changes and interactive access are what investigations need.
//   - Metadata for everything else.
func AuditPolicy(spec v1alpha1.Spec) ([]byte, error) {
	if spec.Audit.Policy != v1alpha1.AuditPolicyDefault {
		return nil, fmt.Errorf("unknown audit policy %q", spec.Audit.Policy)
	}
	p := auditPolicy{
		APIVersion: "audit.k8s.io/v1",
		Kind:       "Policy",
		OmitStages: []string{"RequestReceived"},
		Rules: []auditRule{
			{Level: "None", NonResourceURLs: []string{"/healthz*", "/readyz*", "/livez*", "/version", "/metrics"}},
			{Level: "None", Verbs: []string{"get", "update", "watch"}, Resources: []auditGroup{{Group: "coordination.k8s.io", Resources: []string{"leases"}}}},
			{Level: "None", Users: []string{"system:kube-proxy"}, Verbs: []string{"watch"}},
			{Level: "Metadata", Resources: []auditGroup{
				{Group: "", Resources: []string{"secrets", "configmaps", "serviceaccounts/token"}},
				{Group: "authentication.k8s.io", Resources: []string{"tokenreviews"}},
			}},
			{Level: "RequestResponse", Resources: []auditGroup{{Group: "rbac.authorization.k8s.io"}}},
			{Level: "RequestResponse", Resources: []auditGroup{{Group: "", Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}}}},
			{Level: "Metadata"},
		},
	}
	return yaml.Marshal(p)
}

type admissionConfiguration struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Plugins    []admissionPlugin `json:"plugins"`
}

type admissionPlugin struct {
	Name          string `json:"name"`
	Configuration any    `json:"configuration"`
}

type podSecurityConfiguration struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Defaults   map[string]string `json:"defaults"`
	Exemptions struct {
		Usernames      []string `json:"usernames"`
		RuntimeClasses []string `json:"runtimeClasses"`
		Namespaces     []string `json:"namespaces"`
	} `json:"exemptions"`
}

type eventRateLimit struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Limits     []eventRateLimitL `json:"limits"`
}

type eventRateLimitL struct {
	Type  string `json:"type"`
	QPS   int    `json:"qps"`
	Burst int    `json:"burst"`
}

// AdmissionConfig renders the API server's AdmissionConfiguration: Pod
// Security defaults and exemptions for the whole cluster (SP-PSS-001..003)
// and EventRateLimit (SP-APISRV-003).
func AdmissionConfig(spec v1alpha1.Spec) ([]byte, error) {
	ps := podSecurityConfiguration{
		APIVersion: "pod-security.admission.config.k8s.io/v1",
		Kind:       "PodSecurityConfiguration",
		Defaults: map[string]string{
			"enforce": spec.PodSecurity.Enforce, "enforce-version": "latest",
			"audit": spec.PodSecurity.Audit, "audit-version": "latest",
			"warn": spec.PodSecurity.Warn, "warn-version": "latest",
		},
	}
	ps.Exemptions.Usernames = []string{}
	ps.Exemptions.RuntimeClasses = []string{}
	ps.Exemptions.Namespaces = append([]string{}, spec.PodSecurity.ExemptNamespaces...)
	erl := eventRateLimit{
		APIVersion: "eventratelimit.admission.k8s.io/v1alpha1",
		Kind:       "Configuration",
		Limits: []eventRateLimitL{
			{Type: "Server", QPS: 50, Burst: 100},
			{Type: "Namespace", QPS: 10, Burst: 50},
		},
	}
	return yaml.Marshal(admissionConfiguration{
		APIVersion: "apiserver.config.k8s.io/v1",
		Kind:       "AdmissionConfiguration",
		Plugins: []admissionPlugin{
			{Name: "PodSecurity", Configuration: ps},
			{Name: "EventRateLimit", Configuration: erl},
		},
	})
}
