package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/internal/certs"
)

const (
	keyMode  = certs.KeyMode
	certMode = certs.CertMode
)

type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

type ensurer struct {
	dir      string
	o        Options
	now      time.Time
	log      *slog.Logger
	b        *Bundle
	svcIP    netip.Addr
	extraIPs []netip.Addr
	extraDNS []string
}

func (e *ensurer) path(base string) string { return filepath.Join(e.dir, base) }

func (e *ensurer) ensureCA(s caSpec) (*issuer, error) {
	certPath, keyPath := e.path(s.base+".crt"), e.path(s.base+".key")
	cn := fmt.Sprintf(s.cn, e.o.ClusterName)
	log := e.log.With("item", s.name)
	startOver := fmt.Sprintf("move %s aside and run secprov again to create a new PKI (existing kubeconfigs and service-account tokens of cluster %q then stop working)", e.dir, e.o.ClusterName)

	cert, certErr := loadCert(certPath)
	key, keyErr := loadKey(keyPath)
	switch {
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, certErr
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, keyErr
	case cert == nil && key == nil:
		k, err := certs.NewECKey()
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", s.name, err)
		}
		c, err := e.writeCACert(certPath, keyPath, cn, k, true)
		if err != nil {
			return nil, err
		}
		log.Info("created CA", "subject", cn, "notAfter", c.NotAfter)
		e.b.Changed = append(e.b.Changed, s.name)
		cert, key = c, k
	case key == nil:
		return nil, fmt.Errorf("CA certificate %s exists but its key %s is missing: secprov cannot sign with this CA and never replaces a CA on its own; restore the key from a backup, or %s", certPath, keyPath, startOver)
	case cert == nil:
		// What an interrupted first run leaves behind (the key is written
		// first). The key is the CA's identity, so a new self-signed
		// certificate for it keeps every certificate it signed valid.
		c, err := e.writeCACert(certPath, keyPath, cn, key, false)
		if err != nil {
			return nil, err
		}
		log.Warn("CA certificate was missing; re-issued it for the existing CA key", "subject", cn)
		e.b.Changed = append(e.b.Changed, s.name)
		cert = c
	default:
		if !certs.KeysMatch(cert.PublicKey, key.Public()) {
			return nil, fmt.Errorf("CA key %s does not match certificate %s: secprov never replaces a CA on its own, because every certificate and kubeconfig of cluster %q trusts it; restore the matching key from a backup, or %s", keyPath, certPath, e.o.ClusterName, startOver)
		}
		if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("%s is not a CA certificate (no CA basic constraint or certSign usage); restore the CA from a backup, or %s", certPath, startOver)
		}
		if !e.now.Before(cert.NotAfter) {
			return nil, fmt.Errorf("CA %s of cluster %q expired on %s: nothing it signs is trusted any more; %s", certPath, e.o.ClusterName, cert.NotAfter.UTC().Format(time.RFC3339), startOver)
		}
		if cert.NotAfter.Sub(e.now) < e.o.RenewBefore {
			log.Warn("CA expires soon; leaf certificates are cut to its lifetime. Plan a CA rotation", "notAfter", cert.NotAfter)
		}
	}
	if err := e.fixModes(log, certPath, keyPath); err != nil {
		return nil, err
	}
	e.addCertItem(s.name, certPath, keyPath, cert)
	return &issuer{cert: cert, key: key}, nil
}

// writeCACert self-signs a CA certificate for key; with writeKey the key is
// stored first, so an interruption leaves a key without certificate (which
// the next run repairs) and never a certificate without its key.
func (e *ensurer) writeCACert(certPath, keyPath, cn string, key crypto.Signer, writeKey bool) (*x509.Certificate, error) {
	// The CAs sign leaves only; an intermediate they signed would be
	// rejected (certs makes every CA path length 0).
	c, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: cn, Organization: []string{"secprov"}}, CA: true,
		Now: e.now, Lifetime: e.o.CAValidity}, key.Public(), nil, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	if writeKey {
		return c, certs.WritePair(certPath, keyPath, c, key)
	}
	return c, certs.WriteCert(certPath, c)
}

// wantLeaf is what a leaf certificate must say, derived from spec and
// options; comparing an existing certificate with it decides renewal.
type wantLeaf struct {
	cn   string
	orgs []string
	eku  []x509.ExtKeyUsage
	dns  []string
	ips  []netip.Addr
}

