package vaultres

import (
	"context"
	"fmt"
	"path/filepath"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/vault"
)

// --- NamespaceRole -------------------------------------------------------

// NamespaceRoleInputs declare one namespace's read-only access to KV paths.
type NamespaceRoleInputs struct {
	Access    vault.Access `json:"access"`
	Cluster   string       `json:"cluster" secprov:"replace"`  // names the policy
	AuthPath  string       `json:"authPath" secprov:"replace"` // holds the role
	KVMount   string       `json:"kvMount"`
	Namespace string       `json:"namespace" secprov:"replace"`
	Paths     []string     `json:"paths"`
	// TokenTTL of workload tokens; default vault.DefaultNamespaceTokenTTL.
	TokenTTL string `json:"tokenTTL,omitempty"`
	// Audience a workload's service-account token must carry; empty
	// accepts the API server's default.
	Audience string `json:"audience,omitempty"`
}

func (in NamespaceRoleInputs) names() vault.Names {
	return vault.Names{Cluster: in.Cluster, KVMount: in.KVMount, AuthPath: in.AuthPath}
}

func (in NamespaceRoleInputs) ns() v1alpha1.VaultNamespace {
	return v1alpha1.VaultNamespace{Namespace: in.Namespace, Paths: in.Paths}
}

func (in NamespaceRoleInputs) options() vault.RoleOptions {
	return vault.RoleOptions{TokenTTL: duration(in.TokenTTL), Audience: in.Audience}
}

// NamespaceRoleOutputs name what was written.
type NamespaceRoleOutputs struct {
	Policy string `json:"policy"`
	Role   string `json:"role"` // auth/<path>/role/<name>
}

func namespaceRoleResourceType() provider.TypedResourceType[NamespaceRoleInputs, NamespaceRoleOutputs] {
	type req = provider.TypedRequest[NamespaceRoleInputs, NamespaceRoleOutputs]
	outputs := func(in NamespaceRoleInputs) NamespaceRoleOutputs {
		n := in.names()
		return NamespaceRoleOutputs{Policy: n.NamespacePolicy(in.Namespace), Role: "auth/" + in.AuthPath + "/role/" + n.NamespaceRole(in.Namespace)}
	}
	ensure := func(ctx context.Context, r req) (NamespaceRoleOutputs, error) {
		s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
		if err != nil {
			return NamespaceRoleOutputs{}, err
		}
		return outputs(r.Inputs), s.EnsureNamespaceRole(ctx, r.Inputs.names(), r.Inputs.ns(), r.Inputs.options())
	}
	return provider.TypedResourceType[NamespaceRoleInputs, NamespaceRoleOutputs]{
		Token:               NamespaceRoleType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *NamespaceRoleInputs) []provider.Failure {
			f := checkAccess(in.Access)
			f = checkName(f, "authPath", in.AuthPath)
			f = checkName(f, "kvMount", in.KVMount)
			for prop, v := range map[string]string{"cluster": in.Cluster, "namespace": in.Namespace} {
				if !blueprints.IsDNSLabel(v) {
					f = append(f, provider.Failure{Property: prop, Reason: fmt.Sprintf("%q is not a DNS label", v)})
				}
			}
			if len(in.Paths) == 0 {
				f = append(f, provider.Failure{Property: "paths", Reason: "list at least one KV path"})
			}
			for i, p := range in.Paths {
				if !blueprints.IsVaultKVPath(p) {
					f = append(f, provider.Failure{Property: fmt.Sprintf("paths[%d]", i), Reason: fmt.Sprintf("%q is not a KV path like payments/*", p)})
				}
			}
			return checkDuration(f, "tokenTTL", &in.TokenTTL, vault.DefaultNamespaceTokenTTL)
		},
		Create: func(ctx context.Context, r req) (string, NamespaceRoleOutputs, error) {
			id := outputs(r.Inputs).Role
			out, err := ensure(ctx, r)
			if err != nil {
				return createdID(id, err), out, err
			}
			return id, out, nil
		},
		// A widened policy or a rebound role is rewritten in place.
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			in := r.Inputs
			if d.Replaces() || !known(in.Access, in.Cluster, in.AuthPath, in.KVMount, in.Namespace) || len(in.Paths) == 0 {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, in.Access, r.Log)
			if err != nil {
				return d, err
			}
			st, err := s.ReadNamespaceRole(ctx, in.names(), in.ns(), in.options())
			if err != nil {
				return d, err
			}
			if !st.PolicyCurrent {
				d = drift(d, "policy", provider.Update, false)
			}
			if !st.RoleCurrent {
				d = drift(d, "role", provider.Update, false)
			}
			return d, nil
		},
		Read: func(ctx context.Context, r req) (NamespaceRoleInputs, NamespaceRoleOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			st, err := s.ReadNamespaceRole(ctx, r.Inputs.names(), r.Inputs.ns(), r.Inputs.options())
			return r.Inputs, outputs(r.Inputs), err == nil && !st.Gone(), err
		},
		Update: ensure,
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			return s.DeleteNamespaceRole(ctx, r.Inputs.names(), r.Inputs.Namespace)
		},
	}
}

// --- KmsToken ------------------------------------------------------------

