package vault

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/internal/atomicfile"
)

// DefaultKMSTokenPeriod is the KMS token's period: the plugin must renew
// it within this time or it expires (and the cluster can no longer read
// its secrets until `up` mints a new one).
const DefaultKMSTokenPeriod = 24 * time.Hour

// KMSTokenOptions say where the KMS plugin's token lives and which token
// an earlier run minted.
type KMSTokenOptions struct {
	// TokenFile is where the token is written (0600, atomically); the KMS
	// plugin reads it from there.
	TokenFile string
	// Period of the token; 0 is DefaultKMSTokenPeriod.
	Period time.Duration
	// Accessor of the token an earlier run minted (from state), or empty.
	// Ensure revokes it when it mints a replacement; Read checks it.
	Accessor string
}

func (o KMSTokenOptions) period() time.Duration {
	if o.Period <= 0 {
		return DefaultKMSTokenPeriod
	}
	return o.Period
}

// TokenInfo is what Vault tells about a token (never the token itself).
type TokenInfo struct {
	Accessor    string
	Policies    []string
	Role        string
	Orphan      bool
	Period      time.Duration
	TTL         time.Duration
	DisplayName string
}

func tokenInfo(sec *api.Secret) TokenInfo {
	d := sec.Data
	ti := TokenInfo{
		Accessor:    str(d["accessor"]),
		Policies:    toStrings(d["policies"]),
		Role:        str(d["role"]),
		DisplayName: str(d["display_name"]),
		Period:      time.Duration(toInt(d["period"])) * time.Second,
		TTL:         time.Duration(toInt(d["ttl"])) * time.Second,
	}
	ti.Orphan, _ = d["orphan"].(bool)
	return ti
}

// ours reports whether a token was minted for n's KMS plugin.
func (ti TokenInfo) ours(n Names) bool {
	return ti.Role == n.KMSTokenRole() && slices.Contains(ti.Policies, n.KMSPolicy())
}

// KMSTokenState compares Vault and the token file with what
// EnsureKMSToken leaves behind.
type KMSTokenState struct {
	PolicyCurrent bool // the KMS policy exists with the expected rules
	RoleCurrent   bool // the token role exists with the expected settings
	TokenLive     bool // Accessor resolves to a valid token of this cluster's role
	FileCurrent   bool // TokenFile holds exactly that token
}

func (s *Setup) tokenRoleData(n Names, o KMSTokenOptions) map[string]any {
	return map[string]any{
		"allowed_policies": []string{n.KMSPolicy()},
		// Orphan: the token must outlive the (possibly short-lived) token
		// that ran `up`; the role allows it without sudo.
		"orphan":                 true,
		"renewable":              true,
		"token_period":           int(o.period().Seconds()),
		"token_explicit_max_ttl": 0,
		"token_type":             "service",
	}
}

