// Package vaultres holds the Pulumi resource types of a cluster's objects
// in Vault: the transit key of KMS v2 encryption at rest, the KV v2 mount
// of workload secrets, the Kubernetes auth mount configured against the
// cluster, one read-only login role per namespace, and the KMS plugin's
// narrow token. The work is done by package vault; these resource types add drift
// detection (Diff and Read ask Vault), replacement where a Vault object
// must be recreated, and the engine's lifecycle.
//
// No secret is ever an input or an output: inputs carry a vault.Access
// (paths) and file paths, and the provider reads tokens and JWTs from
// files and the Kubernetes API itself. The KMS token's accessor (which
// can revoke but not use the token) is the only token-related output.
package vaultres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/vault"
)

// Resource type tokens.
const (
	TransitType        = "secprov:vault:Transit"
	KVType             = "secprov:vault:Kv"
	KubernetesAuthType = "secprov:vault:KubernetesAuth"
	NamespaceRoleType  = "secprov:vault:NamespaceRole"
	KMSTokenType       = "secprov:vault:KmsToken"
	EvidenceKeyType    = "secprov:vault:EvidenceKey"
)

// ResourceTypes are the Vault resource types secprov's resource plugin
// serves.
func ResourceTypes() []provider.ResourceType {
	return []provider.ResourceType{
		transitResourceType().ResourceType(),
		kvResourceType().ResourceType(),
		kubernetesAuthResourceType().ResourceType(),
		namespaceRoleResourceType().ResourceType(),
		kmsTokenResourceType().ResourceType(),
		evidenceKeyResourceType().ResourceType(),
	}
}

// replaceAccess: another Vault is another object; the old one is deleted
// from the old Vault first. A new token or CA file is an in-place update.
var replaceAccess = []string{"access.address"}

// vaultPath is what blueprint validation allows for mounts and names.
var vaultPath = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

func checkAccess(a vault.Access) []provider.Failure {
	var f []provider.Failure
	if u, err := url.Parse(a.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		f = append(f, provider.Failure{Property: "access.address", Reason: fmt.Sprintf("%q is not a Vault URL like https://vault.example.com:8200", a.Address)})
	}
	for prop, p := range map[string]string{"access.caFile": a.CAFile, "access.tokenFile": a.TokenFile} {
		if p != "" && !filepath.IsAbs(p) {
			f = append(f, provider.Failure{Property: prop, Reason: fmt.Sprintf("%q must be an absolute path", p)})
		}
	}
	return f
}

func checkName(f []provider.Failure, prop, v string) []provider.Failure {
	if !vaultPath.MatchString(v) {
		f = append(f, provider.Failure{Property: prop, Reason: fmt.Sprintf("%q is not a Vault path (letters, digits, '_', '-', separated by '/')", v)})
	}
	return f
}

func checkDuration(f []provider.Failure, prop string, v *string, def time.Duration) []provider.Failure {
	if *v == "" {
		*v = def.String()
	}
	if d, err := time.ParseDuration(*v); err != nil || d <= 0 {
		f = append(f, provider.Failure{Property: prop, Reason: fmt.Sprintf("%q is not a positive duration like 15m", *v)})
	}
	return f
}

func duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// known reports whether the live checks of Diff can run: during preview,
// inputs computed from resources not created yet arrive as zero values.
func known(a vault.Access, names ...string) bool {
	if a.Address == "" {
		return false
	}
	for _, n := range names {
		if n == "" {
			return false
		}
	}
	return true
}

// drift adds a change found in Vault (not in the inputs) unless the
// computed diff already has that path.
func drift(d provider.Diff, path string, kind provider.ChangeKind, replace bool) provider.Diff {
	for i, c := range d.Changes {
		if c.Path == path {
			d.Changes[i].Replace = d.Changes[i].Replace || replace
			return d
		}
	}
	d.Changes = append(d.Changes, provider.Change{Path: path, Kind: kind, Replace: replace})
	return d
}

// createdID is the id Create returns with an error: the object may exist
// in part, so the engine must record it (Update finishes the job, Delete
// removes it). Only when Vault never answered is nothing there.
func createdID(id string, err error) string {
	if errors.Is(err, vault.ErrUnreachable) || errors.Is(err, context.Canceled) {
		return ""
	}
	return id
}

// --- Transit -------------------------------------------------------------

