package kind

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/internal/certs"
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
)

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
	k, err := certs.NewECKey()
	if err != nil {
		return nil, nil, err
	}
	c, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: "kubernetes", Organization: []string{"secprov " + name}},
		CA: true, Now: time.Now(), Lifetime: caValidity}, k.Public(), nil, k)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate without its key is a CA nobody can
	// use, and the next run would keep it.
	if err := certs.WritePair(l.CACert(), l.CAKey(), c, k); err != nil {
		return nil, nil, err
	}
	return loadCA(l)
}

// loadCA reads the CA; keys written as SEC 1 by earlier versions load too.
func loadCA(l layout) (*x509.Certificate, crypto.Signer, error) {
	cert, key, err := certs.ReadPair(l.CACert(), l.CAKey())
	var d *certs.DamagedError
	if errors.As(err, &d) {
		return nil, nil, fmt.Errorf("%w; run secprov down and up to start the cluster over", err)
	}
	return cert, key, err
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
	k, err := certs.NewECKey()
	if err != nil {
		return err
	}
	cert, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: c.user, Organization: c.groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Now: time.Now(), Lifetime: clientValidity}, k.Public(), ca, caKey)
	if err != nil {
		return err
	}
	keyPEM, err := certs.KeyPEM(k)
	if err != nil {
		return err
	}
	ctxName := c.user + "@" + clusterName
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{clusterName: {Server: server,
			CertificateAuthorityData: certs.CertPEM(ca)}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{c.user: {
			ClientCertificateData: certs.CertPEM(cert),
			ClientKeyData:         keyPEM}},
		Contexts:       map[string]*clientcmdapi.Context{ctxName: {Cluster: clusterName, AuthInfo: c.user}},
		CurrentContext: ctxName,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(c.path, data, certs.KeyMode)
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
	if !bytes.Equal(bytes.TrimSpace(cl.CertificateAuthorityData), bytes.TrimSpace(certs.CertPEM(ca))) {
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
