package kind

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/internal/certs"
)

// TestPKI: the kind CA and kubeconfigs are made with internal/certs (keys
// 0600, certificates 0644), a CA key written as SEC 1 by an earlier
// version still loads, a damaged one says how to start over, and a fresh
// kubeconfig needs no rewrite.
func TestPKI(t *testing.T) {
	l := newLayout(t.TempDir())
	ca, key, err := ensureCA(l, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{l.CACert(): certs.CertMode, l.CAKey(): certs.KeyMode} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	if !ca.IsCA || ca.Subject.CommonName != "kubernetes" || ca.SerialNumber.BitLen() > 128 {
		t.Errorf("CA %v serial %v", ca.Subject, ca.SerialNumber)
	}
	again, _, err := ensureCA(l, "c1")
	if err != nil || !again.Equal(ca) {
		t.Fatalf("second ensureCA made another CA: %v", err)
	}

	// Earlier versions wrote the CA key as SEC 1.
	der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.CAKey(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if again, _, err := ensureCA(l, "c1"); err != nil || !again.Equal(ca) {
		t.Errorf("SEC 1 CA key: %v", err)
	}

	c := credentials(l)[0]
	const server = "https://127.0.0.1:6443"
	if p := kubeconfigProblem(c, server, ca, time.Now()); p != "missing or unreadable" {
		t.Errorf("before writing: %q", p)
	}
	if err := writeKubeconfig(c, "c1", server, ca, key); err != nil {
		t.Fatal(err)
	}
	if p := kubeconfigProblem(c, server, ca, time.Now()); p != "" {
		t.Errorf("fresh kubeconfig: %q", p)
	}
	if p := kubeconfigProblem(c, server, ca, time.Now().Add(clientValidity)); !strings.Contains(p, "expires") {
		t.Errorf("a year later: %q", p)
	}

	if err := os.WriteFile(l.CAKey(), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureCA(l, "c1"); err == nil || !strings.Contains(err.Error(), "secprov down and up") || strings.Contains(err.Error(), "garbage") {
		t.Errorf("damaged CA key: %v", err)
	}
}
