package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// fakeTarget is a Target for the checks' pure logic: components rendered
// by hardening (then weakened by a test), files and modes in maps, a fake
// clientset for object checks. It has no API server: checks that probe
// one over the network are proven by the integration tests instead.
//
// It offers caps (every capability unless a test narrows them) and
// records every call of a capability's method in used; a method whose
// capability it does not offer fails with a *CapabilityError, as a real
// target's does.
type fakeTarget struct {
	info    Info
	caps    []Capability
	comps   map[string]*Component
	files   map[string][]byte
	modes   map[string]fs.FileMode
	etcd    map[string][]byte
	client  kubernetes.Interface
	foreign []Credential
	vault   *Vault
	// Nodes: the cluster's and other environments' nodes, each node's
	// file modes, and the addresses a connection from a node reaches.
	nodes     []Node
	peerNodes []Node
	nodeModes map[string]map[string]fs.FileMode // node → path → mode
	reachable map[netip.AddrPort]bool

	mu   sync.Mutex
	used map[Capability]int
}

var errNoServer = errors.New("fake target has no API server")

// use records a call of one of c's methods and refuses it when the fake
// does not offer c.
func (f *fakeTarget) use(c Capability) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used == nil {
		f.used = map[Capability]int{}
	}
	f.used[c]++
	if !slices.Contains(f.caps, c) {
		return &CapabilityError{Provider: f.info.Provider, Capability: c}
	}
	return nil
}

