package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
)

// pkiChecks prove the certificates and the file permissions of the
// control plane (SP-CERT-001, SP-FILE-001).
func pkiChecks() []Check {
	return []Check{
		{ID: blueprints.CertificatesValid, Run: checkCertificates, Needs: needs(Processes, Files)},
		{ID: blueprints.FilesPrivate, Run: checkFileModes, Needs: needs(Processes, Files)},
	}
}

// expiryWarning is how close to expiry a certificate makes SP-CERT-001
// warn; `secprov up` renews certificates inside this window.
var expiryWarning = blueprints.CertificatesValid.Thresholds().CertRenewWithin

type fileKind int

const (
	kindCert       fileKind = iota // PEM certificates (a CA bundle or a leaf)
	kindKubeconfig                 // embedded or referenced client and CA certificates
	kindPublicKey                  // service-account verification keys
	kindPrivate                    // a key or credential: only its mode matters
)

// Flags naming certificate, kubeconfig and key files, per component.
var fileFlags = map[string]map[string]fileKind{
	APIServer: {
		"tls-cert-file": kindCert, "client-ca-file": kindCert, "etcd-cafile": kindCert, "etcd-certfile": kindCert,
		"kubelet-client-certificate": kindCert, "kubelet-certificate-authority": kindCert,
		"requestheader-client-ca-file": kindCert, "proxy-client-cert-file": kindCert,
		"service-account-key-file": kindPublicKey,
		"tls-private-key-file":     kindPrivate, "etcd-keyfile": kindPrivate, "kubelet-client-key": kindPrivate,
		"proxy-client-key-file": kindPrivate, "service-account-signing-key-file": kindPrivate,
		"encryption-provider-config": kindPrivate, "token-auth-file": kindPrivate,
	},
	Etcd: {
		"cert-file": kindCert, "trusted-ca-file": kindCert, "peer-cert-file": kindCert,
		"peer-trusted-ca-file": kindCert, "client-cert-file": kindCert,
		"key-file": kindPrivate, "peer-key-file": kindPrivate, "client-key-file": kindPrivate,
	},
	ControllerManager: {
		"root-ca-file": kindCert, "cluster-signing-cert-file": kindCert, "client-ca-file": kindCert,
		"requestheader-client-ca-file": kindCert, "kubeconfig": kindKubeconfig,
		"authentication-kubeconfig": kindKubeconfig, "authorization-kubeconfig": kindKubeconfig,
		"service-account-private-key-file": kindPrivate, "cluster-signing-key-file": kindPrivate,
	},
	Scheduler: {
		"client-ca-file": kindCert, "requestheader-client-ca-file": kindCert, "kubeconfig": kindKubeconfig,
		"authentication-kubeconfig": kindKubeconfig, "authorization-kubeconfig": kindKubeconfig,
	},
}

