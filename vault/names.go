package vault

import (
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Names are the Vault objects of one cluster. Everything is derived from
// the cluster name and its defaulted blueprint, so prod and test never
// share a mount, key, policy, role or token.
type Names struct {
	Cluster      string
	TransitMount string // transit secrets engine mount
	TransitKey   string // the KMS key
	KVMount      string // kv-v2 mount for workload secrets
	AuthPath     string // Kubernetes auth mount (without auth/)
	Namespaces   []v1alpha1.VaultNamespace
	// SigningKey is the environment's evidence signing key (ecdsa-p256)
	// in TransitMount: one per environment, never the KMS key.
	SigningKey string
}

// NamesFor returns the Vault names of a cluster from its defaulted spec.
func NamesFor(cluster string, spec v1alpha1.Spec) Names {
	v := spec.Vault
	return Names{Cluster: cluster, TransitMount: v.TransitMount, TransitKey: v.TransitKey,
		KVMount: v.KVMount, AuthPath: v.AuthPath, Namespaces: v.Namespaces, SigningKey: SigningKeyName(spec.Environment)}
}

// SigningKeyName is the evidence signing key of an environment.
func SigningKeyName(environment string) string { return "evidence-" + environment }

// EvidencePolicy is the policy of the evidence signer's token: sign with
// the environment's signing key, nothing else.
func (n Names) EvidencePolicy() string { return "secprov-" + n.Cluster + "-evidence" }

// EvidenceTokenRole mints the evidence signer's token, limited to
// EvidencePolicy.
func (n Names) EvidenceTokenRole() string { return "secprov-" + n.Cluster + "-evidence" }

// KMSPolicy is the policy of the KMS plugin's token: encrypt and decrypt
// with the cluster's transit key, read its metadata, nothing else.
func (n Names) KMSPolicy() string { return "secprov-" + n.Cluster + "-kms" }

// KMSTokenRole is the token role that mints the KMS plugin's periodic
// orphan token, limited to KMSPolicy.
func (n Names) KMSTokenRole() string { return "secprov-" + n.Cluster + "-kms" }

// NamespacePolicy is the read-only policy of one namespace's KV paths.
func (n Names) NamespacePolicy(namespace string) string {
	return "secprov-" + n.Cluster + "-ns-" + namespace
}

// NamespaceRole is the Kubernetes auth role of one namespace.
func (n Names) NamespaceRole(namespace string) string { return namespace }

// Token reviewer: the service account Vault uses to validate workload
// tokens with the TokenReview API. It is bound to system:auth-delegator
// and nothing else; Vault gets a TokenRequest token of it.
const (
	ReviewerNamespace      = "kube-system"
	ReviewerServiceAccount = "secprov-vault-auth"
)
