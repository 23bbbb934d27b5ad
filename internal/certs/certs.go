// Package certs is the one implementation of what every PKI secprov keeps
// shares — the local control plane's, a kind cluster's CA and client
// credentials, the local Vault's TLS: key types, random serials, validity
// with a backdate, certificate signing, and PEM files with their modes
// (keys 0600, certificates and public keys 0644), written atomically.
// What each certificate says (subject, usages, names, lifetime) and when
// it is renewed stays with its owner.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"secprov.dev/secprov/internal/atomicfile"
)

// File modes of what Write* store.
const (
	KeyMode  os.FileMode = 0o600
	CertMode os.FileMode = 0o644
)

// Backdate is how far before its issue a certificate becomes valid, for
// clocks of other processes or machines that are a little behind ours.
const Backdate = 5 * time.Minute

// Key algorithms as KeyInfo names them.
const (
	AlgECDSAP256 = "ECDSA-P256"
	AlgRSA       = "RSA"
)

// NewECKey makes an ECDSA P-256 key, secprov's key for every TLS
// certificate: small, fast and accepted by etcd, every Kubernetes
// component, Vault and client-go.
func NewECKey() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// NewRSAKey makes an RSA key of bits (for signing keys whose verifiers
// may only know RS256).
func NewRSAKey(bits int) (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }

// Serial returns a random positive serial of up to 128 bits, so serials
// are unpredictable and never collide in practice.
func Serial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate certificate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SubjectKeyID follows RFC 7093 section 2 method 1: the leftmost 160 bits
// of the SHA-256 of the subjectPublicKey bit string.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// KeyInfo names a public key's algorithm and size.
func KeyInfo(pub crypto.PublicKey) (string, int) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgECDSAP256, 256
		}
		return "ECDSA-" + k.Curve.Params().Name, k.Curve.Params().BitSize
	case *rsa.PublicKey:
		return AlgRSA, k.N.BitLen()
	default:
		return fmt.Sprintf("%T", pub), 0
	}
}

// KeysMatch reports whether two public keys are the same key.
func KeysMatch(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// Template is what a certificate says; Issue adds the serial, the subject
// key ID and the basic constraints.
type Template struct {
	Subject pkix.Name
	// CA makes a CA that signs leaves only (path length 0).
	CA bool
	// KeyUsage defaults to certSign, CRLSign and digitalSignature for a
	// CA, digitalSignature for a leaf.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	DNSNames    []string
	IPAddresses []net.IP
	// Validity runs from Now (less Backdate) for Lifetime, cut short at
	// NotAfter when that is set and earlier (a leaf never outlives its CA).
	Now      time.Time
	Lifetime time.Duration
	NotAfter time.Time
	// Backdate overrides the package's Backdate when not zero.
	Backdate time.Duration
}

// Issue signs a certificate for pub with signer on behalf of parent; a nil
// parent makes it self-signed (signer is then pub's own key).
func Issue(t Template, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer) (*x509.Certificate, error) {
	serial, err := Serial()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	back := t.Backdate
	if back == 0 {
		back = Backdate
	}
	notAfter := t.Now.Add(t.Lifetime)
	if !t.NotAfter.IsZero() && t.NotAfter.Before(notAfter) {
		notAfter = t.NotAfter
	}
	usage := t.KeyUsage
	if usage == 0 {
		usage = x509.KeyUsageDigitalSignature
		if t.CA {
			usage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               t.Subject,
		NotBefore:             t.Now.Add(-back),
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           t.ExtKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  t.CA,
		MaxPathLenZero:        t.CA,
		DNSNames:              t.DNSNames,
		IPAddresses:           t.IPAddresses,
		SubjectKeyId:          ski,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", t.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// CertPEM is the certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM is the private key as PKCS#8 PEM, which every consumer secprov
// feeds (Go, etcd, kubeadm, Vault, client-go) reads.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PublicKeyPEM is the public key as PKIX PEM.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// WriteKey stores key as PKCS#8 PEM, mode 0600 from the first byte.
func WriteKey(path string, key crypto.Signer) error {
	data, err := KeyPEM(key)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, data, KeyMode)
}

// WriteCert stores the certificate as PEM, mode 0644.
func WriteCert(path string, c *x509.Certificate) error {
	return atomicfile.Write(path, CertPEM(c), CertMode)
}

// WritePublicKey stores data (PublicKeyPEM) as a public key file, 0644.
func WritePublicKey(path string, data []byte) error {
	return atomicfile.Write(path, data, CertMode)
}

// WritePair stores a key and its certificate, the key first: an
// interruption leaves a new key beside the old certificate, a mismatch the
// next run replaces, never a certificate whose key is lost.
func WritePair(certPath, keyPath string, c *x509.Certificate, key crypto.Signer) error {
	if err := WriteKey(keyPath, key); err != nil {
		return err
	}
	return WriteCert(certPath, c)
}

// DamagedError is a certificate or key file that exists but cannot be
// used. Its message names the file, never its content.
type DamagedError struct {
	What string // "certificate", "private key"
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s %s is corrupted (%v)", e.What, e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// readPEM returns the first PEM block of path. A missing file is reported
// with os.ErrNotExist in the chain.
func readPEM(path, what string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, &DamagedError{what, path, errors.New("no PEM block found")}
	}
	return block, nil
}

// ReadCert reads a PEM certificate file.
func ReadCert(path string) (*x509.Certificate, error) {
	block, err := readPEM(path, "certificate")
	if err != nil {
		return nil, err
	}
	if block.Type != "CERTIFICATE" {
		return nil, &DamagedError{"certificate", path, fmt.Errorf("PEM block is %q, want CERTIFICATE", block.Type)}
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, &DamagedError{"certificate", path, err}
	}
	return c, nil
}

// ReadKey reads a PEM private key file: PKCS#8 (what WriteKey writes) and
// the PKCS#1 and SEC 1 forms, so a key restored from another tool's
// backup, or written by an earlier secprov, is usable.
func ReadKey(path string) (crypto.Signer, error) {
	block, err := readPEM(path, "private key")
	if err != nil {
		return nil, err
	}
	var k any
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		err = fmt.Errorf("PEM block is %q, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		// x509 parse errors describe structure, never key bytes.
		return nil, &DamagedError{"private key", path, err}
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, &DamagedError{"private key", path, fmt.Errorf("unsupported key type %T", k)}
	}
	return s, nil
}

// ReadPair reads a certificate and its key and checks that they belong
// together.
func ReadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	c, err := ReadCert(certPath)
	if err != nil {
		return nil, nil, err
	}
	k, err := ReadKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	if !KeysMatch(c.PublicKey, k.Public()) {
		return nil, nil, &DamagedError{"private key", keyPath, fmt.Errorf("it does not match %s", certPath)}
	}
	return c, k, nil
}
