package vaultres

import (
	"context"

	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/vault"
)

// EvidenceKeyInputs declare an environment's evidence signing key (a
// transit ecdsa-p256 key) and its signer's token, which can sign with that
// key and nothing else.
type EvidenceKeyInputs struct {
	Access    vault.Access `json:"access"`
	Cluster   string       `json:"cluster" secprov:"replace"` // names the policy and role
	Mount     string       `json:"mount" secprov:"replace"`
	Key       string       `json:"key" secprov:"replace"`
	TokenFile string       `json:"tokenFile" secprov:"replace"`
}

func (in EvidenceKeyInputs) names() vault.Names {
	return vault.Names{Cluster: in.Cluster, TransitMount: in.Mount, SigningKey: in.Key}
}

// EvidenceKeyOutputs name the key and its latest version.
type EvidenceKeyOutputs struct {
	LatestVersion int    `json:"latestVersion"`
	Policy        string `json:"policy"`
}

func evidenceKeyResourceType() provider.TypedResourceType[EvidenceKeyInputs, EvidenceKeyOutputs] {
	type req = provider.TypedRequest[EvidenceKeyInputs, EvidenceKeyOutputs]
	ensure := func(ctx context.Context, r req) (EvidenceKeyOutputs, error) {
		in := r.Inputs
		out := EvidenceKeyOutputs{Policy: in.names().EvidencePolicy()}
		s, err := vault.NewSetup(ctx, in.Access, r.Log)
		if err != nil {
			return out, err
		}
		k, err := s.EnsureSigningKey(ctx, in.Mount, in.Key)
		if err != nil {
			return out, err
		}
		out.LatestVersion = k.LatestVersion
		return out, s.EnsureEvidenceToken(ctx, in.names(), in.TokenFile)
	}
	return provider.TypedResourceType[EvidenceKeyInputs, EvidenceKeyOutputs]{
		Token:               EvidenceKeyType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *EvidenceKeyInputs) []provider.Failure {
			f := checkKeyToken(in.Access, in.Mount, in.Key, in.Cluster, in.TokenFile)
			return f
		},
		Create: func(ctx context.Context, r req) (string, EvidenceKeyOutputs, error) {
			id := r.Inputs.Mount + "/keys/" + r.Inputs.Key
			out, err := ensure(ctx, r)
			if err != nil {
				return createdID(id, err), out, err
			}
			return id, out, nil
		},
		// A lapsed token, a token file that is gone or a deleted key is made
		// again in place.
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			if d.Replaces() || !known(r.Inputs.Access, r.Inputs.Cluster, r.Inputs.Mount, r.Inputs.Key, r.Inputs.TokenFile) {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return d, err
			}
			live, err := s.EvidenceTokenLive(ctx, r.Inputs.names(), r.Inputs.TokenFile)
			if err != nil || live {
				return d, err
			}
			return drift(d, "token", provider.Update, false), nil
		},
		Read: func(ctx context.Context, r req) (EvidenceKeyInputs, EvidenceKeyOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			k, ok, err := s.ReadTransit(ctx, r.Inputs.Mount, r.Inputs.Key)
			out := r.State
			out.LatestVersion = k.LatestVersion
			return r.Inputs, out, ok, err
		},
		Update: ensure,
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			if err := s.DeleteEvidenceToken(ctx, r.Inputs.names(), r.Inputs.TokenFile); err != nil {
				return err
			}
			return s.DeleteSigningKey(ctx, r.Inputs.Mount, r.Inputs.Key)
		},
	}
}
