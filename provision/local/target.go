package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/local/proc"
	"secprov.dev/secprov/vault"
)

// Target is a live local cluster as the verify checks see it: the API
// through the admin kubeconfig, processes through /proc, files directly,
// and etcd with the API server's own client certificate.
type Target struct {
	layout   Layout
	meta     *Meta
	spec     v1alpha1.Spec
	stateDir string // to find other clusters' credentials
	clusters func() ([]string, error)

	once   sync.Once
	cfg    *rest.Config
	client kubernetes.Interface
	err    error

	etcdOnce sync.Once
	etcd     *clientv3.Client
	etcdErr  error
}

// NewTarget opens the local cluster in dir. others lists the directories
// of the other local clusters (for the isolation check).
func NewTarget(dir string, others func() ([]string, error)) (*Target, error) {
	l := NewLayout(dir)
	m, err := l.ReadMeta()
	if err != nil {
		return nil, err
	}
	t := &Target{layout: l, meta: m, clusters: others}
	if len(m.Spec) > 0 {
		if err := json.Unmarshal(m.Spec, &t.spec); err != nil {
			return nil, fmt.Errorf("%s: spec: %w", l.MetaFile(), err)
		}
	}
	return t, nil
}

// Close releases the etcd connection.
func (t *Target) Close() error {
	if t.etcd != nil {
		return t.etcd.Close()
	}
	return nil
}

// Info implements verify.Target.
func (t *Target) Info() verify.Info {
	return verify.Info{
		Name: t.meta.Name, Environment: t.meta.Environment, Provider: v1alpha1.ProviderLocal, Spec: t.spec,
		EncryptionProvider: t.meta.EncryptionProvider,
		KMSName:            KMSName(t.meta.Name),
		Files:              t.layout.Files(pki.Paths(t.layout.PKIDir())),
		APIServerURL:       t.meta.APIServerURL,
		PrivateFiles:       t.privateFiles(),
		PrivateDirs: []string{t.layout.Dir, t.layout.PKIDir(), t.layout.ConfigDir(), t.layout.LogDir(),
			t.layout.RunDir(), t.layout.EtcdDataDir()},
	}
}

// Capabilities implements verify.Target: everything but nodes, and so no
// pods to send probe traffic between.
func (t *Target) Capabilities() []verify.Capability {
	return slices.DeleteFunc(verify.AllCapabilities(), func(c verify.Capability) bool {
		return c == verify.Nodes || c == verify.NetworkProbes
	})
}

// privateFiles are the credentials of the cluster directory that the
// control-plane flags do not name: client kubeconfigs, the encryption key
// store and every key in the PKI directory (the CA keys included).
func (t *Target) privateFiles() []string {
	out := []string{t.layout.AdminKubeconfig(), t.layout.SuperAdminKubeconfig(), t.layout.EncryptionKeys()}
	ents, err := os.ReadDir(t.layout.PKIDir())
	if err != nil {
		return out // the check reports the directory itself
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".key") {
			out = append(out, filepath.Join(t.layout.PKIDir(), e.Name()))
		}
	}
	return out
}

// RESTConfig implements verify.Target.
func (t *Target) RESTConfig() (*rest.Config, error) {
	t.once.Do(func() {
		t.cfg, t.err = clientcmd.BuildConfigFromFlags("", t.layout.AdminKubeconfig())
		if t.err != nil {
			return
		}
		t.cfg.Timeout = 15 * time.Second
		t.cfg.UserAgent = "secprov-verify"
		// The suite sends a few dozen requests from concurrent checks;
		// client-go's default 5 QPS would make it wait on itself for
		// seconds. The API server's own limits still apply.
		t.cfg.QPS, t.cfg.Burst = 100, 200
		// Checks send deprecated or refused requests on purpose (dry-run
		// externalIPs, pods that break Pod Security); the API server's
		// warnings about them are expected, not news for the user.
		t.cfg.WarningHandler = rest.NoWarnings{}
		t.client, t.err = kubernetes.NewForConfig(t.cfg)
	})
	if t.err != nil {
		return nil, t.err
	}
	return rest.CopyConfig(t.cfg), nil
}

// Client implements verify.Target.
func (t *Target) Client() (kubernetes.Interface, error) {
	if _, err := t.RESTConfig(); err != nil {
		return nil, err
	}
	return t.client, nil
}

// Component implements verify.Target from the pid file and /proc.
func (t *Target) Component(_ context.Context, name string) (*verify.Component, error) {
	pidFile := t.layout.PidFile(name)
	if !proc.Alive(pidFile) {
		return nil, fmt.Errorf("%s is not running (pid file %s); run secprov up to restart it", name, pidFile)
	}
	rec, err := proc.ReadPidFile(pidFile)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", rec.Pid))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	listen, err := listeningSockets(rec.Pid)
	if err != nil {
		return nil, fmt.Errorf("%s: sockets: %w", name, err)
	}
	return &verify.Component{Name: name, Args: argv[1:], Listen: listen}, nil
}

