package vaultres

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/vault"
)

// Cluster is what one cluster's Vault resources need.
type Cluster struct {
	Access vault.Access
	Names  vault.Names
	// Kubeconfig of the cluster admin (absolute path).
	Kubeconfig string
	// TokenFile is where the KMS plugin's token is written (absolute path,
	// in a 0700 directory).
	TokenFile string
	// EvidenceTokenFile is where the evidence signer's token is written.
	EvidenceTokenFile string
}

// Resources are the declared Vault resources of one cluster.
type Resources struct {
	Transit, KV, KubernetesAuth, KMSToken, EvidenceKey *engine.Res
	NamespaceRoles                                     map[string]*engine.Res // by namespace
}

// DeclareKMS declares what the KMS plugin needs: the transit key, then the
// plugin's token. A provider declares them before the API server, which
// cannot start without its KMS plugin. opts apply to both.
func DeclareKMS(ctx *pulumi.Context, c Cluster, r *Resources, opts ...pulumi.ResourceOption) error {
	n := c.Names
	var err error
	if r.Transit, err = engine.Resource(ctx, TransitType, "vault-transit",
		TransitInputs{Access: c.Access, Mount: n.TransitMount, Key: n.TransitKey}, opts...); err != nil {
		return err
	}
	r.KMSToken, err = engine.Resource(ctx, KMSTokenType, "vault-kms-token", KMSTokenInputs{
		Access: c.Access, Cluster: n.Cluster, Mount: n.TransitMount, Key: n.TransitKey, TokenFile: c.TokenFile,
	}, append(append([]pulumi.ResourceOption{}, opts...), engine.DependsOn(r.Transit))...)
	return err
}

// DeclareEvidence declares the environment's evidence signing key and the
// token that can only sign with it (verify --attest). It follows the KMS
// transit key when there is one, so down deletes it first and the transit
// mount goes with the last key.
func DeclareEvidence(ctx *pulumi.Context, c Cluster, r *Resources, opts ...pulumi.ResourceOption) error {
	n := c.Names
	opts = append([]pulumi.ResourceOption{}, opts...)
	if r.Transit != nil {
		opts = append(opts, engine.DependsOn(r.Transit))
	}
	var err error
	r.EvidenceKey, err = engine.Resource(ctx, EvidenceKeyType, "vault-evidence-key", EvidenceKeyInputs{
		Access: c.Access, Cluster: n.Cluster, Mount: n.TransitMount, Key: n.SigningKey, TokenFile: c.EvidenceTokenFile,
	}, opts...)
	return err
}

// DeclareSecrets declares workload secrets: the KV mount, Kubernetes auth
// against the cluster, and one role per namespace (after both). The auth
// mount needs the running API server and its token reviewer: pass
// authOpts (say, DependsOn the bootstrap objects); opts apply to all.
func DeclareSecrets(ctx *pulumi.Context, c Cluster, r *Resources, authOpts []pulumi.ResourceOption, opts ...pulumi.ResourceOption) error {
	n := c.Names
	if r.NamespaceRoles == nil {
		r.NamespaceRoles = map[string]*engine.Res{}
	}
	var err error
	if r.KV, err = engine.Resource(ctx, KVType, "vault-kv", KVInputs{Access: c.Access, Mount: n.KVMount}, opts...); err != nil {
		return err
	}
	if r.KubernetesAuth, err = engine.Resource(ctx, KubernetesAuthType, "vault-kubernetes-auth",
		KubernetesAuthInputs{Access: c.Access, Path: n.AuthPath, Kubeconfig: c.Kubeconfig},
		append(append([]pulumi.ResourceOption{}, opts...), authOpts...)...); err != nil {
		return err
	}
	roleOpts := append(append([]pulumi.ResourceOption{}, opts...), engine.DependsOn(r.KubernetesAuth, r.KV))
	for _, ns := range n.Namespaces {
		res, err := engine.Resource(ctx, NamespaceRoleType, "vault-role-"+ns.Namespace, NamespaceRoleInputs{
			Access: c.Access, Cluster: n.Cluster, AuthPath: n.AuthPath, KVMount: n.KVMount,
			Namespace: ns.Namespace, Paths: ns.Paths,
		}, roleOpts...)
		if err != nil {
			return err
		}
		r.NamespaceRoles[ns.Namespace] = res
	}
	return nil
}

// Declare declares a cluster's whole Vault set (DeclareKMS and
// DeclareSecrets) with opts on all of it.
func Declare(ctx *pulumi.Context, c Cluster, opts ...pulumi.ResourceOption) (*Resources, error) {
	r := &Resources{}
	if err := DeclareKMS(ctx, c, r, opts...); err != nil {
		return nil, err
	}
	if err := DeclareSecrets(ctx, c, r, nil, opts...); err != nil {
		return nil, err
	}
	return r, nil
}
