package vaultserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"secprov.dev/secprov/internal/certs"
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
func loadCA(l layout, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	cert, key, err := certs.ReadPair(l.caCert(), l.caKey())
	if err != nil {
		return nil, nil, err
	}
	if _, ok := key.(*ecdsa.PrivateKey); !ok || !cert.IsCA {
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
	cert, _, err := certs.ReadPair(l.serverCert(), l.serverKey()) // also checks that key and cert match
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

func newCA(l layout, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := certs.NewECKey()
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault CA: generate key: %w", err)
	}
	// It signs server certificates only, never another CA (certs makes
	// every CA path length 0).
	cert, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: "secprov local Vault CA"}, CA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, Now: now, Lifetime: caValidity, Backdate: backdate}, key.Public(), nil, key)
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault CA: %w", err)
	}
	if err := certs.WritePair(l.caCert(), l.caKey(), cert, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issueServerCert(l layout, ca *x509.Certificate, caKey crypto.Signer, now time.Time, validity time.Duration) error {
	key, err := certs.NewECKey()
	if err != nil {
		return fmt.Errorf("local Vault server certificate: generate key: %w", err)
	}
	cert, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: "secprov local Vault"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: serverIPs, DNSNames: serverHosts,
		Now: now, Lifetime: validity, Backdate: backdate}, key.Public(), ca, caKey)
	if err != nil {
		return fmt.Errorf("local Vault server certificate: %w", err)
	}
	return certs.WritePair(l.serverCert(), l.serverKey(), cert, key)
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
