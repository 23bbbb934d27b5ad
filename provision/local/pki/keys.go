package pki

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
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"

	"secprov.dev/secprov/internal/atomicfile"
)

var randReader = rand.Reader

func newECKey() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), randReader) }

func newRSAKey(bits int) (crypto.Signer, error) { return rsa.GenerateKey(randReader, bits) }

// newSerial returns a random positive serial of up to 128 bits, so serials
// are unpredictable and never collide in practice.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(randReader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate certificate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID follows RFC 7093 section 2 method 1: the leftmost 160 bits
// of the SHA-256 of the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
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

// keyInfo names a public key's algorithm and size as Item records them.
func keyInfo(pub crypto.PublicKey) (string, int) {
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

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func certSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// writeKeyFile stores key as PKCS#8 PEM, mode 0600 from the first byte.
func writeKeyFile(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key for %s: %w", path, err)
	}
	return atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), keyMode)
}

// readPEM returns the first PEM block of path. A missing file is reported
// with os.ErrNotExist in the chain; anything unreadable is an error that
// names the file and says what to do — never the file's content.
func readPEM(path, what string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, corrupt(path, what, errors.New("no PEM block found"))
	}
	return block, nil
}

func corrupt(path, what string, err error) error {
	return fmt.Errorf("%s %s is corrupted (%w): restore it from a backup, or move it aside so secprov creates a new one (for a CA key that means a new CA)", what, path, err)
}

func loadCert(path string) (*x509.Certificate, error) {
	block, err := readPEM(path, "certificate")
	if err != nil {
		return nil, err
	}
	if block.Type != "CERTIFICATE" {
		return nil, corrupt(path, "certificate", fmt.Errorf("PEM block is %q, want CERTIFICATE", block.Type))
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, corrupt(path, "certificate", err)
	}
	return c, nil
}

// loadKey accepts PKCS#8 (what we write) and the PKCS#1 / SEC 1 forms, so a
// key restored from another tool's backup is usable.
func loadKey(path string) (crypto.Signer, error) {
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
		return nil, corrupt(path, "private key", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, corrupt(path, "private key", fmt.Errorf("unsupported key type %T", k))
	}
	return s, nil
}

func fromNetIPs(ips []net.IP) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a)
		}
	}
	return out
}