func (e *ensurer) want(s leafSpec) wantLeaf {
	w := wantLeaf{cn: s.cn, orgs: s.orgs}
	if s.usage&serving != 0 {
		w.eku = append(w.eku, x509.ExtKeyUsageServerAuth)
	}
	if s.usage&client != 0 {
		w.eku = append(w.eku, x509.ExtKeyUsageClientAuth)
	}
	if s.loopback {
		w.dns = append(w.dns, "localhost")
		w.ips = append(w.ips, loopbackIPs()...)
	}
	if s.apiserver {
		w.dns = append(w.dns, apiServerDNSNames...)
		w.dns = append(w.dns, e.extraDNS...)
		w.ips = append(w.ips, e.svcIP)
		w.ips = append(w.ips, e.extraIPs...)
	}
	w.dns = normDNS(w.dns)
	w.ips = normIPs(w.ips)
	return w
}

func (e *ensurer) leafNotAfter(iss *issuer) time.Time {
	na := e.now.Add(e.o.CertValidity)
	if iss.cert.NotAfter.Before(na) {
		na = iss.cert.NotAfter
	}
	return na
}

func (e *ensurer) ensureLeaf(s leafSpec, iss *issuer) error {
	certPath, keyPath := e.path(s.base+".crt"), e.path(s.base+".key")
	log := e.log.With("item", s.name)
	w := e.want(s)

	cert, certErr := loadCert(certPath)
	key, keyErr := loadKey(keyPath)
	var reason string
	switch {
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return certErr
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return keyErr
	case cert == nil && key == nil:
		reason = "" // created, not renewed
	case cert == nil || key == nil:
		reason = "certificate or key was missing"
	default:
		reason = e.leafProblem(w, cert, key, iss)
		if reason == "" {
			if err := e.fixModes(log, certPath, keyPath); err != nil {
				return err
			}
			e.addCertItem(s.name, certPath, keyPath, cert)
			return nil
		}
	}

	k, err := certs.NewECKey()
	if err != nil {
		return fmt.Errorf("create %s: %w", s.name, err)
	}
	c, err := certs.Issue(certs.Template{Subject: pkix.Name{CommonName: w.cn, Organization: w.orgs}, ExtKeyUsage: w.eku,
		DNSNames: w.dns, IPAddresses: toNetIPs(w.ips), Now: e.now, Lifetime: e.o.CertValidity, NotAfter: iss.cert.NotAfter}, k.Public(), iss.cert, iss.key)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", s.name, err)
	}
	if err := certs.WritePair(certPath, keyPath, c, k); err != nil {
		return err
	}
	if reason == "" {
		log.Info("created certificate", "subject", w.cn, "notAfter", c.NotAfter)
	} else {
		log.Info("renewed certificate", "subject", w.cn, "reason", reason, "notAfter", c.NotAfter)
	}
	e.b.Changed = append(e.b.Changed, s.name)
	e.addCertItem(s.name, certPath, keyPath, c)
	return nil
}

// leafProblem says why an existing leaf must be replaced, or "" if it is fine.
func (e *ensurer) leafProblem(w wantLeaf, cert *x509.Certificate, key crypto.Signer, iss *issuer) string {
	if alg, _ := certs.KeyInfo(key.Public()); alg != AlgECDSAP256 {
		return fmt.Sprintf("key is %s, policy is %s", alg, AlgECDSAP256)
	}
	if !certs.KeysMatch(cert.PublicKey, key.Public()) {
		return "key does not match certificate (interrupted write?)"
	}
	if err := cert.CheckSignatureFrom(iss.cert); err != nil {
		return "not signed by the current CA"
	}
	if cert.IsCA {
		return "is a CA certificate"
	}
	if cert.Subject.CommonName != w.cn || !slices.Equal(cert.Subject.Organization, w.orgs) {
		return fmt.Sprintf("subject changed (have CN=%q O=%q)", cert.Subject.CommonName, cert.Subject.Organization)
	}
	if !slices.Equal(sortedEKU(cert.ExtKeyUsage), sortedEKU(w.eku)) || len(cert.UnknownExtKeyUsage) > 0 {
		return "extended key usage changed"
	}
	if !slices.Equal(normDNS(cert.DNSNames), w.dns) || !slices.Equal(normIPs(fromNetIPs(cert.IPAddresses)), w.ips) {
		return fmt.Sprintf("SANs changed (have DNS %v IP %v, want DNS %v IP %v)", cert.DNSNames, cert.IPAddresses, w.dns, w.ips)
	}
	if e.now.Before(cert.NotBefore) {
		return "not valid yet (clock moved back?)"
	}
	if !e.now.Before(cert.NotAfter) {
		return "expired"
	}
	if cert.NotAfter.Sub(e.now) < e.o.RenewBefore && e.leafNotAfter(iss).After(cert.NotAfter) {
		return fmt.Sprintf("expires within %s", e.o.RenewBefore)
	}
	return ""
}

