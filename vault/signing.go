package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// SigningKeyType is the transit key type of an environment's evidence
// signing key: ECDSA P-256, which any DSSE verifier checks.
const SigningKeyType = "ecdsa-p256"

// EvidenceTokenPeriod is the evidence signer token's period: each
// `verify --attest` renews it, `up` mints a new one when it has lapsed.
const EvidenceTokenPeriod = 30 * 24 * time.Hour

// EnsureSigningKey creates the environment's evidence signing key in the
// transit mount (non-exportable, not deletable) or adopts an existing key
// of that type; a key of another type is refused.
func (s *Setup) EnsureSigningKey(ctx context.Context, mount, key string) (TransitKey, error) {
	if err := s.ensureMount(ctx, "mounts", mount, "transit", nil, "transit mount", "spec.vault.transitMount"); err != nil {
		return TransitKey{}, err
	}
	p := mount + "/keys/" + key
	k, ok, err := s.ReadTransit(ctx, mount, key)
	if err != nil {
		return k, err
	}
	if !ok {
		if _, err := s.write(ctx, "create signing key "+key, p, "update", map[string]any{"type": SigningKeyType, "exportable": false}); err != nil {
			return k, err
		}
		s.log.Info("created evidence signing key", "mount", mount, "key", key)
		if k, ok, err = s.ReadTransit(ctx, mount, key); err != nil || !ok {
			return k, errors.Join(err, fmt.Errorf("vault %s: signing key %s cannot be read back", s.c.Address(), p))
		}
	}
	if k.Type != SigningKeyType || k.Exportable {
		return k, fmt.Errorf("vault %s: transit key %s exists as type %s (exportable=%v); evidence needs a non-exportable %s key: remove it or choose another transit mount",
			s.c.Address(), p, k.Type, k.Exportable, SigningKeyType)
	}
	return k, nil
}

// RotateSigningKey adds a new version of the signing key; evidence signed
// with older versions keeps verifying against their public keys.
func (s *Setup) RotateSigningKey(ctx context.Context, mount, key string) (TransitKey, error) {
	return s.RotateTransit(ctx, mount, key)
}

// DeleteSigningKey deletes the signing key, and the transit mount when no
// other key is left in it. Evidence it signed stays verifiable with the
// public keys exported before (secprov evidence keys).
func (s *Setup) DeleteSigningKey(ctx context.Context, mount, key string) error {
	return s.DeleteTransit(ctx, mount, key)
}

// EnsureEvidenceToken writes the evidence policy and token role and makes
// sure tokenFile holds a live token of that role (minting one if not).
// The token can sign with the environment's key and do nothing else.
func (s *Setup) EnsureEvidenceToken(ctx context.Context, n Names, tokenFile string) error {
	if n.SigningKey == "" || tokenFile == "" {
		return errors.New("vault: evidence token: no signing key or token file given")
	}
	return s.ensureRoleToken(ctx, n.evidenceToken(), tokenFile)
}

// DeleteEvidenceToken revokes the token in tokenFile, removes the file,
// the token role and the policy.
func (s *Setup) DeleteEvidenceToken(ctx context.Context, n Names, tokenFile string) error {
	return s.deleteRoleToken(ctx, n.evidenceToken(), tokenFile)
}

func (n Names) evidenceToken() roleToken {
	return roleToken{what: "evidence", cluster: n.Cluster, policy: n.EvidencePolicy(), policyText: EvidencePolicy(n),
		role: n.EvidenceTokenRole(), period: EvidenceTokenPeriod}
}

// roleToken is a periodic orphan token minted from a token role that
// allows one policy: the evidence signer's and the state encrypter's.
type roleToken struct {
	what, cluster      string
	policy, policyText string
	role               string
	period             time.Duration
}

// ensureRoleToken writes t's policy and token role and makes sure
// tokenFile holds a live token of that role (minting one if not, and
// revoking the one it replaces).
func (s *Setup) ensureRoleToken(ctx context.Context, t roleToken, tokenFile string) error {
	if err := s.putPolicy(ctx, t.policy, t.policyText); err != nil {
		return err
	}
	rp := "auth/token/roles/" + t.role
	if _, err := s.write(ctx, "write token role "+t.role, rp, "create/update", map[string]any{
		"allowed_policies": []string{t.policy}, "orphan": true, "renewable": true,
		"token_period": int(t.period.Seconds()), "token_type": "service",
	}); err != nil {
		return err
	}
	cur, ok, err := s.fileToken(ctx, tokenFile)
	if err != nil {
		return err
	}
	if ok && cur.Role == t.role && slices.Contains(cur.Policies, t.policy) {
		// Using a periodic token does not extend it: renew it, so it
		// lasts a whole period from every run that ensures it.
		if err := s.renewFileToken(ctx, tokenFile); err != nil {
			s.log.Warn("renewing the vault "+t.what+" token", "file", tokenFile, "err", err)
		}
		return nil
	}
	sec, err := s.c.Auth().Token().CreateWithRoleWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{t.policy}, DisplayName: t.role,
		Metadata: map[string]string{"secprov-cluster": t.cluster},
	}, t.role)
	if err != nil {
		return s.fail("mint "+t.what+" token from role "+t.role, "auth/token/create/"+t.role, "update", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return fmt.Errorf("vault %s: no %s token minted", s.c.Address(), t.what)
	}
	if err := writeSecretFile(tokenFile, []byte(sec.Auth.ClientToken+"\n")); err != nil {
		_ = s.RevokeAccessor(context.WithoutCancel(ctx), sec.Auth.Accessor)
		return fmt.Errorf("%s token file %s: %w", t.what, tokenFile, err)
	}
	if ok && cur.Role == t.role {
		_ = s.RevokeAccessor(ctx, cur.Accessor)
	}
	s.log.Info("minted vault "+t.what+" token", "role", t.role, "file", tokenFile)
	return nil
}

// deleteRoleToken revokes the token in tokenFile, removes the file, the
// token role and the policy.
func (s *Setup) deleteRoleToken(ctx context.Context, t roleToken, tokenFile string) error {
	cur, ok, err := s.fileToken(ctx, tokenFile)
	if err != nil {
		return err
	}
	if ok && cur.Role == t.role {
		if err := s.RevokeAccessor(ctx, cur.Accessor); err != nil {
			return err
		}
	}
	if err := s.delete(ctx, "delete token role "+t.role, "auth/token/roles/"+t.role); err != nil {
		return err
	}
	if err := s.deletePolicy(ctx, t.policy); err != nil {
		return err
	}
	if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// EvidenceTokenLive reports whether tokenFile holds a live token of the
// evidence signer's role and the signing key exists.
func (s *Setup) EvidenceTokenLive(ctx context.Context, n Names, tokenFile string) (bool, error) {
	if _, ok, err := s.ReadTransit(ctx, n.TransitMount, n.SigningKey); err != nil || !ok {
		return false, err
	}
	cur, ok, err := s.fileToken(ctx, tokenFile)
	if err != nil || !ok {
		return false, err
	}
	return cur.Role == n.EvidenceTokenRole() && slices.Contains(cur.Policies, n.EvidencePolicy()), nil
}

// renewFileToken renews the token in path with that token itself
// (renew-self is in every token's default policy).
func (s *Setup) renewFileToken(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c, err := s.c.Clone()
	if err != nil {
		return err
	}
	c.SetToken(strings.TrimSpace(string(b)))
	_, err = c.Auth().Token().RenewSelfWithContext(ctx, 0)
	return err
}
