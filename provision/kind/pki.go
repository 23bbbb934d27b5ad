package kind

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/paths"
)

// secprov makes a kind cluster's CA itself, before create, and kubeadm
// signs the cluster's certificates with it: so the workers can be given
// the CA before they join (see discoveryKubeconfig), the CA outlives a
// node container that is recreated, and secprov's client credentials are
// issued here like the local provider's, never copied out of a node.

// Client identities of secprov's kubeconfigs, the same as the local
// provider's: the bootstrap binds the admin group.
const (
	adminUser       = "secprov:admin"
	superAdminUser  = "secprov:super-admin"
	superAdminGroup = "system:masters"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	clientValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry up issues a new client
	// certificate.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clocks a little behind this machine's (the nodes
	// share it, but clients may not).
	backdate = 5 * time.Minute
)

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// ensureCA returns the cluster CA, making it (0600 key, 0644 certificate,
// in the 0700 PKI directory) when there is none.
func ensureCA(l layout, name string) (*x509.Certificate, crypto.Signer, error) {
	if err := paths.EnsurePrivateDir(l.PKIDir()); err != nil {
		return nil, nil, err
	}
	cert, key, err := loadCA(l)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return cert, key, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: "kubernetes", Organization: []string{"secprov " + name}},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate without its key is a CA nobody can
	// use, and the next run would keep it.
	if err := atomicfile.Write(l.CAKey(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(l.CACert(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return loadCA(l)
}

func loadCA(l layout) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(l.CACert())
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(l.CAKey())
	if err != nil {
		return nil, nil, err
	}
	damaged := func(what string, err error) error {
		return fmt.Errorf("%s is damaged (%v); run secprov down and up to start the cluster over", what, err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil {
		return nil, nil, damaged(l.CACert(), errors.New("no PEM"))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, damaged(l.CACert(), err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, damaged(l.CAKey(), errors.New("no PEM"))
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, damaged(l.CAKey(), err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, damaged(l.CAKey(), errors.New("it does not match "+l.CACert()))
	}
	return cert, key, nil
}

// clientCredential is one of secprov's kubeconfigs.
type clientCredential struct {
	path   string
	user   string
	groups []string
}

func credentials(l layout) []clientCredential {
	return []clientCredential{
		{l.AdminKubeconfig(), adminUser, []string{hardening.AdminsGroup}},
		{l.SuperAdminKubeconfig(), superAdminUser, []string{superAdminGroup}},
	}
}

// writeKubeconfig issues a client certificate for c from the CA and
// writes the kubeconfig (0600) reaching the cluster at server.
func writeKubeconfig(c clientCredential, clusterName, server string, ca *x509.Certificate, caKey crypto.Signer) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: c.user, Organization: c.groups},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(clientValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	ctxName := c.user + "@" + clusterName
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{clusterName: {Server: server,
			CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{c.user: {
			ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			ClientKeyData:         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}},
		Contexts:       map[string]*clientcmdapi.Context{ctxName: {Cluster: clusterName, AuthInfo: c.user}},
		CurrentContext: ctxName,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(c.path, data, 0o600)
}

// kubeconfigProblem says why a kubeconfig must be written again: missing,
// readable by others, for another server or CA, or expiring; "" when it
// is fine.
func kubeconfigProblem(c clientCredential, server string, ca *x509.Certificate, now time.Time) string {
	cfg, err := clientcmd.LoadFromFile(c.path)
	if err != nil {
		return "missing or unreadable"
	}
	if cluster.Exposed(c.path) {
		return "readable by others"
	}
	kc, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok || cfg.Clusters[kc.Cluster] == nil || cfg.AuthInfos[kc.AuthInfo] == nil {
		return "no current context"
	}
	cl, ai := cfg.Clusters[kc.Cluster], cfg.AuthInfos[kc.AuthInfo]
	if cl.Server != server {
		return "server is " + cl.Server
	}
	if !bytes.Equal(bytes.TrimSpace(cl.CertificateAuthorityData), bytes.TrimSpace(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))) {
		return "another CA"
	}
	b, _ := pem.Decode(ai.ClientCertificateData)
	if b == nil {
		return "no client certificate"
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || cert.CheckSignatureFrom(ca) != nil {
		return "client certificate not from the cluster CA"
	}
	if cert.Subject.CommonName != c.user || !slices.Equal(cert.Subject.Organization, c.groups) {
		return "another identity"
	}
	if cert.NotAfter.Sub(now) < renewBefore {
		return "client certificate expires " + cert.NotAfter.UTC().Format(time.DateOnly)
	}
	return ""
}

// caFingerprint names the CA in outputs (never the key).
func caFingerprint(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
