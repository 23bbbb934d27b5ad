package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"secprov.dev/secprov/internal/certs"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func opts(cluster string, now time.Time) Options {
	return Options{ClusterName: cluster, ServiceCIDR: "10.96.0.0/12", Now: func() time.Time { return now }}
}

func mustEnsure(t *testing.T, dir string, o Options) *Bundle {
	t.Helper()
	b, err := Ensure(dir, o)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", dir, err)
	}
	return b
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := loadCert(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return c
}

func pool(t *testing.T, caPath string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(readCert(t, caPath))
	return p
}

func TestEnsureCertificates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	o := opts("prod", t0)
	o.ExtraSANs = []string{"api.prod.example.com", "192.0.2.10"}
	b := mustEnsure(t, dir, o)

	loop := []string{"127.0.0.1", "::1"}
	apiIPs := []string{"10.96.0.1", "127.0.0.1", "192.0.2.10", "::1"}
	apiDNS := []string{"api.prod.example.com", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}
	srv := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	cli := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	tests := []struct {
		name      string
		cert, key string
		ca        string
		otherCAs  []string
		cn        string
		orgs      []string
		eku       []x509.ExtKeyUsage
		dns       []string
		ips       []string
	}{
		{"etcd-server", b.EtcdServerCert, b.EtcdServerKey, b.EtcdCACert, []string{b.CACert, b.FrontProxyCACert}, "etcd-server", nil, srv, []string{"localhost"}, loop},
		{"etcd-peer", b.EtcdPeerCert, b.EtcdPeerKey, b.EtcdCACert, []string{b.CACert, b.FrontProxyCACert}, "etcd-peer", nil, both, []string{"localhost"}, loop},
		{"etcd-self-client", b.EtcdSelfClientCert, b.EtcdSelfClientKey, b.EtcdCACert, []string{b.CACert, b.FrontProxyCACert}, "etcd-self-client", nil, cli, nil, nil},
		{"apiserver-etcd-client", b.APIServerEtcdClientCert, b.APIServerEtcdClientKey, b.EtcdCACert, []string{b.CACert, b.FrontProxyCACert}, "kube-apiserver-etcd-client", nil, cli, nil, nil},
		{"apiserver", b.APIServerCert, b.APIServerKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "kube-apiserver", nil, srv, apiDNS, apiIPs},
		{"apiserver-kubelet-client", b.APIServerKubeletClientCert, b.APIServerKubeletClientKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "kube-apiserver-kubelet-client", nil, cli, nil, nil},
		{"front-proxy-client", b.FrontProxyClientCert, b.FrontProxyClientKey, b.FrontProxyCACert, []string{b.CACert, b.EtcdCACert}, "front-proxy-client", nil, cli, nil, nil},
		{"controller-manager", b.ControllerManagerCert, b.ControllerManagerKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "system:kube-controller-manager", nil, cli, nil, nil},
		{"scheduler", b.SchedulerCert, b.SchedulerKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "system:kube-scheduler", nil, cli, nil, nil},
		{"admin", b.AdminCert, b.AdminKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "secprov:admin", []string{"secprov:admins"}, cli, nil, nil},
		{"super-admin", b.SuperAdminCert, b.SuperAdminKey, b.CACert, []string{b.EtcdCACert, b.FrontProxyCACert}, "secprov:super-admin", []string{"system:masters"}, cli, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := readCert(t, tc.cert)
			ca := readCert(t, tc.ca)
			if c.Subject.CommonName != tc.cn || !slices.Equal(c.Subject.Organization, tc.orgs) {
				t.Errorf("subject CN=%q O=%q, want CN=%q O=%q", c.Subject.CommonName, c.Subject.Organization, tc.cn, tc.orgs)
			}
			if !slices.Equal(c.ExtKeyUsage, tc.eku) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tc.eku)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v, want DigitalSignature only", c.KeyUsage)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("IsCA=%v BasicConstraintsValid=%v, want a non-CA with basic constraints", c.IsCA, c.BasicConstraintsValid)
			}
			var gotIPs []string
			for _, ip := range c.IPAddresses {
				gotIPs = append(gotIPs, ip.String())
			}
			slices.Sort(gotIPs)
			if !slices.Equal(gotIPs, tc.ips) {
				t.Errorf("IP SANs = %v, want %v", gotIPs, tc.ips)
			}
			if got := slices.Sorted(slices.Values(c.DNSNames)); !slices.Equal(got, tc.dns) {
				t.Errorf("DNS SANs = %v, want %v", got, tc.dns)
			}
			if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, ca.SubjectKeyId) {
				t.Errorf("SKI=%x AKI=%x, want an SKI and AKI = CA SKI %x", c.SubjectKeyId, c.AuthorityKeyId, ca.SubjectKeyId)
			}
			// 128 random bits: a bit length under 100 happens with
			// probability 2^-28; 0 or small serials would mean no randomness.
			if bl := c.SerialNumber.BitLen(); bl > 128 || bl < 100 {
				t.Errorf("serial has %d bits, want a random 128-bit value", bl)
			}
			if want := t0.Add(DefaultCertValidity); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
			}

			vo := x509.VerifyOptions{Roots: pool(t, tc.ca), CurrentTime: t0, KeyUsages: tc.eku}
			if len(tc.dns) > 0 {
				vo.DNSName = "localhost"
			}
			if _, err := c.Verify(vo); err != nil {
				t.Errorf("verify against its CA %s: %v", filepath.Base(tc.ca), err)
			}
			for _, want := range tc.eku {
				vo.KeyUsages = []x509.ExtKeyUsage{want}
				if _, err := c.Verify(vo); err != nil {
					t.Errorf("verify for usage %v: %v", want, err)
				}
			}
			if len(tc.eku) == 1 {
				vo.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				if tc.eku[0] == x509.ExtKeyUsageServerAuth {
					vo.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
				}
				if _, err := c.Verify(vo); err == nil {
					t.Errorf("verified for usage %v it does not have", vo.KeyUsages)
				}
			}
			for _, other := range tc.otherCAs {
				vo := x509.VerifyOptions{Roots: pool(t, other), CurrentTime: t0, KeyUsages: tc.eku}
				if _, err := c.Verify(vo); err == nil {
					t.Errorf("verified against the wrong CA %s", filepath.Base(other))
				}
			}

			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatalf("certificate and key do not pair: %v", err)
			}
			k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
			if !ok || k.Curve != elliptic.P256() {
				t.Errorf("key is %T, want ECDSA P-256", pair.PrivateKey)
			}
		})
	}

	api := readCert(t, b.APIServerCert)
	for _, host := range []string{"10.96.0.1", "kubernetes.default.svc", "api.prod.example.com", "::1"} {
		if err := api.VerifyHostname(host); err != nil {
			t.Errorf("apiserver certificate does not cover %s: %v", host, err)
		}
	}
}

