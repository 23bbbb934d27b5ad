package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
)

// Target is a live local cluster as the verify checks see it: the API
// through the admin kubeconfig, processes through /proc, files directly,
// and etcd with the API server's own client certificate.
type Target struct {
	// A local cluster has no nodes.
	verify.NoNodes
	layout paths.Layout
	rec    *cluster.Record
	spec   v1alpha1.Spec
	peers  cluster.Peers

	// The API through the admin kubeconfig.
	*cluster.AdminAPI

	etcdOnce sync.Once
	etcd     *clientv3.Client
	etcdErr  error
}

// NewTarget opens the local cluster of rec. peers lists the other
// clusters of the machine, of any provider (for the isolation checks).
func NewTarget(rec *cluster.Record, peers cluster.Peers) (*Target, error) {
	spec, err := rec.DecodeSpec()
	if err != nil {
		return nil, err
	}
	l := paths.NewLayout(rec.Dir)
	return &Target{NoNodes: verify.NoNodes{Provider: rec.ProviderType()}, AdminAPI: cluster.NewAdminAPI(l.AdminKubeconfig()), layout: l, rec: rec, spec: spec, peers: peers}, nil
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
		Name: t.rec.Name, Environment: t.rec.Environment, Provider: t.rec.ProviderType(), Spec: t.spec,
		EncryptionProvider: t.rec.EncryptionProvider,
		KMSName:            cluster.KMSName(t.rec.Name),
		Topology:           topology,
		Files:              files(t.layout, pki.Paths(t.layout.PKIDir())),
		APIServerURL:       t.rec.APIServerURL,
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

// NFTTable implements verify.FirewallReader (HostFirewall): the control
// plane runs on this host, so its packet filter is this host's.
func (t *Target) NFTTable(ctx context.Context, name string) ([]byte, bool, error) {
	return NFTListTable(ctx, name)
}

var _ verify.FirewallReader = (*Target)(nil)

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
	var links []string
	for _, e := range ents {
		if link, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil {
			links = append(links, link)
		}
	}
	var tables [][]byte
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if data, err := os.ReadFile(f); err == nil {
			tables = append(tables, data)
		}
	}
	return proc.ListeningSockets(links, tables...), nil
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
			Endpoints:   []string{fmt.Sprintf("https://%s:%d", host, t.rec.Ports.EtcdClient)},
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
// every other cluster of a different environment.
func (t *Target) ForeignCredentials(context.Context) ([]verify.Credential, error) {
	return cluster.ForeignCredentials(t.rec, t.peers)
}

// Vault implements verify.Target from the cluster records.
func (t *Target) Vault(context.Context) (*verify.Vault, error) {
	return cluster.VaultOf(t.rec, t.layout.KMSToken(), t.peers)
}
