package kind

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/proc"
)

// Target is a live kind cluster as the verify checks see it: the API
// through the admin kubeconfig (published on this host), the control-plane
// processes, files and raw etcd values through the control-plane node
// container (docker exec), and the cluster directory's own files here.
type Target struct {
	layout layout
	rec    *cluster.Record
	spec   v1alpha1.Spec
	peers  cluster.Peers
	node   string

	// The API through the admin kubeconfig.
	*cluster.AdminAPI

	mu         sync.Mutex
	comps      map[string]*verify.Component
	probeImage string // loaded into the nodes, by digest

	sh shells // one shell per node for file reads and stats
}

// Close ends the target's shells in the nodes.
func (t *Target) Close() error {
	t.sh.closeAll()
	return nil
}

// NewTarget opens the kind cluster of rec. peers lists the other clusters
// of the machine, of any provider (for the isolation checks).
func NewTarget(rec *cluster.Record, peers cluster.Peers) (*Target, error) {
	spec, err := rec.DecodeSpec()
	if err != nil {
		return nil, err
	}
	l := newLayout(rec.Dir)
	return &Target{AdminAPI: cluster.NewAdminAPI(l.AdminKubeconfig()), layout: l, rec: rec, spec: spec, peers: peers, node: ControlPlaneNode(rec.Name),
		comps: map[string]*verify.Component{}}, nil
}

// Info implements verify.Target.
func (t *Target) Info() verify.Info {
	l := t.layout
	return verify.Info{
		Name: t.rec.Name, Environment: t.rec.Environment, Provider: t.rec.ProviderType(), Spec: t.spec,
		EncryptionProvider: t.rec.EncryptionProvider,
		KMSName:            cluster.KMSName(t.rec.Name),
		Topology:           topology,
		Files:              files(l),
		APIServerURL:       t.rec.APIServerURL,
		OwnImages:          t.rec.OwnImages,
		Rendering:          t.rec.Rendering,
		PrivateFiles: []string{l.AdminKubeconfig(), l.SuperAdminKubeconfig(), l.EncryptionKeys(), l.CAKey(),
			// kubeadm's keys and kubeconfigs in the control-plane node
			// that the components' flags do not name.
			nodePath("front-proxy-ca.key"), nodePath("etcd", "ca.key"),
			nodePath("apiserver-etcd-client.key"), nodePath("etcd", "healthcheck-client.key"),
			path.Join(nodeKubernetesDir, "admin.conf"), path.Join(nodeKubernetesDir, "super-admin.conf"),
			path.Join(nodeKubernetesDir, "kubelet.conf"), path.Join(nodeKubeletDir, "config.yaml"),
		},
		PrivateDirs: []string{l.Dir, l.PKIDir(), l.ConfigDir(), l.LogDir(), l.KindDir(),
			nodeKubernetesDir, nodePKI, nodePath("etcd"), nodeManifestsDir, etcdDataDir},
	}
}

// Capabilities implements verify.Target: everything but connecting from
// this host to the components' own ports (they listen on the node's
// loopback, out of this host's reach) and a host firewall (kind refuses
// allowedCIDRs: Docker publishes the port past any table of ours).
func (t *Target) Capabilities() []verify.Capability {
	return slices.DeleteFunc(verify.AllCapabilities(), func(c verify.Capability) bool {
		return c == verify.ComponentEndpoints || c == verify.HostFirewall
	})
}

// Component implements verify.Target from the control-plane node's
// /proc. A verify run sees each process once: the checks of one run
// judge the same process.
func (t *Target) Component(ctx context.Context, name string) (*verify.Component, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.comps[name]; ok {
		return c, nil
	}
	pid, argv, err := controlPlanePid(ctx, t.node, name)
	if err != nil {
		return nil, err
	}
	// Static pods share the node's network namespace: its tables are the
	// process's.
	const script = `readlink /proc/$1/fd/* 2>/dev/null; echo ==tcp==; cat /proc/$1/net/tcp; echo ==tcp==; cat /proc/$1/net/tcp6 2>/dev/null; true`
	out, err := nodeSh(ctx, t.node, script, strconv.Itoa(pid))
	if err != nil {
		return nil, fmt.Errorf("%s: sockets: %w", name, err)
	}
	parts := strings.Split(string(out), "==tcp==\n")
	var tables [][]byte
	for _, p := range parts[1:] {
		tables = append(tables, []byte(p))
	}
	c := &verify.Component{Name: name, Args: argv[1:], Listen: proc.ListeningSockets(strings.Split(parts[0], "\n"), tables...)}
	t.comps[name] = c
	return c, nil
}

// onHost reports whether a path is in the cluster directory on this
// machine (rendered files, keys, kubeconfigs, the audit log); the rest is
// the control-plane node's.
func (t *Target) onHost(p string) bool {
	return p == t.layout.Dir || strings.HasPrefix(p, t.layout.Dir+string(os.PathSeparator))
}