func TestEnsureCAs(t *testing.T) {
	t.Parallel()
	b := mustEnsure(t, t.TempDir(), opts("prod", t0))
	for _, tc := range []struct {
		path, cn string
	}{
		{b.CACert, "secprov-prod-ca"},
		{b.EtcdCACert, "secprov-prod-etcd-ca"},
		{b.FrontProxyCACert, "secprov-prod-front-proxy-ca"},
	} {
		t.Run(tc.cn, func(t *testing.T) {
			c := readCert(t, tc.path)
			if c.Subject.CommonName != tc.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.cn)
			}
			if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 || !c.MaxPathLenZero || c.MaxPathLen != 0 {
				t.Errorf("IsCA=%v KeyUsage=%v MaxPathLen=%d/%v, want a CA with certSign and path length 0", c.IsCA, c.KeyUsage, c.MaxPathLen, c.MaxPathLenZero)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if len(c.SubjectKeyId) == 0 {
				t.Error("no SubjectKeyId")
			}
			if want := t0.Add(DefaultCAValidity); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool(t, tc.path), CurrentTime: t0}); err != nil {
				t.Errorf("does not verify as its own root: %v", err)
			}
		})
	}
	// The three CAs are independent: different keys.
	a, e, f := readCert(t, b.CACert), readCert(t, b.EtcdCACert), readCert(t, b.FrontProxyCACert)
	if certs.KeysMatch(a.PublicKey, e.PublicKey) || certs.KeysMatch(a.PublicKey, f.PublicKey) || certs.KeysMatch(e.PublicKey, f.PublicKey) {
		t.Error("two CAs share a key")
	}
}

