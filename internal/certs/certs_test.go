package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueAndFiles(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	caKey, err := NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Issue(Template{Subject: pkix.Name{CommonName: "ca"}, CA: true, Now: now, Lifetime: 24 * time.Hour}, caKey.Public(), nil, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.NotBefore.Equal(now.Add(-Backdate)) {
		t.Errorf("CA %+v", ca)
	}
	leafKey, _ := NewECKey()
	leaf, err := Issue(Template{Subject: pkix.Name{CommonName: "leaf"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Now: now, Lifetime: 48 * time.Hour, NotAfter: ca.NotAfter, Backdate: time.Hour}, leafKey.Public(), ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil || !leaf.NotAfter.Equal(ca.NotAfter) || !leaf.NotBefore.Equal(now.Add(-time.Hour)) || leaf.IsCA || len(leaf.SubjectKeyId) != 20 {
		t.Errorf("leaf: %v, notAfter %v (CA %v), notBefore %v", err, leaf.NotAfter, ca.NotAfter, leaf.NotBefore)
	}
	if bl := leaf.SerialNumber.BitLen(); bl > 128 || bl < 100 || leaf.SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Errorf("serials %v %v", leaf.SerialNumber, ca.SerialNumber)
	}

	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if err := WritePair(certPath, keyPath, leaf, leafKey); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{certPath: CertMode, keyPath: KeyMode} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	c, k, err := ReadPair(certPath, keyPath)
	if err != nil || !c.Equal(leaf) || !KeysMatch(k.Public(), leafKey.Public()) {
		t.Errorf("ReadPair: %v", err)
	}
	if _, _, err := ReadPair(certPath, keyPath+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}
	if err := WriteKey(keyPath, caKey); err != nil {
		t.Fatal(err)
	}
	var d *DamagedError
	if _, _, err := ReadPair(certPath, keyPath); !errors.As(err, &d) {
		t.Errorf("mismatched pair: %v", err)
	}

	// SEC 1 keys written by earlier secprov versions (kind's CA) still load.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ec)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	if k, err := ReadKey(keyPath); err != nil || !KeysMatch(k.Public(), ec.Public()) {
		t.Errorf("SEC 1 key: %v", err)
	}
	os.WriteFile(keyPath, []byte("secret-looking garbage"), 0o600)
	if _, err := ReadKey(keyPath); !errors.As(err, &d) || d.Path != keyPath {
		t.Errorf("garbage key: %v", err)
	}
	if alg, bits := KeyInfo(leafKey.Public()); alg != AlgECDSAP256 || bits != 256 {
		t.Errorf("KeyInfo = %s %d", alg, bits)
	}
}
