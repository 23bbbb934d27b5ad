package vaultserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Lifetimes of the local Vault's certificates. The CA lives long because
// every client of the local Vault trusts it by file; the server certificate
// is short-lived and renewed by Ensure well before it expires.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
	// backdate absorbs small clock differences between processes.
	backdate = time.Hour
)

// ServerName is the host name the server certificate is valid for
// ("localhost" is what people type). A client that reaches Vault through
// a relay (kind pods at their network's gateway) checks the certificate
// against it.
const ServerName = "localhost"

// serverNames are the names the server certificate is valid for: the
// listener is on 127.0.0.1.
var (
	serverIPs   = []net.IP{net.IPv4(127, 0, 0, 1)}
	serverHosts = []string{ServerName}
)

// tlsChange says what ensureTLS had to do.
type tlsChange int

const (
	tlsUnchanged tlsChange = iota
	tlsServerRenewed
	tlsCARenewed // and the server certificate with it
)

// ensureTLS makes sure l's CA and server certificate exist, fit together and
// stay valid for more than renewBefore after now, issuing what is missing,
// damaged or about to expire.
func ensureTLS(l layout, now time.Time) (tlsChange, error) {
	if err := privateDir(l.tlsDir()); err != nil {
		return tlsUnchanged, fmt.Errorf("local Vault TLS directory: %w", err)
	}
	ca, caKey, err := loadCA(l, now)
	change := tlsUnchanged
	if err != nil {
		if ca, caKey, err = newCA(l, now); err != nil {
			return tlsUnchanged, err
		}
		change = tlsCARenewed
	}
	if change == tlsUnchanged && checkServerCert(l, ca, now) == nil {
		return tlsUnchanged, nil
	}
	if err := issueServerCert(l, ca, caKey, now, serverValidity); err != nil {
		return tlsUnchanged, err
	}
	if change == tlsUnchanged {
		change = tlsServerRenewed
	}
	return change, nil
}

// loadCA reads the CA and fails when it is missing, damaged or close to
// expiry; the caller then makes a new one.
func loadCA(l layout, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(l.caCert(), l.caKey())
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, nil, errors.New("not an ECDSA CA")
	}
	if !validUntil(cert, now) {
		return nil, nil, errors.New("CA expires soon")
	}
	return cert, key, nil
}

// validUntil: valid now and for more than renewBefore from now.
func validUntil(cert *x509.Certificate, now time.Time) bool {
	return !now.Before(cert.NotBefore) && now.Add(renewBefore).Before(cert.NotAfter)
}

// checkServerCert says why the server certificate needs to be issued again,
// or nil.
func checkServerCert(l layout, ca *x509.Certificate, now time.Time) error {
	pair, err := tls.LoadX509KeyPair(l.serverCert(), l.serverKey()) // also checks that key and cert match
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	if !validUntil(cert, now) {
		return fmt.Errorf("server certificate expires %s", cert.NotAfter.Format(time.DateOnly))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range append([]string{serverIPs[0].String()}, serverHosts...) {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err != nil {
			return err
		}
	}
	return nil
}

func newCA(l layout, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "secprov local Vault CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs server certificates only, never another CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault CA: %w", err)
	}
	// Key first: a crash between the two writes leaves a pair that does
	// not match, which the next run replaces.
	if err := writeKey(l.caKey(), key); err != nil {
		return nil, nil, err
	}
	if err := writeFile(l.caCert(), pemCert(der), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issueServerCert(l layout, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time, validity time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("local Vault server certificate: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "secprov local Vault"},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  serverIPs,
		DNSNames:     serverHosts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("local Vault server certificate: %w", err)
	}
	if err := writeKey(l.serverKey(), key); err != nil {
		return err
	}
	return writeFile(l.serverCert(), pemCert(der), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key for %s: %w", path, err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// clientTLS is the TLS configuration secprov uses to talk to the local
// Vault: its own CA only, TLS 1.2 at least.
func clientTLS(l layout) (*tls.Config, error) {
	data, err := os.ReadFile(l.caCert())
	if err != nil {
		return nil, fmt.Errorf("local Vault CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("local Vault CA %s holds no certificate", l.caCert())
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}