// TransitInputs declare a cluster's KMS key.
type TransitInputs struct {
	Access vault.Access `json:"access"`
	Mount  string       `json:"mount" secprov:"replace"`
	Key    string       `json:"key" secprov:"replace"`
}

// TransitOutputs report the key's current version.
type TransitOutputs struct {
	LatestVersion int `json:"latestVersion"`
}

func transitResourceType() provider.TypedResourceType[TransitInputs, TransitOutputs] {
	type req = provider.TypedRequest[TransitInputs, TransitOutputs]
	ensure := func(ctx context.Context, r req) (TransitOutputs, error) {
		s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
		if err != nil {
			return TransitOutputs{}, err
		}
		k, err := s.EnsureTransit(ctx, r.Inputs.Mount, r.Inputs.Key)
		return TransitOutputs{LatestVersion: k.LatestVersion}, err
	}
	return provider.TypedResourceType[TransitInputs, TransitOutputs]{
		Token:               TransitType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true, // same mount and key name
		Check: func(_ context.Context, in *TransitInputs) []provider.Failure {
			f := checkAccess(in.Access)
			f = checkName(f, "mount", in.Mount)
			return checkName(f, "key", in.Key)
		},
		Create: func(ctx context.Context, r req) (string, TransitOutputs, error) {
			id := r.Inputs.Mount + "/keys/" + r.Inputs.Key
			out, err := ensure(ctx, r)
			if err != nil {
				return createdID(id, err), out, err
			}
			return id, out, nil
		},
		// A key deleted behind secprov's back cannot be brought back: a new
		// one replaces it (and everything encrypted with the old is lost,
		// which the plan shows as a replacement).
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			if d.Replaces() || !known(r.Inputs.Access, r.Inputs.Mount, r.Inputs.Key) {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return d, err
			}
			if _, ok, err := s.ReadTransit(ctx, r.Inputs.Mount, r.Inputs.Key); err != nil {
				return d, err
			} else if !ok {
				d = drift(d, "key", provider.Add, true)
			}
			return d, nil
		},
		Read: func(ctx context.Context, r req) (TransitInputs, TransitOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			k, ok, err := s.ReadTransit(ctx, r.Inputs.Mount, r.Inputs.Key)
			return r.Inputs, TransitOutputs{LatestVersion: k.LatestVersion}, ok, err
		},
		Update: ensure,
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			return s.DeleteTransit(ctx, r.Inputs.Mount, r.Inputs.Key)
		},
	}
}

// --- KV ------------------------------------------------------------------

// KVInputs declare a cluster's KV v2 mount of workload secrets.
type KVInputs struct {
	Access vault.Access `json:"access"`
	Mount  string       `json:"mount" secprov:"replace"`
}

// KVOutputs report the KV version (always 2).
type KVOutputs struct {
	Version int `json:"version"`
}

func kvResourceType() provider.TypedResourceType[KVInputs, KVOutputs] {
	type req = provider.TypedRequest[KVInputs, KVOutputs]
	ensure := func(ctx context.Context, r req) (KVOutputs, error) {
		s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
		if err != nil {
			return KVOutputs{}, err
		}
		return KVOutputs{Version: 2}, s.EnsureKV(ctx, r.Inputs.Mount)
	}
	return provider.TypedResourceType[KVInputs, KVOutputs]{
		Token:               KVType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *KVInputs) []provider.Failure {
			return checkName(checkAccess(in.Access), "mount", in.Mount)
		},
		Create: func(ctx context.Context, r req) (string, KVOutputs, error) {
			out, err := ensure(ctx, r)
			if err != nil {
				return createdID(r.Inputs.Mount, err), out, err
			}
			return r.Inputs.Mount, out, nil
		},
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			if d.Replaces() || !known(r.Inputs.Access, r.Inputs.Mount) {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return d, err
			}
			if ok, err := s.ReadKV(ctx, r.Inputs.Mount); err != nil {
				return d, err
			} else if !ok {
				d = drift(d, "mount", provider.Add, true)
			}
			return d, nil
		},
		Read: func(ctx context.Context, r req) (KVInputs, KVOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			ok, err := s.ReadKV(ctx, r.Inputs.Mount)
			return r.Inputs, KVOutputs{Version: 2}, ok, err
		},
		Update: ensure,
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			return s.DeleteKV(ctx, r.Inputs.Mount)
		},
	}
}
