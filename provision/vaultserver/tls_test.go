package vaultserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"secprov.dev/secprov/internal/certs"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureTLSFresh(t *testing.T) {
	l := layout(filepath.Join(t.TempDir(), "vault"))
	now := time.Now()
	change, err := ensureTLS(l, now)
	if err != nil {
		t.Fatal(err)
	}
	if change != tlsCARenewed {
		t.Errorf("first ensureTLS: change %d, want a new CA", change)
	}
	for path, want := range map[string]os.FileMode{
		l.tlsDir(): 0o700 | os.ModeDir, l.caKey(): 0o600, l.serverKey(): 0o600, l.caCert(): 0o644, l.serverCert(): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	ca, srv := readCert(t, l.caCert()), readCert(t, l.serverCert())
	for name, c := range map[string]*x509.Certificate{"CA": ca, "server": srv} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s key is %T, want ECDSA P-256", name, c.PublicKey)
		}
	}
	if !ca.IsCA || !ca.MaxPathLenZero {
		t.Errorf("CA: IsCA %v MaxPathLenZero %v", ca.IsCA, ca.MaxPathLenZero)
	}
	if srv.IsCA || len(srv.ExtKeyUsage) != 1 || srv.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("server certificate: IsCA %v, ext key usage %v", srv.IsCA, srv.ExtKeyUsage)
	}
	if got := srv.NotAfter.Sub(now); got < serverValidity-time.Minute || got > serverValidity+time.Minute {
		t.Errorf("server certificate valid for %s, want %s", got, serverValidity)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "vault.example.com"}); err == nil {
		t.Error("server certificate is valid for vault.example.com")
	}
	cfg, err := clientTLS(l)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("client MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
}

// TestEnsureTLSRenews covers each reason to issue again, and that a sound
// set is left alone.
func TestEnsureTLSRenews(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, l layout, now time.Time)
		at     time.Duration // ensureTLS runs at now+at
		want   tlsChange
	}{
		{name: "sound", damage: func(*testing.T, layout, time.Time) {}, want: tlsUnchanged},
		{name: "server expires in 10 days", want: tlsServerRenewed, damage: func(t *testing.T, l layout, now time.Time) {
			ca, key, err := loadCA(l, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := issueServerCert(l, ca, key, now, 10*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server expires in 40 days", want: tlsUnchanged, damage: func(t *testing.T, l layout, now time.Time) {
			ca, key, err := loadCA(l, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := issueServerCert(l, ca, key, now, 40*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a year later", at: serverValidity - 20*24*time.Hour, want: tlsServerRenewed, damage: func(*testing.T, layout, time.Time) {}},
		{name: "server key does not match", want: tlsServerRenewed, damage: func(t *testing.T, l layout, _ time.Time) {
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if err := certs.WriteKey(l.serverKey(), other); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server cert missing", want: tlsServerRenewed, damage: func(t *testing.T, l layout, _ time.Time) {
			if err := os.Remove(l.serverCert()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "CA key missing", want: tlsCARenewed, damage: func(t *testing.T, l layout, _ time.Time) {
			if err := os.Remove(l.caKey()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "CA expires", at: caValidity - 10*24*time.Hour, want: tlsCARenewed, damage: func(*testing.T, layout, time.Time) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := layout(filepath.Join(t.TempDir(), "vault"))
			now := time.Now()
			if _, err := ensureTLS(l, now); err != nil {
				t.Fatal(err)
			}
			caBefore, _ := os.ReadFile(l.caCert())
			tt.damage(t, l, now)
			srvBefore, _ := os.ReadFile(l.serverCert())
			change, err := ensureTLS(l, now.Add(tt.at))
			if err != nil {
				t.Fatal(err)
			}
			if change != tt.want {
				t.Errorf("change %d, want %d", change, tt.want)
			}
			caAfter, _ := os.ReadFile(l.caCert())
			srvAfter, _ := os.ReadFile(l.serverCert())
			if sameCA := bytes.Equal(caBefore, caAfter); sameCA != (tt.want != tlsCARenewed) {
				t.Errorf("CA kept: %v, want %v", sameCA, tt.want != tlsCARenewed)
			}
			if sameSrv := bytes.Equal(srvBefore, srvAfter); sameSrv != (tt.want == tlsUnchanged) {
				t.Errorf("server certificate kept: %v, want %v", sameSrv, tt.want == tlsUnchanged)
			}
			if err := checkServerCert(l, readCert(t, l.caCert()), now.Add(tt.at)); err != nil {
				t.Errorf("after ensureTLS: %v", err)
			}
		})
	}
}