func (e *ensurer) ensureServiceAccountKey() error {
	keyPath, pubPath := e.b.ServiceAccountKey, e.b.ServiceAccountPub
	log := e.log.With("item", saName)
	key, err := loadKey(keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		key, err = certs.NewRSAKey(ServiceAccountKeyBits)
		if err != nil {
			return fmt.Errorf("create service-account signing key: %w", err)
		}
		if err := certs.WriteKey(keyPath, key); err != nil {
			return err
		}
		log.Info("created service-account signing key", "algorithm", AlgRSA, "bits", ServiceAccountKeyBits)
		e.b.Changed = append(e.b.Changed, saName)
	case err != nil:
		return err
	default:
		// An existing key is kept even if policy now prefers another size:
		// replacing it would invalidate every issued token, which is a
		// rotation the user must ask for.
		if alg, bits := certs.KeyInfo(key.Public()); alg == AlgRSA && bits < 2048 {
			return fmt.Errorf("service-account key %s is RSA-%d, below the 2048-bit minimum: rotate it (move it aside and run secprov again; existing tokens stop working)", keyPath, bits)
		}
	}
	pubPEM, err := certs.PublicKeyPEM(key.Public())
	if err != nil {
		return fmt.Errorf("encode service-account public key: %w", err)
	}
	// The public half is derived data: rewrite it whenever it is missing,
	// unreadable or stale.
	if have, err := os.ReadFile(pubPath); err != nil || !bytes.Equal(have, pubPEM) {
		if err == nil {
			log.Warn("service-account public key did not match the private key; rewrote it", "file", pubPath)
		}
		if err := certs.WritePublicKey(pubPath, pubPEM); err != nil {
			return err
		}
	}
	if err := e.fixModes(log, pubPath, keyPath); err != nil {
		return err
	}
	alg, bits := certs.KeyInfo(key.Public())
	e.b.items = append(e.b.items, Item{
		Name: saName, KeyFile: filepath.Base(keyPath), PublicKeyFile: filepath.Base(pubPath),
		KeyAlgorithm: alg, KeyBits: bits,
	})
	return nil
}

// fixModes restores 0644 on a certificate (or public key) and 0600 on a key
// if someone changed them.
func (e *ensurer) fixModes(log *slog.Logger, certPath, keyPath string) error {
	return errors.Join(fixMode(log, certPath, certMode), fixMode(log, keyPath, keyMode))
}

func fixMode(log *slog.Logger, path string, mode os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check mode of %s: %w", path, err)
	}
	if fi.Mode().Perm() == mode {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("restore mode %o on %s: %w", mode, path, err)
	}
	log.Warn("restored file mode", "file", path, "was", fmt.Sprintf("%o", fi.Mode().Perm()), "now", fmt.Sprintf("%o", mode))
	return nil
}

func (e *ensurer) addCertItem(name, certPath, keyPath string, c *x509.Certificate) {
	alg, bits := certs.KeyInfo(c.PublicKey)
	e.b.items = append(e.b.items, Item{
		Name: name, CertFile: filepath.Base(certPath), KeyFile: filepath.Base(keyPath),
		KeyAlgorithm: alg, KeyBits: bits, IsCA: c.IsCA,
		CommonName: c.Subject.CommonName, Organization: c.Subject.Organization,
		NotAfter: c.NotAfter.UTC(), CertSHA256: certSHA256(c),
	})
}

type manifest struct {
	Cluster string `json:"cluster"`
	Items   []Item `json:"items"`
}

// writeManifest records key types and sizes for later checks; it rewrites
// the file only when its content changes, so a no-op Ensure touches nothing.
func (e *ensurer) writeManifest() error {
	data, err := json.MarshalIndent(manifest{Cluster: e.o.ClusterName, Items: e.b.items}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", e.b.Manifest, err)
	}
	data = append(data, '\n')
	if have, err := os.ReadFile(e.b.Manifest); err == nil && bytes.Equal(have, data) {
		return fixMode(e.log, e.b.Manifest, certMode)
	}
	return atomicfile.Write(e.b.Manifest, data, certMode)
}

func normDNS(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func normIPs(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func sortedEKU(u []x509.ExtKeyUsage) []x509.ExtKeyUsage {
	out := slices.Clone(u)
	slices.Sort(out)
	return slices.Compact(out)
}
