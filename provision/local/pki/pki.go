// Package pki creates and maintains the private PKI of one local cluster:
// three CAs (cluster, etcd, front-proxy), the serving and client certificates
// of etcd and the Kubernetes control plane, the service-account signing key,
// and the client certificates kubeconfigs are made from.
//
// Everything is generated in Go (crypto/x509); nothing shells out to openssl.
// Ensure is idempotent: it keeps what is present and valid, renews leaf
// certificates that expire soon or no longer match the options, and refuses
// to replace a CA, because every certificate and kubeconfig of the cluster
// trusts it.
//
// Key choice: every TLS key (CAs and leaves) is ECDSA P-256 — small, fast, and
// accepted by etcd, every Kubernetes component and client-go. The
// service-account signing key is RSA-2048: RS256 is the one JWS algorithm
// every OIDC/JWT verifier must support (tokens may be checked outside the
// cluster, e.g. by Vault's JWT auth or a cloud IAM). 2048 bits is kubeadm's
// choice, the CIS minimum and NIST-approved through 2030; a 3072-bit key
// costs ≈0.2 s more to generate on every new cluster, for a margin tokens
// that live an hour do not need. Items() and the pki.json manifest record
// the algorithm and size of every key so a check can verify them.
package pki

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/certs"
	"secprov.dev/secprov/provision/paths"
)

// Defaults applied by Ensure to zero Options fields.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// Key algorithms, as recorded in Item.KeyAlgorithm.
const (
	AlgECDSAP256 = certs.AlgECDSAP256
	AlgRSA       = certs.AlgRSA
	// ServiceAccountKeyBits is the size of a newly generated service-account
	// signing key (RSA).
	ServiceAccountKeyBits = 2048
)

// Identities baked into client certificates. The admin identity is
// deliberately not in system:masters: it gets cluster-admin through an RBAC
// binding that can be audited and revoked. Only the super-admin identity is
// in system:masters, which bypasses RBAC entirely; secprov uses it during
// bootstrap to create that binding (the precedent is kubeadm's
// super-admin.conf) and it should not be handed to people.
const (
	AdminUser       = "secprov:admin"
	AdminGroup      = "secprov:admins"
	SuperAdminUser  = "secprov:super-admin"
	SuperAdminGroup = "system:masters"

	ControllerManagerUser   = "system:kube-controller-manager"
	SchedulerUser           = "system:kube-scheduler"
	APIServerEtcdClientUser = "kube-apiserver-etcd-client"
	// APIServerKubeletClientUser needs an RBAC binding to
	// system:kubelet-api-admin where kubelets exist.
	APIServerKubeletClientUser = "kube-apiserver-kubelet-client"
	FrontProxyClientUser       = "front-proxy-client"
	// EtcdSelfClientUser is etcd's identity towards its own client port.
	// etcd's gRPC gateway (the HTTP/JSON API) dials the gRPC server
	// through that port; with --client-cert-auth it must present a client
	// certificate, and without --client-cert-file etcd presents its
	// serving certificate, which (rightly) lacks clientAuth and is
	// rejected. Pass this pair as --client-cert-file/--client-key-file.
	EtcdSelfClientUser = "etcd-self-client"
)

// ManifestFile is the non-secret record of every item (names, key types and
// sizes, subjects, expiry, certificate hashes), written next to the files.
const ManifestFile = "pki.json"

const lockFile = ".pki.lock"

// Options says what the PKI must contain.
type Options struct {
	// ClusterName names the CAs ("secprov-<name>-ca"), so certificates of
	// different clusters are told apart at a glance. Required.
	ClusterName string
	// ServiceCIDR is the cluster's service IP range (e.g. "10.96.0.0/12");
	// its first usable address (the "kubernetes" service) becomes a SAN of
	// the API server certificate. Required.
	ServiceCIDR string
	// ExtraSANs are added to the API server certificate; each is an IP
	// address or a DNS name.
	ExtraSANs []string
	// CAValidity is the lifetime of newly created CAs (default 10 years).
	CAValidity time.Duration
	// CertValidity is the lifetime of leaf certificates (default 1 year),
	// cut short where the issuing CA expires earlier.
	CertValidity time.Duration
	// RenewBefore renews a leaf certificate that expires within this window
	// (default SP-CERT-001's window, inside which verify warns).
	RenewBefore time.Duration
	// Now is the clock (default time.Now); tests move it forward.
	Now func() time.Time
	// Logger receives what was created, renewed or repaired (never key
	// material). Nil discards.
	Logger *slog.Logger
}