func TestServiceAccountKeyAndManifest(t *testing.T) {
	t.Parallel()
	b := mustEnsure(t, t.TempDir(), opts("prod", t0))
	k, err := loadKey(b.ServiceAccountKey)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != ServiceAccountKeyBits {
		t.Fatalf("service-account key is %T, want RSA-%d", k, ServiceAccountKeyBits)
	}
	data, err := os.ReadFile(b.ServiceAccountPub)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		t.Fatalf("%s is not a PUBLIC KEY PEM", b.ServiceAccountPub)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !rk.PublicKey.Equal(pub) {
		t.Fatalf("public key does not match the private key (err %v)", err)
	}

	var m manifest
	raw, err := os.ReadFile(b.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if strings.Contains(string(raw), "PRIVATE") {
		t.Fatal("manifest contains key material")
	}
	itemsJSON, _ := json.Marshal(b.Items())
	manifestJSON, _ := json.Marshal(m.Items)
	if len(m.Items) != len(caSpecs)+len(leafSpecs)+1 || !bytes.Equal(itemsJSON, manifestJSON) {
		t.Fatalf("manifest has %d items, want %d matching Items()", len(m.Items), len(caSpecs)+len(leafSpecs)+1)
	}
	for _, it := range m.Items {
		want := Item{KeyAlgorithm: AlgECDSAP256, KeyBits: 256}
		if it.Name == saName {
			want = Item{KeyAlgorithm: AlgRSA, KeyBits: ServiceAccountKeyBits}
		}
		if it.KeyAlgorithm != want.KeyAlgorithm || it.KeyBits != want.KeyBits {
			t.Errorf("%s: key %s-%d, want %s-%d", it.Name, it.KeyAlgorithm, it.KeyBits, want.KeyAlgorithm, want.KeyBits)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, it.KeyFile)); err != nil {
			t.Errorf("%s: key file: %v", it.Name, err)
		}
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "clusters", "prod")
	b := mustEnsure(t, dir, opts("prod", t0))
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys int
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(e.Name(), ".key") || e.Name() == lockFile {
			want = 0o600
			keys++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %o, want %o", e.Name(), fi.Mode().Perm(), want)
		}
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if want := len(caSpecs) + len(leafSpecs) + 1; keys-1 != want {
		t.Errorf("%d key files, want %d", keys-1, want)
	}

	// Loosened modes are repaired on the next run.
	if err := os.Chmod(b.AdminKey, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustEnsure(t, dir, opts("prod", t0))
	for p, want := range map[string]os.FileMode{b.AdminKey: 0o600, dir: 0o700} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
			t.Errorf("%s mode = %o after Ensure, want %o", p, fi.Mode().Perm(), want)
		}
	}
}

type fileState struct {
	data  []byte
	mtime time.Time
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := e.Info()
		out[e.Name()] = fileState{data, fi.ModTime()}
	}
	return out
}