// nodeFileError turns a node command's "No such file" into fs.ErrNotExist.
func nodeFileError(p string, err error) error {
	var de *dockerError
	if errors.As(err, &de) && strings.Contains(de.stderr, "No such file") {
		return &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return err
}

// ReadFile implements verify.Target.
func (t *Target) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if t.onHost(p) {
		return os.ReadFile(p)
	}
	out, err := t.sh.get(t.node).run(ctx, "cat", "--", p)
	return out, nodeFileError(p, err)
}

// ReadFileFrom implements verify.RangeReader.
func (t *Target) ReadFileFrom(ctx context.Context, p string, offset int64) ([]byte, error) {
	if t.onHost(p) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return nil, err
		}
		return io.ReadAll(f)
	}
	out, err := t.sh.get(t.node).run(ctx, "tail", "-c", "+"+strconv.FormatInt(offset+1, 10), "--", p)
	return out, nodeFileError(p, err)
}

// nodeFileInfo is a node file's stat.
type nodeFileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i nodeFileInfo) Name() string       { return i.name }
func (i nodeFileInfo) Size() int64        { return i.size }
func (i nodeFileInfo) Mode() fs.FileMode  { return i.mode }
func (i nodeFileInfo) ModTime() time.Time { return i.modTime }
func (i nodeFileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i nodeFileInfo) Sys() any           { return nil }

// parseStat reads `stat -c '%f %s %Y'`: the raw mode in hex, size, mtime.
func parseStat(p, out string) (fs.FileInfo, error) {
	f := strings.Fields(out)
	if len(f) != 3 {
		return nil, fmt.Errorf("stat %s: unexpected %q", p, out)
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	mtime, err3 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	mode := fs.FileMode(raw & 0o777)
	switch raw & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	}
	if raw&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if raw&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if raw&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return nodeFileInfo{name: path.Base(p), size: size, mode: mode, modTime: time.Unix(mtime, 0)}, nil
}

// Stat implements verify.Target.
func (t *Target) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	if t.onHost(p) {
		return os.Stat(p)
	}
	out, err := t.sh.get(t.node).run(ctx, "stat", "-L", "-c", "%f %s %Y", "--", p)
	if err != nil {
		return nil, nodeFileError(p, err)
	}
	return parseStat(p, string(out))
}

// etcdctl runs etcdctl from etcd's own image, in the etcd container's
// mount namespace (the node's network namespace is etcd's), as kubeadm's
// etcd health-check client.
func (t *Target) etcdctl(ctx context.Context, args ...string) ([]byte, error) {
	pid, _, err := controlPlanePid(ctx, t.node, "etcd")
	if err != nil {
		return nil, err
	}
	cmd := append([]string{"nsenter", "--target", strconv.Itoa(pid), "--mount", "--",
		"etcdctl", "--endpoints=https://127.0.0.1:2379", "--dial-timeout=5s", "--command-timeout=10s",
		"--cacert=" + nodePath("etcd", "ca.crt"), "--cert=" + nodePath("etcd", "healthcheck-client.crt"), "--key=" + nodePath("etcd", "healthcheck-client.key"),
		"--write-out=json"}, args...)
	out, err := nodeExec(ctx, t.node, cmd...)
	if err != nil {
		var de *dockerError
		if errors.As(err, &de) && (strings.Contains(de.stderr, "etcdctl") && strings.Contains(de.stderr, "No such file")) {
			return nil, fmt.Errorf("the etcd image of %s has no etcdctl, which raw etcd reads need: %w", t.rec.Name, err)
		}
		return nil, err
	}
	return out, nil
}

type etcdGetResponse struct {
	Kvs []struct {
		Key   string `json:"key"`   // base64
		Value string `json:"value"` // base64
	} `json:"kvs"`
}

// EtcdGet implements verify.Target.
func (t *Target) EtcdGet(ctx context.Context, key string) ([]byte, bool, error) {
	out, err := t.etcdctl(ctx, "get", "--", key)
	if err != nil {
		return nil, false, err
	}
	var r etcdGetResponse
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, false, fmt.Errorf("etcdctl get: %w", err)
	}
	if len(r.Kvs) == 0 {
		return nil, false, nil
	}
	v, err := base64.StdEncoding.DecodeString(r.Kvs[0].Value)
	return v, err == nil, err
}

// EtcdKeys implements verify.Target.
func (t *Target) EtcdKeys(ctx context.Context, prefix string) ([]string, error) {
	out, err := t.etcdctl(ctx, "get", "--prefix", "--keys-only", "--", prefix)
	if err != nil {
		return nil, err
	}
	var r etcdGetResponse
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("etcdctl get --prefix: %w", err)
	}
	keys := make([]string, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		k, err := base64.StdEncoding.DecodeString(kv.Key)
		if err != nil {
			return nil, err
		}
		keys = append(keys, string(k))
	}
	return keys, nil
}

// ForeignCredentials implements verify.Target.
func (t *Target) ForeignCredentials(context.Context) ([]verify.Credential, error) {
	return cluster.ForeignCredentials(t.rec, t.peers)
}

// Vault implements verify.Target from the cluster records.
func (t *Target) Vault(context.Context) (*verify.Vault, error) {
	return cluster.VaultOf(t.rec, t.layout.KMSToken(), t.peers)
}