// Item describes one certificate or key pair of the bundle. File names are
// relative to Bundle.Dir.
type Item struct {
	Name          string    `json:"name"`
	CertFile      string    `json:"certFile,omitempty"`
	KeyFile       string    `json:"keyFile"`
	PublicKeyFile string    `json:"publicKeyFile,omitempty"`
	KeyAlgorithm  string    `json:"keyAlgorithm"`
	KeyBits       int       `json:"keyBits"`
	IsCA          bool      `json:"isCA,omitempty"`
	CommonName    string    `json:"commonName,omitempty"`
	Organization  []string  `json:"organization,omitempty"`
	NotAfter      time.Time `json:"notAfter,omitzero"`
	CertSHA256    string    `json:"certSHA256,omitempty"`
}

// Bundle holds the absolute paths of every file of a cluster's PKI. The names
// are stable: state and flags may refer to them.
type Bundle struct {
	Dir string

	CACert, CAKey                                         string // cluster CA: API clients and serving
	EtcdCACert, EtcdCAKey                                 string // etcd's own CA, trusted by etcd only
	FrontProxyCACert, FrontProxyCAKey                     string // request-header (aggregation) CA
	EtcdServerCert, EtcdServerKey                         string
	EtcdPeerCert, EtcdPeerKey                             string
	EtcdSelfClientCert, EtcdSelfClientKey                 string // etcd --client-cert-file/--client-key-file
	APIServerEtcdClientCert, APIServerEtcdClientKey       string
	APIServerCert, APIServerKey                           string
	APIServerKubeletClientCert, APIServerKubeletClientKey string
	FrontProxyClientCert, FrontProxyClientKey             string
	ServiceAccountKey, ServiceAccountPub                  string
	ControllerManagerCert, ControllerManagerKey           string
	SchedulerCert, SchedulerKey                           string
	AdminCert, AdminKey                                   string
	SuperAdminCert, SuperAdminKey                         string // system:masters; secprov bootstrap only (see SuperAdminUser)
	Manifest                                              string

	// ServiceIP is the first usable address of Options.ServiceCIDR, the
	// ClusterIP of the "kubernetes" service.
	ServiceIP netip.Addr
	// Changed lists the items this Ensure call created or replaced, so the
	// caller knows which components must restart to pick them up.
	Changed []string

	items       []Item
	fingerprint string
}

// Items describes every certificate and key in a fixed order.
func (b *Bundle) Items() []Item { return append([]Item(nil), b.items...) }

// Fingerprint is a stable hash of the three CA certificates ("sha256:<hex>").
// It changes only when a CA changes, reveals nothing about keys, and so can
// be stored in state and shown in diffs.
func (b *Bundle) Fingerprint() string { return b.fingerprint }

type caID int

const (
	clusterCA caID = iota
	etcdCA
	frontProxyCA
)

type caSpec struct {
	id         caID
	name, base string
	cn         string // %s is the cluster name
}

var caSpecs = []caSpec{
	{clusterCA, "ca", "ca", "secprov-%s-ca"},
	{etcdCA, "etcd-ca", "etcd-ca", "secprov-%s-etcd-ca"},
	{frontProxyCA, "front-proxy-ca", "front-proxy-ca", "secprov-%s-front-proxy-ca"},
}

type usage int

const (
	serving usage = 1 << iota
	client
)

type leafSpec struct {
	name, base string
	ca         caID
	cn         string
	orgs       []string
	usage      usage
	// loopback is true for certificates that carry the loopback SANs; the
	// API server additionally gets service and extra SANs.
	loopback, apiserver bool
}

