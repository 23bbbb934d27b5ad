package evidence

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

// TransitSigner signs with a Vault Transit key. Its token needs only
// update on <mount>/sign/<key>: the private key never leaves Vault.
type TransitSigner struct {
	Client      *api.Client
	Mount, Key  string
	lastVersion int
}

// TransitKeyID names a version of a Transit key in envelopes, so a
// verifier picks the right public key after the key was rotated.
func TransitKeyID(mount, key string, version int) string {
	return fmt.Sprintf("vault-transit:%s/%s:v%d", mount, key, version)
}

// Sign implements Signer: Vault hashes data with SHA-256 and signs it
// (ASN.1 DER for ECDSA), exactly what a DSSE ECDSA verifier checks.
func (s *TransitSigner) Sign(ctx context.Context, data []byte) ([]byte, error) {
	p := s.Mount + "/sign/" + s.Key + "/sha2-256"
	sec, err := s.Client.Logical().WriteWithContext(ctx, p, map[string]any{
		"input":                base64.StdEncoding.EncodeToString(data),
		"marshaling_algorithm": "asn1",
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s: sign with transit key %s/%s: %w", s.Client.Address(), s.Mount, s.Key, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault %s: %s returned no signature", s.Client.Address(), p)
	}
	raw, _ := sec.Data["signature"].(string)
	version, sig, err := parseTransitSignature(raw)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %s: %w", s.Client.Address(), p, err)
	}
	s.lastVersion = version
	return sig, nil
}

// KeyID implements Signer; it is the version that made the last signature.
func (s *TransitSigner) KeyID() (string, error) {
	if s.lastVersion == 0 {
		return "", errors.New("transit signer: no signature made yet")
	}
	return TransitKeyID(s.Mount, s.Key, s.lastVersion), nil
}

// parseTransitSignature splits Vault's "vault:v<N>:<base64>".
func parseTransitSignature(s string) (int, []byte, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" || !strings.HasPrefix(parts[1], "v") {
		return 0, nil, fmt.Errorf("unexpected signature format %q", s)
	}
	v, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
	if err != nil || v < 1 {
		return 0, nil, fmt.Errorf("unexpected key version in %q", s)
	}
	sig, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return 0, nil, fmt.Errorf("signature is not base64: %w", err)
	}
	return v, sig, nil
}

// TransitPublicKeys reads every version's public key of a Transit signing
// key, for env, oldest first.
func TransitPublicKeys(ctx context.Context, c *api.Client, mount, key, env string) ([]PublicKey, error) {
	p := mount + "/keys/" + key
	sec, err := c.Logical().ReadWithContext(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("vault %s: read transit key %s: %w", c.Address(), p, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault %s: no transit key %s: run secprov up to create the environment's signing key", c.Address(), p)
	}
	versions, _ := sec.Data["keys"].(map[string]any)
	var out []PublicKey
	for v, info := range versions {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		m, _ := info.(map[string]any)
		pemText, _ := m["public_key"].(string)
		blk, _ := pem.Decode([]byte(pemText))
		if blk == nil {
			return nil, fmt.Errorf("vault %s: transit key %s version %d has no public key (type %v): not a signing key", c.Address(), p, n, sec.Data["type"])
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("vault %s: transit key %s version %d: %w", c.Address(), p, n, err)
		}
		out = append(out, PublicKey{KeyID: TransitKeyID(mount, key, n), Environment: env, Source: "vault " + c.Address() + " " + p, Key: pub})
	}
	slices.SortFunc(out, func(a, b PublicKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out, nil
}