// EnsureKMSToken writes the KMS policy and the token role, and makes sure
// opts.TokenFile holds a valid token minted from that role: a valid token
// of this cluster already in the file is kept, otherwise a new one is
// minted and written, and the earlier one (opts.Accessor) revoked. It
// returns the accessor of the token in the file; the token itself never
// leaves the file.
func (s *Setup) EnsureKMSToken(ctx context.Context, n Names, o KMSTokenOptions) (string, error) {
	if o.TokenFile == "" {
		return "", errors.New("vault: KMS token: no token file given")
	}
	if err := s.putPolicy(ctx, n.KMSPolicy(), KMSPolicy(n)); err != nil {
		return "", err
	}
	rp := "auth/token/roles/" + n.KMSTokenRole()
	if _, err := s.write(ctx, "write token role "+n.KMSTokenRole(), rp, "create/update", s.tokenRoleData(n, o)); err != nil {
		return "", err
	}
	cur, ok, err := s.fileToken(ctx, o.TokenFile)
	if err != nil {
		return "", err
	}
	if ok && cur.ours(n) {
		if o.Accessor != "" && o.Accessor != cur.Accessor {
			if err := s.RevokeAccessor(ctx, o.Accessor); err != nil {
				return "", err
			}
		}
		return cur.Accessor, nil
	}
	cp := "auth/token/create/" + n.KMSTokenRole()
	sec, err := s.c.Auth().Token().CreateWithRoleWithContext(ctx, &api.TokenCreateRequest{
		Policies:    []string{n.KMSPolicy()},
		DisplayName: n.KMSTokenRole(),
		Metadata:    map[string]string{"secprov-cluster": n.Cluster},
	}, n.KMSTokenRole())
	if err != nil {
		return "", s.fail("mint KMS token from role "+n.KMSTokenRole(), cp, "update", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return "", fmt.Errorf("vault %s: %s returned no token", s.c.Address(), cp)
	}
	if err := writeSecretFile(o.TokenFile, []byte(sec.Auth.ClientToken+"\n")); err != nil {
		// The token exists only in memory now: revoke it rather than
		// leave an orphan nobody can find.
		_ = s.RevokeAccessor(context.WithoutCancel(ctx), sec.Auth.Accessor)
		return "", fmt.Errorf("KMS token file %s: %w", o.TokenFile, err)
	}
	s.log.Info("minted vault KMS token", "role", n.KMSTokenRole(), "file", o.TokenFile, "accessor", sec.Auth.Accessor)
	if o.Accessor != "" && o.Accessor != sec.Auth.Accessor {
		if err := s.RevokeAccessor(ctx, o.Accessor); err != nil {
			return sec.Auth.Accessor, err
		}
	}
	return sec.Auth.Accessor, nil
}

// ReadKMSToken checks the KMS policy, the token role, the token of
// o.Accessor and the token file.
func (s *Setup) ReadKMSToken(ctx context.Context, n Names, o KMSTokenOptions) (KMSTokenState, error) {
	var st KMSTokenState
	text, ok, err := s.getPolicy(ctx, n.KMSPolicy())
	if err != nil {
		return st, err
	}
	st.PolicyCurrent = ok && text == KMSPolicy(n)
	rp := "auth/token/roles/" + n.KMSTokenRole()
	sec, err := s.read(ctx, "read token role "+n.KMSTokenRole(), rp)
	if err != nil {
		return st, err
	}
	if sec != nil && sec.Data != nil {
		want := s.tokenRoleData(n, o)
		orphan, _ := sec.Data["orphan"].(bool)
		renewable, _ := sec.Data["renewable"].(bool)
		st.RoleCurrent = sameStrings(sec.Data["allowed_policies"], want["allowed_policies"].([]string)) &&
			orphan && renewable && toInt(sec.Data["token_period"]) == want["token_period"].(int) &&
			toInt(sec.Data["token_explicit_max_ttl"]) == 0
	}
	if o.Accessor == "" {
		return st, nil
	}
	ti, ok, err := s.LookupAccessor(ctx, o.Accessor)
	if err != nil {
		return st, err
	}
	st.TokenLive = ok && ti.ours(n)
	if !st.TokenLive {
		return st, nil
	}
	cur, ok, err := s.fileToken(ctx, o.TokenFile)
	if err != nil {
		return st, err
	}
	st.FileCurrent = ok && cur.Accessor == o.Accessor
	return st, nil
}

// DeleteKMSToken revokes the KMS token (o.Accessor, and the token in the
// file if it is another of this cluster's), deletes the token role and
// the KMS policy, and removes the token file.
func (s *Setup) DeleteKMSToken(ctx context.Context, n Names, o KMSTokenOptions) error {
	if o.Accessor != "" {
		if err := s.RevokeAccessor(ctx, o.Accessor); err != nil {
			return err
		}
	}
	if o.TokenFile != "" {
		cur, ok, err := s.fileToken(ctx, o.TokenFile)
		if err != nil {
			return err
		}
		if ok && cur.ours(n) && cur.Accessor != o.Accessor {
			if err := s.RevokeAccessor(ctx, cur.Accessor); err != nil {
				return err
			}
		}
	}
	if err := s.delete(ctx, "delete token role "+n.KMSTokenRole(), "auth/token/roles/"+n.KMSTokenRole()); err != nil {
		return err
	}
	if err := s.deletePolicy(ctx, n.KMSPolicy()); err != nil {
		return err
	}
	if o.TokenFile != "" {
		if err := os.Remove(o.TokenFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove KMS token file: %w", err)
		}
	}
	return nil
}

// LookupAccessor looks up a token by its accessor; ok is false when the
// token was revoked or expired.
func (s *Setup) LookupAccessor(ctx context.Context, accessor string) (TokenInfo, bool, error) {
	const p = "auth/token/lookup-accessor"
	sec, err := s.c.Auth().Token().LookupAccessorWithContext(ctx, accessor)
	if err != nil {
		if statusCode(err) == 400 && responseSays(err, "invalid accessor") {
			return TokenInfo{}, false, nil
		}
		return TokenInfo{}, false, s.fail("look up KMS token", p, "update", err)
	}
	if sec == nil || sec.Data == nil {
		return TokenInfo{}, false, nil
	}
	return tokenInfo(sec), true, nil
}

// RevokeAccessor revokes the token of accessor; an unknown accessor (token
// already revoked or expired) is success.
func (s *Setup) RevokeAccessor(ctx context.Context, accessor string) error {
	const p = "auth/token/revoke-accessor"
	err := s.c.Auth().Token().RevokeAccessorWithContext(ctx, accessor)
	if err != nil {
		if statusCode(err) == 400 && responseSays(err, "invalid accessor") {
			return nil
		}
		return s.fail("revoke KMS token", p, "update", err)
	}
	s.log.Info("revoked vault token", "accessor", accessor)
	return nil
}

// fileToken looks up the token in path with that token itself (lookup-self
// is in every token's default policy); ok is false if the file is missing
// or empty or its token is no longer valid.
func (s *Setup) fileToken(ctx context.Context, path string) (TokenInfo, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return TokenInfo{}, false, nil
	}
	if err != nil {
		return TokenInfo{}, false, fmt.Errorf("KMS token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return TokenInfo{}, false, nil
	}
	c, err := s.c.Clone()
	if err != nil {
		return TokenInfo{}, false, err
	}
	c.SetToken(tok)
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		if code := statusCode(err); code == 403 || code == 400 {
			return TokenInfo{}, false, nil // revoked, expired or not a token
		}
		return TokenInfo{}, false, s.fail("look up the KMS token in "+path, "auth/token/lookup-self", "read", err)
	}
	if sec == nil || sec.Data == nil {
		return TokenInfo{}, false, nil
	}
	return tokenInfo(sec), true, nil
}

// writeSecretFile writes data to path with mode 0600 through a temporary
// file in the same directory and a rename, so a reader never sees a
// partial token and the old token stays until the new one is complete.
// A missing directory is created 0700.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