// changedFiles names the files whose content or mtime differ.
func changedFiles(a, b map[string]fileState) []string {
	var out []string
	for name, sa := range a {
		sb, ok := b[name]
		if !ok || !bytes.Equal(sa.data, sb.data) || !sa.mtime.Equal(sb.mtime) {
			out = append(out, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := mustEnsure(t, dir, opts("prod", t0))
	if len(first.Changed) != len(caSpecs)+len(leafSpecs)+1 {
		t.Errorf("first run Changed = %v, want every item", first.Changed)
	}
	before := snapshot(t, dir)
	// Half a year later nothing is due yet.
	second := mustEnsure(t, dir, opts("prod", t0.Add(180*24*time.Hour)))
	if got := changedFiles(before, snapshot(t, dir)); len(got) != 0 {
		t.Errorf("second Ensure changed files %v, want none", got)
	}
	if len(second.Changed) != 0 {
		t.Errorf("second run Changed = %v, want none", second.Changed)
	}
	if first.Fingerprint() != second.Fingerprint() || !strings.HasPrefix(first.Fingerprint(), "sha256:") {
		t.Errorf("fingerprint %q then %q, want the same sha256:…", first.Fingerprint(), second.Fingerprint())
	}
}

func TestRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := mustEnsure(t, dir, opts("prod", t0))
	oldAPI := readCert(t, first.APIServerCert)
	before := snapshot(t, dir)

	later := t0.Add(DefaultCertValidity - 10*24*time.Hour) // 10 days left < 30
	b := mustEnsure(t, dir, opts("prod", later))
	var leaves []string
	for _, s := range leafSpecs {
		leaves = append(leaves, s.name)
	}
	if !slices.Equal(b.Changed, leaves) {
		t.Errorf("Changed = %v, want every leaf %v", b.Changed, leaves)
	}
	if b.Fingerprint() != first.Fingerprint() {
		t.Error("renewing leaves changed the CA fingerprint")
	}
	after := snapshot(t, dir)
	for _, name := range []string{"ca.crt", "ca.key", "etcd-ca.key", "front-proxy-ca.crt", "sa.key", "sa.pub"} {
		if !bytes.Equal(before[name].data, after[name].data) {
			t.Errorf("%s changed during leaf renewal", name)
		}
	}
	newAPI := readCert(t, b.APIServerCert)
	if want := later.Add(DefaultCertValidity); !newAPI.NotAfter.Equal(want) {
		t.Errorf("renewed NotAfter = %v, want %v", newAPI.NotAfter, want)
	}
	if certs.KeysMatch(oldAPI.PublicKey, newAPI.PublicKey) {
		t.Error("renewal reused the old key")
	}
	if _, err := newAPI.Verify(x509.VerifyOptions{Roots: pool(t, b.CACert), CurrentTime: later.Add(DefaultCertValidity / 2), DNSName: "kubernetes.default.svc"}); err != nil {
		t.Errorf("renewed certificate does not verify: %v", err)
	}

	// An expired leaf (Ensure not run for two years) is renewed too.
	b = mustEnsure(t, dir, opts("prod", later.Add(2*DefaultCertValidity)))
	if len(b.Changed) != len(leafSpecs) {
		t.Errorf("after expiry Changed = %v, want every leaf", b.Changed)
	}
}

func TestLeafCappedByCALifetime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := opts("short", t0)
	o.CAValidity = 60 * 24 * time.Hour
	b := mustEnsure(t, dir, o)
	ca := readCert(t, b.CACert)
	if c := readCert(t, b.AdminCert); !c.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("leaf NotAfter %v, want capped at CA NotAfter %v", c.NotAfter, ca.NotAfter)
	}
	// Within RenewBefore of the CA's end, renewing cannot help: it must not
	// churn certificates on every run.
	o.Now = func() time.Time { return t0.Add(40 * 24 * time.Hour) }
	before := snapshot(t, dir)
	b = mustEnsure(t, dir, o)
	if len(b.Changed) != 0 {
		t.Errorf("Changed = %v, want none", b.Changed)
	}
	if got := changedFiles(before, snapshot(t, dir)); len(got) != 0 {
		t.Errorf("files changed %v, want none", got)
	}
	// Once the CA has expired it is an error with the way out.
	o.Now = func() time.Time { return t0.Add(61 * 24 * time.Hour) }
	_, err := Ensure(dir, o)
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "move "+dir+" aside") {
		t.Errorf("Ensure with expired CA: %v, want an 'expired … move aside' error", err)
	}
}

func TestSANChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := mustEnsure(t, dir, opts("prod", t0))
	before := snapshot(t, dir)

	o := opts("prod", t0)
	o.ServiceCIDR = "10.200.0.0/16"
	b := mustEnsure(t, dir, o)
	if !slices.Equal(b.Changed, []string{"apiserver"}) {
		t.Errorf("Changed = %v, want only apiserver", b.Changed)
	}
	if b.ServiceIP != netip.MustParseAddr("10.200.0.1") {
		t.Errorf("ServiceIP = %v, want 10.200.0.1", b.ServiceIP)
	}
	c := readCert(t, b.APIServerCert)
	if err := c.VerifyHostname("10.200.0.1"); err != nil {
		t.Errorf("new service IP not in SANs: %v", err)
	}
	if err := c.VerifyHostname("10.96.0.1"); err == nil {
		t.Error("old service IP still in SANs")
	}
	if got := changedFiles(before, snapshot(t, dir)); !slices.Equal(got, []string{"apiserver.crt", "apiserver.key", ManifestFile}) {
		t.Errorf("changed files %v, want only the apiserver pair and the manifest", got)
	}
	if first.Fingerprint() != b.Fingerprint() {
		t.Error("SAN change altered the CAs")
	}

	o.ExtraSANs = []string{"API.Example.com"}
	b = mustEnsure(t, dir, o)
	if !slices.Equal(b.Changed, []string{"apiserver"}) {
		t.Errorf("adding an extra SAN: Changed = %v, want only apiserver", b.Changed)
	}
	if err := readCert(t, b.APIServerCert).VerifyHostname("api.example.com"); err != nil {
		t.Errorf("extra SAN missing: %v", err)
	}
	// Same SANs written differently (case, order, duplicates) are no change.
	o.ExtraSANs = []string{"api.example.com", "API.EXAMPLE.COM"}
	if b = mustEnsure(t, dir, o); len(b.Changed) != 0 {
		t.Errorf("equivalent SANs: Changed = %v, want none", b.Changed)
	}
}

