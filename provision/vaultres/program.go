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
}

// Resources are the declared Vault resources of one cluster.
type Resources struct {
	Transit, KV, KubernetesAuth, KMSToken *engine.Res
	NamespaceRoles                        map[string]*engine.Res // by namespace
}

// Declare declares a cluster's Vault resources in an inline program:
// transit key, KV mount, Kubernetes auth, one role per namespace (after
// the auth mount and KV mount) and the KMS token (after the key). opts
// apply to all of them (say, DependsOn the cluster's bootstrap objects,
// which include the token reviewer).
func Declare(ctx *pulumi.Context, c Cluster, opts ...pulumi.ResourceOption) (*Resources, error) {
	n := c.Names
	r := &Resources{NamespaceRoles: map[string]*engine.Res{}}
	var err error
	if r.Transit, err = engine.Resource(ctx, TransitType, "vault-transit",
		TransitInputs{Access: c.Access, Mount: n.TransitMount, Key: n.TransitKey}, opts...); err != nil {
		return nil, err
	}
	if r.KV, err = engine.Resource(ctx, KVType, "vault-kv", KVInputs{Access: c.Access, Mount: n.KVMount}, opts...); err != nil {
		return nil, err
	}
	if r.KubernetesAuth, err = engine.Resource(ctx, KubernetesAuthType, "vault-kubernetes-auth",
		KubernetesAuthInputs{Access: c.Access, Path: n.AuthPath, Kubeconfig: c.Kubeconfig}, opts...); err != nil {
		return nil, err
	}
	roleOpts := append(append([]pulumi.ResourceOption{}, opts...), engine.DependsOn(r.KubernetesAuth, r.KV))
	for _, ns := range n.Namespaces {
		res, err := engine.Resource(ctx, NamespaceRoleType, "vault-role-"+ns.Namespace, NamespaceRoleInputs{
			Access: c.Access, Cluster: n.Cluster, AuthPath: n.AuthPath, KVMount: n.KVMount,
			Namespace: ns.Namespace, Paths: ns.Paths,
		}, roleOpts...)
		if err != nil {
			return nil, err
		}
		r.NamespaceRoles[ns.Namespace] = res
	}
	tokenOpts := append(append([]pulumi.ResourceOption{}, opts...), engine.DependsOn(r.Transit))
	if r.KMSToken, err = engine.Resource(ctx, KMSTokenType, "vault-kms-token", KMSTokenInputs{
		Access: c.Access, Cluster: n.Cluster, Mount: n.TransitMount, Key: n.TransitKey, TokenFile: c.TokenFile,
	}, tokenOpts...); err != nil {
		return nil, err
	}
	return r, nil
}