// KMSTokenInputs declare the KMS plugin's token: its policy (encrypt and
// decrypt with one key), the token role, and the token in a 0600 file.
type KMSTokenInputs struct {
	Access  vault.Access `json:"access"`
	Cluster string       `json:"cluster" secprov:"replace"` // names the policy and role
	Mount   string       `json:"mount"`                     // transit mount
	Key     string       `json:"key"`                       // transit key
	// TokenFile is where the token is written (the KMS plugin reads it).
	TokenFile string `json:"tokenFile" secprov:"replace"`
	// Period of the periodic token; default vault.DefaultKMSTokenPeriod.
	Period string `json:"period,omitempty"`
}

func (in KMSTokenInputs) names() vault.Names {
	return vault.Names{Cluster: in.Cluster, TransitMount: in.Mount, TransitKey: in.Key}
}

func (in KMSTokenInputs) options(accessor string) vault.KMSTokenOptions {
	return vault.KMSTokenOptions{TokenFile: in.TokenFile, Period: duration(in.Period), Accessor: accessor}
}

// KMSTokenOutputs identify the token without holding it.
type KMSTokenOutputs struct {
	// Accessor of the token: enough to look it up or revoke it, not to use it.
	Accessor string `json:"accessor"`
	Policy   string `json:"policy"`
	Role     string `json:"role"`
}

func kmsTokenResourceType() provider.TypedResourceType[KMSTokenInputs, KMSTokenOutputs] {
	type req = provider.TypedRequest[KMSTokenInputs, KMSTokenOutputs]
	ensure := func(ctx context.Context, in KMSTokenInputs, accessor string, r req) (KMSTokenOutputs, error) {
		n := in.names()
		out := KMSTokenOutputs{Policy: n.KMSPolicy(), Role: n.KMSTokenRole()}
		s, err := vault.NewSetup(ctx, in.Access, r.Log)
		if err != nil {
			return out, err
		}
		out.Accessor, err = s.EnsureKMSToken(ctx, n, in.options(accessor))
		return out, err
	}
	return provider.TypedResourceType[KMSTokenInputs, KMSTokenOutputs]{
		Token:               KMSTokenType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true, // same role and file
		Check: func(_ context.Context, in *KMSTokenInputs) []provider.Failure {
			f := checkKeyToken(in.Access, in.Mount, in.Key, in.Cluster, in.TokenFile)
			return checkDuration(f, "period", &in.Period, vault.DefaultKMSTokenPeriod)
		},
		Create: func(ctx context.Context, r req) (string, KMSTokenOutputs, error) {
			out, err := ensure(ctx, r.Inputs, "", r)
			if err != nil {
				return createdID(out.Role, err), out, err
			}
			return out.Role, out, nil
		},
		// A revoked or expired token, or a token file that is gone or holds
		// another token, is replaced: the old token is revoked, a new one
		// minted. A changed policy or role is rewritten in place.
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			in := r.Inputs
			if d.Replaces() || !known(in.Access, in.Cluster, in.Mount, in.Key, in.TokenFile) {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, in.Access, r.Log)
			if err != nil {
				return d, err
			}
			st, err := s.ReadKMSToken(ctx, in.names(), in.options(r.State.Accessor))
			if err != nil {
				return d, err
			}
			if !st.TokenLive || !st.FileCurrent {
				return drift(d, "token", provider.Update, true), nil
			}
			if !st.PolicyCurrent {
				d = drift(d, "policy", provider.Update, false)
			}
			if !st.RoleCurrent {
				d = drift(d, "role", provider.Update, false)
			}
			return d, nil
		},
		// A dead token is gone (nothing to revoke). A live token whose file
		// is missing or holds another token reads back with an empty
		// tokenFile: the next `up` replaces it, and the replacement's
		// delete revokes the live token so it is never orphaned.
		Read: func(ctx context.Context, r req) (KMSTokenInputs, KMSTokenOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			st, err := s.ReadKMSToken(ctx, r.Inputs.names(), r.Inputs.options(r.State.Accessor))
			if err != nil || !st.TokenLive {
				return r.Inputs, r.State, false, err
			}
			in := r.Inputs
			if !st.FileCurrent {
				in.TokenFile = ""
			}
			return in, r.State, true, nil
		},
		Update: func(ctx context.Context, r req) (KMSTokenOutputs, error) {
			return ensure(ctx, r.Inputs, r.State.Accessor, r)
		},
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			return s.DeleteKMSToken(ctx, r.Inputs.names(), r.Inputs.options(r.State.Accessor))
		},
	}
}

// checkKeyToken checks the inputs every narrow-token resource shares (the
// KMS token, the evidence signing token): Vault access, the transit mount
// and key, the cluster and the absolute file the token is written to.
func checkKeyToken(access vault.Access, mount, key, cluster, tokenFile string) []provider.Failure {
	f := checkAccess(access)
	f = checkName(f, "mount", mount)
	f = checkName(f, "key", key)
	if !blueprints.IsDNSLabel(cluster) {
		f = append(f, provider.Failure{Property: "cluster", Reason: fmt.Sprintf("%q is not a DNS label", cluster)})
	}
	if !filepath.IsAbs(tokenFile) {
		f = append(f, provider.Failure{Property: "tokenFile", Reason: fmt.Sprintf("%q must be an absolute path", tokenFile)})
	}
	return f
}