func TestClustersAreSeparate(t *testing.T) {
	t.Parallel()
	prod := mustEnsure(t, t.TempDir(), opts("prod", t0))
	test := mustEnsure(t, t.TempDir(), opts("test", t0))
	if prod.Fingerprint() == test.Fingerprint() {
		t.Fatal("two clusters have the same CA fingerprint")
	}
	for _, tc := range []struct {
		name        string
		cert, roots string
		usage       x509.ExtKeyUsage
	}{
		{"prod admin vs test CA", prod.AdminCert, test.CACert, x509.ExtKeyUsageClientAuth},
		{"test super-admin vs prod CA", test.SuperAdminCert, prod.CACert, x509.ExtKeyUsageClientAuth},
		{"prod etcd client vs test etcd CA", prod.APIServerEtcdClientCert, test.EtcdCACert, x509.ExtKeyUsageClientAuth},
		{"test apiserver vs prod CA", test.APIServerCert, prod.CACert, x509.ExtKeyUsageServerAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := readCert(t, tc.cert)
			_, err := c.Verify(x509.VerifyOptions{Roots: pool(t, tc.roots), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			var uae x509.UnknownAuthorityError
			if !errors.As(err, &uae) {
				t.Errorf("verify across clusters: %v, want an unknown-authority error", err)
			}
		})
	}
}

func TestBrokenFiles(t *testing.T) {
	t.Parallel()
	const secretish = "THIS-IS-NOT-A-KEY-0123456789"
	tests := []struct {
		name    string
		break_  func(t *testing.T, b *Bundle)
		wantErr func(b *Bundle) []string // substrings; nil means Ensure must succeed
		changed []string
	}{
		{"corrupted CA key", func(t *testing.T, b *Bundle) { write(t, b.CAKey, secretish) },
			func(b *Bundle) []string {
				return []string{"private key", b.CAKey, "corrupted", "restore it from a backup"}
			}, nil},
		{"corrupted leaf key", func(t *testing.T, b *Bundle) { write(t, b.APIServerKey, secretish) },
			func(b *Bundle) []string { return []string{"private key", b.APIServerKey, "corrupted"} }, nil},
		{"truncated certificate", func(t *testing.T, b *Bundle) {
			data, _ := os.ReadFile(b.EtcdServerCert)
			write(t, b.EtcdServerCert, string(data[:len(data)/2]))
		}, func(b *Bundle) []string { return []string{"certificate", b.EtcdServerCert, "corrupted"} }, nil},
		{"CA key swapped", func(t *testing.T, b *Bundle) { copyFile(t, b.EtcdCAKey, b.CAKey) },
			func(b *Bundle) []string {
				return []string{"does not match", "never replaces a CA", "restore the matching key"}
			}, nil},
		{"CA key missing", func(t *testing.T, b *Bundle) { remove(t, b.FrontProxyCAKey) },
			func(b *Bundle) []string { return []string{"key", "is missing", "front-proxy-ca.key"} }, nil},
		{"CA cert missing (interrupted first run)", func(t *testing.T, b *Bundle) { remove(t, b.CACert) },
			nil, []string{"ca"}},
		{"leaf key mismatched (interrupted renewal)", func(t *testing.T, b *Bundle) { copyFile(t, b.AdminKey, b.SchedulerKey) },
			nil, []string{"scheduler"}},
		{"leaf signed by another cluster", func(t *testing.T, b *Bundle) {
			other := mustEnsure(t, t.TempDir(), opts("other", t0))
			copyFile(t, other.AdminCert, b.AdminCert)
			copyFile(t, other.AdminKey, b.AdminKey)
		}, nil, []string{"admin"}},
		{"leaf cert missing", func(t *testing.T, b *Bundle) { remove(t, b.EtcdPeerCert) },
			nil, []string{"etcd-peer"}},
		{"sa.pub missing", func(t *testing.T, b *Bundle) { remove(t, b.ServiceAccountPub) }, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := mustEnsure(t, dir, opts("prod", t0))
			fp := b.Fingerprint()
			tc.break_(t, b)
			before := snapshot(t, dir)
			got, err := Ensure(dir, opts("prod", t0))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("Ensure succeeded, want an error")
				}
				for _, s := range tc.wantErr(b) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if strings.Contains(err.Error(), secretish) {
					t.Error("error reveals file content")
				}
				if ch := changedFiles(before, snapshot(t, dir)); len(ch) != 0 {
					t.Errorf("failed Ensure changed %v", ch)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if !slices.Equal(got.Changed, tc.changed) {
				t.Errorf("Changed = %v, want %v", got.Changed, tc.changed)
			}
			if tc.name == "CA cert missing (interrupted first run)" {
				if got.Fingerprint() == fp {
					t.Error("re-issued CA certificate has the old fingerprint")
				}
				// Leaves signed before still chain to the re-issued CA.
				if _, err := readCert(t, got.AdminCert).Verify(x509.VerifyOptions{Roots: pool(t, got.CACert), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("old leaf does not verify against re-issued CA: %v", err)
				}
			}
			if _, err := os.Stat(got.ServiceAccountPub); err != nil {
				t.Errorf("sa.pub: %v", err)
			}
			// Repaired state is stable.
			if again := mustEnsure(t, dir, opts("prod", t0)); len(again.Changed) != 0 {
				t.Errorf("Ensure after repair: Changed = %v, want none", again.Changed)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(data))
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no cluster name", func(o *Options) { o.ClusterName = " " }, "ClusterName is empty"},
		{"service CIDR missing", func(o *Options) { o.ServiceCIDR = "" }, "is not a CIDR"},
		{"service CIDR garbage", func(o *Options) { o.ServiceCIDR = "10.96.0.0" }, "is not a CIDR"},
		{"service CIDR too small", func(o *Options) { o.ServiceCIDR = "10.0.0.1/32" }, "too small"},
		{"bad extra SAN", func(o *Options) { o.ExtraSANs = []string{"https://x"} }, "neither an IP address nor a DNS name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			o := opts("prod", t0)
			tc.mod(&o)
			_, err := Ensure(dir, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ensure: %v, want error containing %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Error("invalid options still created the directory")
			}
		})
	}
}

func TestFirstServiceIP(t *testing.T) {
	t.Parallel()
	for cidr, want := range map[string]string{
		"10.96.0.0/12":   "10.96.0.1",
		"10.96.5.7/12":   "10.96.0.1", // host bits ignored
		"192.168.0.0/30": "192.168.0.1",
		"fd00:10::/108":  "fd00:10::1",
	} {
		got, err := FirstServiceIP(cidr)
		if err != nil || got.String() != want {
			t.Errorf("FirstServiceIP(%q) = %v, %v; want %s", cidr, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/31", "fd00::/127", "nonsense"} {
		if _, err := FirstServiceIP(bad); err == nil {
			t.Errorf("FirstServiceIP(%q) succeeded, want an error", bad)
		}
	}
}

func TestConcurrentEnsure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var wg sync.WaitGroup
	fps := make([]string, 4)
	errs := make([]error, 4)
	for i := range fps {
		wg.Go(func() {
			b, err := Ensure(dir, opts("prod", t0))
			errs[i] = err
			if err == nil {
				fps[i] = b.Fingerprint()
			}
		})
	}
	wg.Wait()
	for i := range fps {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
		if fps[i] != fps[0] {
			t.Fatalf("concurrent Ensure calls produced different CAs: %v", fps)
		}
	}
}

// TestLogsNoKeyMaterial drives create, repair and renewal with a logger
// attached: the log tells what happened and never contains key bytes.
func TestLogsNoKeyMaterial(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	dir := t.TempDir()
	o := opts("prod", t0)
	o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := mustEnsure(t, dir, o)
	// The CA key, since renewal rewrites leaf keys anyway.
	if err := os.Chmod(b.CAKey, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Now = func() time.Time { return t0.Add(DefaultCertValidity - time.Hour) }
	mustEnsure(t, dir, o)

	log := buf.String()
	for _, want := range []string{"created CA", "created certificate", "created service-account signing key", "restored file mode", "renewed certificate", "cluster=prod"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for _, line := range strings.Split(string(data), "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(log, line) {
				t.Fatalf("log contains material of %s", e.Name())
			}
		}
	}
}