// usedCapabilities are the capabilities whose methods were called, sorted.
func (f *fakeTarget) usedCapabilities() []Capability {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Capability
	for c := range f.used {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func (f *fakeTarget) Info() Info                 { return f.info }
func (f *fakeTarget) Capabilities() []Capability { return f.caps }

func (f *fakeTarget) RESTConfig() (*rest.Config, error) {
	if err := f.use(API); err != nil {
		return nil, err
	}
	return nil, errNoServer
}

func (f *fakeTarget) Client() (kubernetes.Interface, error) {
	if err := f.use(API); err != nil {
		return nil, err
	}
	return f.client, nil
}

func (f *fakeTarget) ForeignCredentials(context.Context) ([]Credential, error) {
	if err := f.use(ForeignCredentials); err != nil {
		return nil, err
	}
	return f.foreign, nil
}

func (f *fakeTarget) Vault(context.Context) (*Vault, error) {
	if err := f.use(VaultAccess); err != nil {
		return nil, err
	}
	if f.vault == nil {
		return nil, errors.New("fake target: the cluster has no Vault")
	}
	return f.vault, nil
}

func (f *fakeTarget) Nodes(context.Context) ([]Node, error) {
	if err := f.use(Nodes); err != nil {
		return nil, err
	}
	return f.nodes, nil
}

func (f *fakeTarget) NodeReadFile(_ context.Context, node, path string) ([]byte, error) {
	if err := f.use(Nodes); err != nil {
		return nil, err
	}
	return nil, fs.ErrNotExist
}

func (f *fakeTarget) NodeStat(_ context.Context, node, path string) (fs.FileInfo, error) {
	if err := f.use(Nodes); err != nil {
		return nil, err
	}
	m, ok := f.nodeModes[node][path]
	if !ok {
		return nil, fmt.Errorf("stat %s on %s: %w", path, node, fs.ErrNotExist)
	}
	return fakeInfo{name: path, mode: m}, nil
}

func (f *fakeTarget) NodeDial(_ context.Context, node string, addr netip.AddrPort, _ time.Duration) error {
	if err := f.use(Nodes); err != nil {
		return err
	}
	if f.reachable[addr] {
		return nil
	}
	return errors.New("connection refused")
}

func (f *fakeTarget) PeerNodes(context.Context) ([]Node, error) {
	if err := f.use(Nodes); err != nil {
		return nil, err
	}
	return f.peerNodes, nil
}

// ProbeImage: the fake has no nodes to run probe pods on.
func (f *fakeTarget) ProbeImage(context.Context) (string, error) {
	if err := f.use(NetworkProbes); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: the fake target runs no pods", ErrNoProbeImage)
}

func (f *fakeTarget) OutsideAddr(context.Context) (netip.Addr, error) {
	if err := f.use(NetworkProbes); err != nil {
		return netip.Addr{}, err
	}
	return netip.Addr{}, errors.New("the fake target has no outside address")
}

func (f *fakeTarget) Component(_ context.Context, name string) (*Component, error) {
	if err := f.use(Processes); err != nil {
		return nil, err
	}
	c, ok := f.comps[name]
	if !ok {
		return nil, fmt.Errorf("%s is not running", name)
	}
	return c, nil
}

func (f *fakeTarget) ReadFile(_ context.Context, path string) ([]byte, error) {
	if err := f.use(Files); err != nil {
		return nil, err
	}
	d, ok := f.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return d, nil
}

func (f *fakeTarget) Stat(_ context.Context, path string) (fs.FileInfo, error) {
	if err := f.use(Files); err != nil {
		return nil, err
	}
	m, ok := f.modes[path]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
	}
	return fakeInfo{name: path, mode: m, size: int64(len(f.files[path]))}, nil
}

func (f *fakeTarget) EtcdGet(_ context.Context, key string) ([]byte, bool, error) {
	if err := f.use(RawEtcd); err != nil {
		return nil, false, err
	}
	v, ok := f.etcd[key]
	return v, ok, nil
}

func (f *fakeTarget) EtcdKeys(_ context.Context, prefix string) ([]string, error) {
	if err := f.use(RawEtcd); err != nil {
		return nil, err
	}
	var out []string
	for k := range f.etcd {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	return out, nil
}

type fakeInfo struct {
	name string
	mode fs.FileMode
	size int64
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return i.size }
func (i fakeInfo) Mode() fs.FileMode  { return i.mode }
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fakeInfo) Sys() any           { return nil }

// fakeFiles is a local-provider-like layout under /c.
func fakeFiles() hardening.Files {
	p := func(n string) string { return "/c/pki/" + n }
	return hardening.Files{
		CACert: p("ca.crt"), CAKey: p("ca.key"), EtcdCACert: p("etcd-ca.crt"),
		EtcdServerCert: p("etcd-server.crt"), EtcdServerKey: p("etcd-server.key"),
		EtcdPeerCert: p("etcd-peer.crt"), EtcdPeerKey: p("etcd-peer.key"),
		EtcdSelfClientCert: p("etcd-self-client.crt"), EtcdSelfClientKey: p("etcd-self-client.key"),
		APIServerEtcdCert: p("apiserver-etcd-client.crt"), APIServerEtcdKey: p("apiserver-etcd-client.key"),
		APIServerCert: p("apiserver.crt"), APIServerKey: p("apiserver.key"),
		KubeletClientCert: p("kubelet.crt"), KubeletClientKey: p("kubelet.key"),
		FrontProxyCACert: p("front-proxy-ca.crt"), FrontProxyClientCert: p("fp.crt"), FrontProxyClientKey: p("fp.key"),
		ServiceAccountKey: p("sa.key"), ServiceAccountPub: p("sa.pub"),
		ControllerManagerKubeconfig: "/c/kube-controller-manager.kubeconfig",
		SchedulerKubeconfig:         "/c/kube-scheduler.kubeconfig",
		EncryptionConfig:            "/c/config/encryption.yaml",
		AuditPolicy:                 "/c/config/audit-policy.yaml",
		AuditLog:                    "/c/logs/audit.log",
		AdmissionConfig:             "/c/config/admission.yaml",
		EtcdDataDir:                 "/c/etcd",
	}
}

// hardenedFake is a cluster as `up` renders it from the prod example:
// every component runs with hardening's flags and listens on loopback.
func hardenedFake(t *testing.T) *fakeTarget {
	t.Helper()
	bps, err := blueprints.Load("../../blueprints/examples/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bp := bps[0]
	topo := hardening.Topology{Host: "127.0.0.1", AdvertiseAddress: "127.0.0.1", NoEndpointReconciler: true}
	cp := &hardening.ControlPlane{Name: bp.Name(), Spec: bp.Spec, Files: fakeFiles(), EncryptionProvider: "secretbox", Topology: topo,
		Ports: hardening.Ports{APIServer: 6443, EtcdClient: 2379, EtcdPeer: 2380, ControllerManager: 10257, Scheduler: 10259}}
	lo := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	return &fakeTarget{
		info: Info{Name: bp.Name(), Environment: bp.Spec.Environment, Provider: "local", Spec: bp.Spec,
			EncryptionProvider: "secretbox", Files: cp.Files, Topology: topo, APIServerURL: "https://127.0.0.1:6443",
			PrivateDirs: []string{"/c", "/c/pki", "/c/config"}},
		comps: map[string]*Component{
			Etcd:              {Name: Etcd, Args: cp.EtcdFlags().Args(), Listen: []netip.AddrPort{lo(2379), lo(2380)}},
			APIServer:         {Name: APIServer, Args: cp.APIServerFlags().Args(), Listen: []netip.AddrPort{lo(6443)}},
			ControllerManager: {Name: ControllerManager, Args: cp.ControllerManagerFlags().Args(), Listen: []netip.AddrPort{lo(10257)}},
			Scheduler:         {Name: Scheduler, Args: cp.SchedulerFlags().Args(), Listen: []netip.AddrPort{lo(10259)}},
		},
		caps:   AllCapabilities(),
		files:  map[string][]byte{},
		modes:  map[string]fs.FileMode{},
		etcd:   map[string][]byte{},
		client: fake.NewClientset(),
	}
}

// tweak rewrites a component's flags the way local.Cluster.Tweak does.
func (f *fakeTarget) tweak(component string, fn func(hardening.Flags) hardening.Flags) *fakeTarget {
	var fl hardening.Flags
	for name, val := range Args(f.comps[component].Args) {
		fl = append(fl, hardening.Flag{Name: name, Value: val})
	}
	f.comps[component].Args = fn(fl).Args()
	return f
}

func (f *fakeTarget) listen(component string, addrs ...string) *fakeTarget {
	f.comps[component].Listen = nil
	for _, a := range addrs {
		f.comps[component].Listen = append(f.comps[component].Listen, netip.MustParseAddrPort(a))
	}
	return f
}