var leafSpecs = []leafSpec{
	{name: "etcd-server", base: "etcd-server", ca: etcdCA, cn: "etcd-server", usage: serving, loopback: true},
	{name: "etcd-peer", base: "etcd-peer", ca: etcdCA, cn: "etcd-peer", usage: serving | client, loopback: true},
	{name: "etcd-self-client", base: "etcd-self-client", ca: etcdCA, cn: EtcdSelfClientUser, usage: client},
	{name: "apiserver-etcd-client", base: "apiserver-etcd-client", ca: etcdCA, cn: APIServerEtcdClientUser, usage: client},
	{name: "apiserver", base: "apiserver", ca: clusterCA, cn: "kube-apiserver", usage: serving, loopback: true, apiserver: true},
	{name: "apiserver-kubelet-client", base: "apiserver-kubelet-client", ca: clusterCA, cn: APIServerKubeletClientUser, usage: client},
	{name: "front-proxy-client", base: "front-proxy-client", ca: frontProxyCA, cn: FrontProxyClientUser, usage: client},
	{name: "controller-manager", base: "controller-manager", ca: clusterCA, cn: ControllerManagerUser, usage: client},
	{name: "scheduler", base: "scheduler", ca: clusterCA, cn: SchedulerUser, usage: client},
	{name: "admin", base: "admin", ca: clusterCA, cn: AdminUser, orgs: []string{AdminGroup}, usage: client},
	{name: "super-admin", base: "super-admin", ca: clusterCA, cn: SuperAdminUser, orgs: []string{SuperAdminGroup}, usage: client},
}

const saName, saBase = "service-account", "sa"

// apiServerDNSNames are the in-cluster names of the "kubernetes" service.
var apiServerDNSNames = []string{
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
}

// Paths returns the bundle's file paths in dir without reading or creating
// anything, for rendering flags before the PKI exists.
func Paths(dir string) *Bundle { return newBundle(dir) }

func newBundle(dir string) *Bundle {
	p := func(name string) string { return filepath.Join(dir, name) }
	return &Bundle{
		Dir:    dir,
		CACert: p("ca.crt"), CAKey: p("ca.key"),
		EtcdCACert: p("etcd-ca.crt"), EtcdCAKey: p("etcd-ca.key"),
		FrontProxyCACert: p("front-proxy-ca.crt"), FrontProxyCAKey: p("front-proxy-ca.key"),
		EtcdServerCert: p("etcd-server.crt"), EtcdServerKey: p("etcd-server.key"),
		EtcdPeerCert: p("etcd-peer.crt"), EtcdPeerKey: p("etcd-peer.key"),
		EtcdSelfClientCert: p("etcd-self-client.crt"), EtcdSelfClientKey: p("etcd-self-client.key"),
		APIServerEtcdClientCert: p("apiserver-etcd-client.crt"), APIServerEtcdClientKey: p("apiserver-etcd-client.key"),
		APIServerCert: p("apiserver.crt"), APIServerKey: p("apiserver.key"),
		APIServerKubeletClientCert: p("apiserver-kubelet-client.crt"), APIServerKubeletClientKey: p("apiserver-kubelet-client.key"),
		FrontProxyClientCert: p("front-proxy-client.crt"), FrontProxyClientKey: p("front-proxy-client.key"),
		ServiceAccountKey: p(saBase + ".key"), ServiceAccountPub: p(saBase + ".pub"),
		ControllerManagerCert: p("controller-manager.crt"), ControllerManagerKey: p("controller-manager.key"),
		SchedulerCert: p("scheduler.crt"), SchedulerKey: p("scheduler.key"),
		AdminCert: p("admin.crt"), AdminKey: p("admin.key"),
		SuperAdminCert: p("super-admin.crt"), SuperAdminKey: p("super-admin.key"),
		Manifest: p(ManifestFile),
	}
}