// controlPlaneFiles gathers every certificate, kubeconfig and key file the
// control plane uses: from the running components' flags (what is really
// used) and from the provider's Files and PrivateFiles (what it wrote).
func controlPlaneFiles(ctx context.Context, t Target, r *findings) map[string]fileKind {
	out := map[string]fileKind{}
	add := func(path string, k fileKind) {
		if path == "" || path == "-" {
			return
		}
		if old, ok := out[path]; !ok || old == kindPrivate {
			out[path] = k
		}
	}
	for _, name := range []string{Etcd, APIServer, ControllerManager, Scheduler} {
		c, err := t.Component(ctx, name)
		if err != nil {
			r.errorf("read %s's arguments: %v", name, err)
			continue
		}
		args := Args(c.Args)
		for flag, k := range fileFlags[name] {
			add(args[flag], k)
		}
	}
	f := t.Info().Files
	for _, p := range []string{f.CACert, f.EtcdCACert, f.EtcdServerCert, f.EtcdPeerCert, f.EtcdSelfClientCert, f.APIServerEtcdCert,
		f.APIServerCert, f.KubeletClientCert, f.FrontProxyCACert, f.FrontProxyClientCert} {
		add(p, kindCert)
	}
	add(f.ServiceAccountPub, kindPublicKey)
	add(f.ControllerManagerKubeconfig, kindKubeconfig)
	add(f.SchedulerKubeconfig, kindKubeconfig)
	for _, p := range []string{f.CAKey, f.EtcdServerKey, f.EtcdPeerKey, f.EtcdSelfClientKey, f.APIServerEtcdKey, f.APIServerKey,
		f.KubeletClientKey, f.FrontProxyClientKey, f.ServiceAccountKey, f.EncryptionConfig, f.AuditPolicy, f.AdmissionConfig, f.AuditLog} {
		add(p, kindPrivate)
	}
	for _, p := range t.Info().PrivateFiles {
		if strings.HasSuffix(p, ".kubeconfig") {
			add(p, kindKubeconfig)
		} else {
			add(p, kindPrivate)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkCertificates: every certificate is valid now, not expiring within
// expiryWarning (warn), signed with SHA-2 and has a key of at least P-256
// or RSA-2048; the service-account keys are as strong.
func checkCertificates(ctx context.Context, t Target) Outcome {
	var r findings
	files := controlPlaneFiles(ctx, t, &r)
	now := time.Now()
	n := 0
	for _, path := range sortedKeys(files) {
		kind := files[path]
		if kind == kindPrivate {
			continue
		}
		data, err := t.ReadFile(ctx, path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a path of the provider's layout this cluster does not use
		}
		if err != nil {
			r.errorf("read %s: %v", path, err)
			continue
		}
		switch kind {
		case kindCert:
			certs, err := parseCerts(data)
			if err != nil {
				r.fail(Evidence{Object: path, Field: "PEM", Want: "certificates", Got: err.Error()}, path+" holds no readable certificate")
				continue
			}
			for _, c := range certs {
				judgeCert(&r, path, c, now)
				n++
			}
		case kindKubeconfig:
			n += judgeKubeconfig(ctx, t, &r, path, data, now)
		case kindPublicKey:
			keys := publicKeys(data)
			if len(keys) == 0 {
				r.fail(Evidence{Object: path, Field: "PEM", Want: "public keys", Got: "none"}, path+" holds no public key")
			}
			for _, k := range keys {
				desc, strong := keyStrength(k)
				ev := Evidence{Object: path, Field: "key", Want: "ECDSA P-256+, RSA 2048+ or Ed25519", Got: desc}
				if strong {
					r.ok(ev)
				} else {
					r.fail(ev, path+" holds a weak key ("+desc+")")
				}
				n++
			}
		}
	}
	if n == 0 && len(r.errs) == 0 {
		// The components could not serve TLS without them: the flags and
		// the provider's layout name files that are not there.
		r.errorf("no certificate or kubeconfig file that the components' flags and the provider name exists")
	}
	return r.outcome(fmt.Sprintf("%d certificates and keys are valid for more than %d days with strong keys", n, int(expiryWarning.Hours()/24)))
}

func judgeKubeconfig(ctx context.Context, t Target, r *findings, path string, data []byte, now time.Time) int {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		r.fail(Evidence{Object: path, Field: "kubeconfig", Want: "parses", Got: err.Error()}, path+" is not a readable kubeconfig")
		return 0
	}
	n := 0
	judge := func(field string, pemData []byte, file string) {
		if len(pemData) == 0 && file != "" {
			var err error
			if pemData, err = t.ReadFile(ctx, file); err != nil {
				r.errorf("read %s (%s of %s): %v", file, field, path, err)
				return
			}
		}
		if len(pemData) == 0 {
			return
		}
		certs, err := parseCerts(pemData)
		if err != nil {
			r.fail(Evidence{Object: path, Field: field, Want: "certificates", Got: err.Error()}, path+" "+field+" holds no readable certificate")
			return
		}
		for _, c := range certs {
			judgeCert(r, path+" "+field, c, now)
			n++
		}
	}
	for _, name := range sortedKeys(cfg.AuthInfos) {
		a := cfg.AuthInfos[name]
		judge("users."+name+".client-certificate", a.ClientCertificateData, a.ClientCertificate)
	}
	for _, name := range sortedKeys(cfg.Clusters) {
		c := cfg.Clusters[name]
		judge("clusters."+name+".certificate-authority", c.CertificateAuthorityData, c.CertificateAuthority)
	}
	return n
}

// judgeCert records one certificate's validity window, signature and key.
func judgeCert(r *findings, obj string, c *x509.Certificate, now time.Time) {
	obj = fmt.Sprintf("%s (CN=%s)", obj, c.Subject.CommonName)
	desc, strong := keyStrength(c.PublicKey)
	exp := c.NotAfter.UTC().Format(time.DateOnly)
	switch {
	case now.Before(c.NotBefore):
		r.fail(Evidence{Object: obj, Field: "notBefore", Want: "in the past", Got: c.NotBefore.UTC().Format(time.RFC3339)}, obj+" is not valid yet")
	case !now.Before(c.NotAfter):
		r.fail(Evidence{Object: obj, Field: "notAfter", Want: "in the future", Got: exp}, obj+" expired on "+exp)
	case c.NotAfter.Sub(now) < expiryWarning:
		r.warn(Evidence{Object: obj, Field: "notAfter", Want: fmt.Sprintf("more than %d days away", int(expiryWarning.Hours()/24)), Got: exp},
			obj+" expires on "+exp+"; run secprov up to renew it")
	}
	if !strong {
		r.fail(Evidence{Object: obj, Field: "public key", Want: "ECDSA P-256+, RSA 2048+ or Ed25519", Got: desc}, obj+" has a weak key ("+desc+")")
	}
	if weakSignature(c.SignatureAlgorithm) {
		r.fail(Evidence{Object: obj, Field: "signature", Want: "SHA-256 or stronger", Got: c.SignatureAlgorithm.String()}, obj+" is signed with "+c.SignatureAlgorithm.String())
	}
	r.ok(Evidence{Object: obj, Field: "key, expiry", Want: "strong key, valid", Got: desc + ", expires " + exp})
}

func keyStrength(pub crypto.PublicKey) (string, bool) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		bits := k.Curve.Params().BitSize
		return fmt.Sprintf("ECDSA %s", k.Curve.Params().Name), bits >= 256
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		return fmt.Sprintf("RSA %d", bits), bits >= 2048
	case ed25519.PublicKey:
		return "Ed25519", true
	}
	return fmt.Sprintf("%T", pub), false
}

func weakSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.DSAWithSHA256, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// parseCerts decodes every CERTIFICATE block.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func sharesCert(a, b []*x509.Certificate) bool {
	for _, x := range a {
		for _, y := range b {
			if bytes.Equal(x.Raw, y.Raw) {
				return true
			}
		}
	}
	return false
}

// verifyClientCert checks that the first certificate in pemData chains to
// roots for client authentication.
func verifyClientCert(pemData []byte, roots *x509.CertPool) error {
	certs, err := parseCerts(pemData)
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// checkFileModes: keys, kubeconfigs and config files are owner-only
// (no group or other bits); their directories and the data and state
// directories are 0700 or stricter. Certificates may be world-readable.
func checkFileModes(ctx context.Context, t Target) Outcome {
	var r findings
	files := controlPlaneFiles(ctx, t, &r)
	dirs := map[string]bool{}
	for _, d := range t.Info().PrivateDirs {
		dirs[d] = true
	}
	if d := t.Info().Files.EtcdDataDir; d != "" {
		dirs[d] = true
	}
	nf, nd := 0, 0
	for _, path := range sortedKeys(files) {
		if files[path] == kindCert || files[path] == kindPublicKey {
			continue
		}
		dirs[filepath.Dir(path)] = true
		if judgeMode(ctx, t, &r, path, false) {
			nf++
		}
	}
	for _, d := range sortedKeys(dirs) {
		if judgeMode(ctx, t, &r, d, true) {
			nd++
		}
	}
	if nf+nd == 0 && len(r.errs) == 0 {
		r.errorf("no key, kubeconfig, config file or directory that the components' flags and the provider name exists")
	}
	return r.outcome(fmt.Sprintf("%d key, kubeconfig and config files are 0600 and %d directories 0700 (or stricter)", nf, nd))
}

// judgeMode stats path and records whether group/other bits are clear. It
// returns false when there was nothing to judge (no such file).
func judgeMode(ctx context.Context, t Target, r *findings, path string, dir bool) bool {
	fi, err := t.Stat(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		r.errorf("stat %s: %v", path, err)
		return false
	}
	want, what := "0600 or stricter", "file"
	if dir {
		want, what = "0700 or stricter", "directory"
	}
	perm := fi.Mode().Perm()
	ev := Evidence{Object: path, Field: "mode", Want: want, Got: fmt.Sprintf("%04o", perm)}
	if perm&0o077 != 0 {
		r.fail(ev, fmt.Sprintf("%s %s is %04o: readable beyond its owner", what, path, perm))
		return true
	}
	r.ok(ev)
	return true
}
