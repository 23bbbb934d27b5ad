package evidence

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Signer signs the DSSE pre-authentication encoding of a statement. It is
// the dsse library's own interface: KeyID is asked after Sign, so a
// signer whose key version is only known from the answer (Vault Transit)
// can report it.
type Signer = dsse.Signer

// PEM headers secprov writes on exported public keys, so a key file says
// which environment it belongs to and which envelopes it verifies.
const (
	HeaderKeyID       = "Secprov-Key-Id"
	HeaderEnvironment = "Secprov-Environment"
	HeaderSource      = "Secprov-Source"
)

// PublicKey is a verification key and what it is the key of.
type PublicKey struct {
	KeyID string
	// Environment the key signs for; empty when the key file does not
	// say (a plain PEM key): the environment binding cannot be checked.
	Environment string
	Source      string // where it came from: a file, a Vault key
	Key         crypto.PublicKey
}

// verifier adapts a PublicKey to the dsse library's Verifier, which does
// the envelope's PAE and signature matching.
type verifier struct{ k PublicKey }

func (v verifier) KeyID() (string, error)   { return v.k.KeyID, nil }
func (v verifier) Public() crypto.PublicKey { return v.k.Key }
func (v verifier) Verify(_ context.Context, data, sig []byte) error {
	return verifySig(v.k.Key, data, sig)
}

// verifySig checks sig over data: ECDSA over SHA-256 in ASN.1 DER (what
// Vault Transit's ecdsa-p256 and the dsse library's ECDSA signer make),
// Ed25519 over the message itself.
func verifySig(pub crypto.PublicKey, data, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(data)
		if !ecdsa.VerifyASN1(k, h[:], sig) {
			return errors.New("ecdsa signature does not verify")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, data, sig) {
			return errors.New("ed25519 signature does not verify")
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// KeyIDOf is the key ID of a local key: the dsse library's SHA-256
// fingerprint of the public key ("SHA256:…").
func KeyIDOf(pub crypto.PublicKey) (string, error) {
	return dsse.SHA256KeyID(pub)
}

// PEMSigner signs with a local private key (PKCS#8, SEC 1 EC or Ed25519).
type PEMSigner struct {
	key   crypto.Signer
	keyID string
}

// LoadPEMSigner reads a private key file. Only ECDSA P-256 and Ed25519
// keys are accepted: the two algorithms the Vault signing keys use.
func LoadPEMSigner(path string) (*PEMSigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("signing key %s: PEM block %q is not a private key (want PRIVATE KEY or EC PRIVATE KEY)", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return NewPEMSigner(key)
}

// NewPEMSigner signs with key.
func NewPEMSigner(key any) (*PEMSigner, error) {
	var s crypto.Signer
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve.Params().BitSize != 256 {
			return nil, fmt.Errorf("signing key: ECDSA key on %s; use P-256", k.Curve.Params().Name)
		}
		s = k
	case ed25519.PrivateKey:
		s = k
	default:
		return nil, fmt.Errorf("signing key: %T is not an ECDSA P-256 or Ed25519 key", key)
	}
	id, err := KeyIDOf(s.Public())
	if err != nil {
		return nil, err
	}
	return &PEMSigner{key: s, keyID: id}, nil
}

// Sign implements Signer.
func (s *PEMSigner) Sign(_ context.Context, data []byte) ([]byte, error) {
	if _, ok := s.key.(ed25519.PrivateKey); ok {
		return s.key.Sign(rand.Reader, data, crypto.Hash(0))
	}
	h := sha256.Sum256(data)
	return s.key.Sign(rand.Reader, h[:], crypto.SHA256)
}

// KeyID implements Signer.
func (s *PEMSigner) KeyID() (string, error) { return s.keyID, nil }

// Public returns the verification key of s for environment env.
func (s *PEMSigner) Public(env, source string) PublicKey {
	return PublicKey{KeyID: s.keyID, Environment: env, Source: source, Key: s.key.Public()}
}

// EncodePublicKeys writes keys as PEM "PUBLIC KEY" blocks whose headers
// name the key ID and environment.
func EncodePublicKeys(keys []PublicKey) ([]byte, error) {
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.KeyID, err)
		}
		h := map[string]string{HeaderKeyID: k.KeyID}
		if k.Environment != "" {
			h[HeaderEnvironment] = k.Environment
		}
		if k.Source != "" {
			h[HeaderSource] = k.Source
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: h, Bytes: der})...)
	}
	return out, nil
}

// ParsePublicKeys reads every PUBLIC KEY block of a PEM file. A block
// without secprov's headers gets the fingerprint as key ID and no
// environment.
func ParsePublicKeys(b []byte, source string) ([]PublicKey, error) {
	var keys []PublicKey
	for i := 1; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s: PEM block %d is %q, want PUBLIC KEY (export keys with secprov evidence keys -o pem)", source, i, blk.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %w", source, i, err)
		}
		k := PublicKey{KeyID: blk.Headers[HeaderKeyID], Environment: blk.Headers[HeaderEnvironment], Source: source, Key: pub}
		if s := blk.Headers[HeaderSource]; s != "" {
			k.Source = source + " (" + s + ")"
		}
		if k.KeyID == "" {
			if k.KeyID, err = KeyIDOf(pub); err != nil {
				return nil, fmt.Errorf("%s: PEM block %d: %w", source, i, err)
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key", source)
	}
	return keys, nil
}