func (o Options) withDefaults() Options {
	if o.CAValidity <= 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.CertValidity <= 0 {
		o.CertValidity = DefaultCertValidity
	}
	if o.RenewBefore <= 0 {
		o.RenewBefore = blueprints.CertificatesValid.Thresholds().CertRenewWithin
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// FirstServiceIP returns the first usable address of a service CIDR, the
// address Kubernetes gives the "kubernetes" service.
func FirstServiceIP(cidr string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service CIDR %q is not a CIDR (want e.g. 10.96.0.0/12): %w", cidr, err)
	}
	p = p.Masked()
	ip := p.Addr().Next()
	if !ip.IsValid() || !p.Contains(ip) || p.Bits() >= p.Addr().BitLen()-1 {
		return netip.Addr{}, fmt.Errorf("service CIDR %q is too small to hold a service IP: use a prefix of /%d or shorter", cidr, p.Addr().BitLen()-2)
	}
	return ip, nil
}

// Ensure makes dir (mode 0700) hold a complete, valid PKI for opts and
// returns its paths. It is safe to call on every run and from concurrent
// processes (a lock file serialises them).
//
// It creates what is missing, renews a leaf certificate that has expired,
// expires within RenewBefore, is not signed by its CA, or whose subject or
// SANs no longer match opts, and replaces a leaf whose key does not match its
// certificate (what an interrupted write leaves behind). It never replaces an
// existing CA: a CA whose key is missing or does not match, or that has
// expired, is an error saying what to do. A file that cannot be parsed is an
// error too, not something to overwrite silently.
func Ensure(dir string, opts Options) (*Bundle, error) {
	if strings.TrimSpace(opts.ClusterName) == "" {
		return nil, errors.New("pki: Options.ClusterName is empty: every cluster needs a name for its CAs")
	}
	o := opts.withDefaults()
	svcIP, err := FirstServiceIP(o.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("pki for cluster %q: %w", o.ClusterName, err)
	}
	extraIPs, extraDNS, err := splitSANs(o.ExtraSANs)
	if err != nil {
		return nil, fmt.Errorf("pki for cluster %q: %w", o.ClusterName, err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pki for cluster %q: %w", o.ClusterName, err)
	}
	if err := paths.EnsurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("pki for cluster %q: create private directory %s: %w", o.ClusterName, dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pki for cluster %q: %w", o.ClusterName, err)
	}
	defer unlock()

	b := newBundle(dir)
	b.ServiceIP = svcIP
	e := &ensurer{
		dir: dir, o: o, now: o.Now(), log: o.Logger.With("cluster", o.ClusterName, "dir", dir),
		b: b, svcIP: svcIP, extraIPs: extraIPs, extraDNS: extraDNS,
	}
	cas := make(map[caID]*issuer, len(caSpecs))
	for _, s := range caSpecs {
		iss, err := e.ensureCA(s)
		if err != nil {
			return nil, err
		}
		cas[s.id] = iss
	}
	for _, s := range leafSpecs {
		if err := e.ensureLeaf(s, cas[s.ca]); err != nil {
			return nil, err
		}
	}
	if err := e.ensureServiceAccountKey(); err != nil {
		return nil, err
	}
	if err := e.writeManifest(); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, s := range caSpecs {
		der := cas[s.id].cert.Raw
		fmt.Fprintf(h, "%s:%d:", s.name, len(der))
		h.Write(der)
	}
	b.fingerprint = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// splitSANs sorts extra SANs into IPs and DNS names.
func splitSANs(sans []string) ([]netip.Addr, []string, error) {
	var ips []netip.Addr
	var dns []string
	for _, s := range sans {
		s = strings.TrimSpace(s)
		if ip, err := netip.ParseAddr(s); err == nil {
			ips = append(ips, ip.Unmap())
			continue
		}
		if s == "" || strings.ContainsAny(s, " /:@") || len(s) > 253 {
			return nil, nil, fmt.Errorf("extra SAN %q is neither an IP address nor a DNS name", s)
		}
		dns = append(dns, strings.ToLower(s))
	}
	return ips, dns, nil
}

// lockDir serialises Ensure calls on one directory across processes; the
// lock is released when the file is closed, also if the process dies.
func lockDir(dir string) (func(), error) {
	p := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { _ = f.Close() }, nil
}

// loopbackIPs are the addresses the local control plane binds and dials.
func loopbackIPs() []netip.Addr {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
}

func toNetIPs(addrs []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.IP(a.AsSlice()))
	}
	return out
}