// listeningSockets finds the TCP sockets in LISTEN state owned by pid, by
// matching its socket inodes against /proc/net/tcp and tcp6.
func listeningSockets(pid int) ([]netip.AddrPort, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A = LISTEN
				continue
			}
			if ap, err := parseProcAddr(fields[1]); err == nil {
				out = append(out, ap)
			}
		}
	}
	return out, nil
}

// parseProcAddr decodes /proc/net/tcp's "0100007F:1F90": the address in
// host byte order per 32-bit word, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 { // each word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// ReadFile implements verify.Target.
func (t *Target) ReadFile(_ context.Context, path string) ([]byte, error) { return os.ReadFile(path) }

// ReadFileFrom implements verify.RangeReader: the audit check reads only
// what its canary appended.
func (t *Target) ReadFileFrom(_ context.Context, path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// Stat implements verify.Target.
func (t *Target) Stat(_ context.Context, path string) (fs.FileInfo, error) { return os.Stat(path) }

func (t *Target) etcdClient() (*clientv3.Client, error) {
	t.etcdOnce.Do(func() {
		b := pki.Paths(t.layout.PKIDir())
		cert, err := tls.LoadX509KeyPair(b.APIServerEtcdClientCert, b.APIServerEtcdClientKey)
		if err != nil {
			t.etcdErr = err
			return
		}
		ca, err := os.ReadFile(b.EtcdCACert)
		if err != nil {
			t.etcdErr = err
			return
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		t.etcd, t.etcdErr = clientv3.New(clientv3.Config{
			Endpoints:   []string{fmt.Sprintf("https://%s:%d", hardening.Loopback, t.meta.Ports.EtcdClient)},
			TLS:         &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
	})
	return t.etcd, t.etcdErr
}

// EtcdGet implements verify.Target.
func (t *Target) EtcdGet(ctx context.Context, key string) ([]byte, bool, error) {
	c, err := t.etcdClient()
	if err != nil {
		return nil, false, err
	}
	resp, err := c.Get(ctx, key)
	if err != nil {
		return nil, false, err
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// EtcdKeys implements verify.Target.
func (t *Target) EtcdKeys(ctx context.Context, prefix string) ([]string, error) {
	c, err := t.etcdClient()
	if err != nil {
		return nil, err
	}
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		keys[i] = string(kv.Key)
	}
	return keys, nil
}

// ForeignCredentials implements verify.Target: the admin credentials of
// every other local cluster of a different environment.
func (t *Target) ForeignCredentials(context.Context) ([]verify.Credential, error) {
	if t.clusters == nil {
		return nil, nil
	}
	dirs, err := t.clusters()
	if err != nil {
		return nil, err
	}
	var out []verify.Credential
	for _, d := range dirs {
		l := NewLayout(d)
		m, err := l.ReadMeta()
		if err != nil || m.Name == t.meta.Name || m.Environment == t.meta.Environment {
			continue
		}
		b := pki.Paths(l.PKIDir())
		cert, cerr := os.ReadFile(b.AdminCert)
		key, kerr := os.ReadFile(b.AdminKey)
		if err := errors.Join(cerr, kerr); err != nil {
			continue // that cluster is half gone; nothing to test with
		}
		out = append(out, verify.Credential{Cluster: m.Name, Environment: m.Environment, CertPEM: cert, KeyPEM: hardening.Secret(key)})
	}
	return out, nil
}

// Vault implements verify.Target from cluster.json: how to reach the
// cluster's Vault, its object names, and the clusters of other
// environments that use the same Vault.
func (t *Target) Vault(context.Context) (*verify.Vault, error) {
	vm := t.meta.Vault
	if vm == nil {
		return nil, fmt.Errorf("cluster %s was created without Vault; run secprov up to add it", t.meta.Name)
	}
	v := &verify.Vault{Admin: vm.Admin, KMSSocket: vm.KMSSocket, Names: vault.NamesFor(t.meta.Name, t.spec)}
	if vm.KMSSocket != "" {
		v.KMSToken = vault.Access{Address: vm.Admin.Address, CAFile: vm.Admin.CAFile, TokenFile: t.layout.KMSToken()}
	}
	if t.clusters == nil {
		return v, nil
	}
	dirs, err := t.clusters()
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		m, err := NewLayout(d).ReadMeta()
		if err != nil || m.Name == t.meta.Name || m.Environment == t.meta.Environment || m.Vault == nil ||
			!blueprints.SameService(m.Vault.Admin.Address, vm.Admin.Address) {
			continue
		}
		var spec v1alpha1.Spec
		if err := json.Unmarshal(m.Spec, &spec); err != nil {
			continue // a damaged peer; its own verify reports it
		}
		v.Peers = append(v.Peers, verify.VaultPeer{Cluster: m.Name, Environment: m.Environment, Names: vault.NamesFor(m.Name, spec)})
	}
	return v, nil
}
