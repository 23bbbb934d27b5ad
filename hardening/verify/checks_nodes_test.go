package verify

import (
	"context"
	"io/fs"
	"net/netip"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func ptr[T any](v T) *T { return &v }

// hardenedKubelet is a running kubelet configuration as the kind
// provider renders it.
func hardenedKubelet() kubeletConfig {
	var c kubeletConfig
	c.Authentication.Anonymous.Enabled = ptr(false)
	c.Authentication.Webhook.Enabled = ptr(true)
	c.Authentication.X509.ClientCAFile = "/etc/kubernetes/pki/ca.crt"
	c.Authorization.Mode = "Webhook"
	c.ReadOnlyPort = ptr(int32(0))
	c.RotateCertificates = ptr(true)
	c.ProtectKernelDefaults = ptr(true)
	c.MakeIPTablesUtilChains = ptr(true)
	c.EventRecordQPS = ptr(int32(5))
	c.StreamingConnectionIdleTimeout = "5m0s"
	c.TLSCipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
	return c
}

// TestKubeletJudgements weakens one field of a hardened kubelet at a time:
// each must fail (or warn, for protectKernelDefaults) naming the field.
func TestKubeletJudgements(t *testing.T) {
	tests := []struct {
		name   string
		weaken func(*kubeletConfig)
		judge  func(string, kubeletConfig, *findings)
		want   Status
		field  string
	}{
		{"hardened auth", nil, judgeKubeletAuth, StatusPass, ""},
		{"anonymous on", func(c *kubeletConfig) { c.Authentication.Anonymous.Enabled = ptr(true) }, judgeKubeletAuth, StatusFail, "authentication.anonymous.enabled"},
		{"anonymous unset (kubelet default true)", func(c *kubeletConfig) { c.Authentication.Anonymous.Enabled = nil }, judgeKubeletAuth, StatusFail, "authentication.anonymous.enabled"},
		{"webhook authn off", func(c *kubeletConfig) { c.Authentication.Webhook.Enabled = ptr(false) }, judgeKubeletAuth, StatusFail, "authentication.webhook.enabled"},
		{"no client CA", func(c *kubeletConfig) { c.Authentication.X509.ClientCAFile = "" }, judgeKubeletAuth, StatusFail, "authentication.x509.clientCAFile"},
		{"always allow", func(c *kubeletConfig) { c.Authorization.Mode = "AlwaysAllow" }, judgeKubeletAuth, StatusFail, "authorization.mode"},
		{"hardened", nil, judgeKubeletHardened, StatusPass, ""},
		{"no rotation", func(c *kubeletConfig) { c.RotateCertificates = ptr(false) }, judgeKubeletHardened, StatusFail, "rotateCertificates"},
		{"idle streams forever", func(c *kubeletConfig) { c.StreamingConnectionIdleTimeout = "0s" }, judgeKubeletHardened, StatusFail, "streamingConnectionIdleTimeout"},
		{"unlimited events", func(c *kubeletConfig) { c.EventRecordQPS = ptr(int32(0)) }, judgeKubeletHardened, StatusFail, "eventRecordQPS"},
		{"no iptables chains", func(c *kubeletConfig) { c.MakeIPTablesUtilChains = ptr(false) }, judgeKubeletHardened, StatusFail, "makeIPTablesUtilChains"},
		{"default ciphers", func(c *kubeletConfig) { c.TLSCipherSuites = nil }, judgeKubeletHardened, StatusFail, "tlsCipherSuites"},
		{"weak cipher", func(c *kubeletConfig) {
			c.TLSCipherSuites = append(c.TLSCipherSuites, "TLS_RSA_WITH_AES_128_CBC_SHA")
		}, judgeKubeletHardened, StatusFail, "tlsCipherSuites"},
		{"kernel defaults unprotected", func(c *kubeletConfig) { c.ProtectKernelDefaults = ptr(false) }, judgeKubeletHardened, StatusWarn, "protectKernelDefaults"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := hardenedKubelet()
			if tc.weaken != nil {
				tc.weaken(&c)
			}
			var r findings
			tc.judge("node-1", c, &r)
			out := r.outcome("ok")
			if out.Status != tc.want {
				t.Fatalf("status %s (%s), want %s", out.Status, out.Reason, tc.want)
			}
			if tc.field == "" {
				return
			}
			found := false
			for _, e := range out.Evidence {
				if e.Field == tc.field && e.Got != "" && strings.HasPrefix(e.Object, "Node/node-1") {
					found = true
				}
			}
			if !found {
				t.Errorf("no evidence names %s: %+v", tc.field, out.Evidence)
			}
		})
	}
}

var (
	prodCP = Node{Name: "prod-control-plane", Role: "control-plane", Cluster: "prod", Environment: "prod", Addresses: []netip.Addr{netip.MustParseAddr("172.30.0.2")}}
	prodW  = Node{Name: "prod-worker", Role: "worker", Cluster: "prod", Environment: "prod", Addresses: []netip.Addr{netip.MustParseAddr("172.30.0.3")}}
	testCP = Node{Name: "test-control-plane", Role: "control-plane", Cluster: "test", Environment: "test", Addresses: []netip.Addr{netip.MustParseAddr("172.31.0.2")}}
)

func nodesFake(t *testing.T) *fakeTarget {
	f := hardenedFake(t)
	f.nodes = []Node{prodCP, prodW}
	f.peerNodes = []Node{testCP}
	f.nodeModes = map[string]map[string]fs.FileMode{}
	for _, n := range f.nodes {
		f.nodeModes[n.Name] = map[string]fs.FileMode{ciliumCNIConfig: 0o644}
		for _, kf := range kubeletFiles {
			f.nodeModes[n.Name][kf.path] = kf.max
		}
	}
	f.reachable = map[netip.AddrPort]bool{netip.AddrPortFrom(prodW.Addresses[0], kubeletPort): true}
	var objs []runtime.Object
	for _, n := range f.nodes {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	}
	objs = append(objs,
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "cilium", Namespace: "kube-system"},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, NumberReady: 2}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "cilium-operator", Namespace: "kube-system"},
			Status: appsv1.DeploymentStatus{AvailableReplicas: 1}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ciliumConfigMap, Namespace: "kube-system"},
			Data: map[string]string{"enable-wireguard": "false", "routing-mode": "tunnel"}})
	f.client = fake.NewClientset(objs...)
	return f
}

// wireguardOn turns Cilium's WireGuard on in a nodesFake: the agents'
// configuration and each node's device.
func wireguardOn(f *fakeTarget) {
	cm, _ := f.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), ciliumConfigMap, metav1.GetOptions{})
	cm.Data["enable-wireguard"] = "true"
	f.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{})
	for _, n := range f.nodes {
		f.nodeModes[n.Name][ciliumWireGuardIf] = 0o755
	}
}

func TestNodeChecks(t *testing.T) {
	runFakeCases(t, nodesFake, []fakeCase{
		{name: "files private", id: "SP-NODE-004", want: StatusPass},
		{name: "kubelet config world-readable", id: "SP-NODE-004", want: StatusFail, reason: "/var/lib/kubelet/config.yaml on node prod-worker is 0644",
			weaken: func(f *fakeTarget) { f.nodeModes["prod-worker"]["/var/lib/kubelet/config.yaml"] = 0o644 }},
		{name: "kubeconfig group-readable", id: "SP-NODE-004", want: StatusFail, reason: "kubelet.conf",
			weaken: func(f *fakeTarget) { f.nodeModes["prod-control-plane"]["/etc/kubernetes/kubelet.conf"] = 0o640 }},
		{name: "cilium healthy", id: "SP-NET-001", want: StatusPass},
		{name: "no cilium CNI config on a node", id: "SP-NET-001", want: StatusFail, reason: "no Cilium CNI configuration",
			weaken: func(f *fakeTarget) { delete(f.nodeModes["prod-worker"], ciliumCNIConfig) }},
		{name: "agent not ready everywhere", id: "SP-NET-001", want: StatusFail, reason: "not ready on every node",
			weaken: func(f *fakeTarget) {
				ds, _ := f.client.AppsV1().DaemonSets("kube-system").Get(t.Context(), "cilium", metav1.GetOptions{})
				ds.Status.NumberReady = 1
				f.client.AppsV1().DaemonSets("kube-system").UpdateStatus(t.Context(), ds, metav1.UpdateOptions{})
			}},
		{name: "no cilium at all", id: "SP-NET-001", want: StatusFail, reason: "DaemonSet is missing",
			weaken: func(f *fakeTarget) {
				f.client.AppsV1().DaemonSets("kube-system").Delete(t.Context(), "cilium", metav1.DeleteOptions{})
			}},
		{name: "node not ready", id: "SP-NET-001", want: StatusFail, reason: "node prod-worker is not Ready",
			weaken: func(f *fakeTarget) {
				n, _ := f.client.CoreV1().Nodes().Get(t.Context(), "prod-worker", metav1.GetOptions{})
				n.Status.Conditions[0].Status = corev1.ConditionFalse
				f.client.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{})
			}},
		{name: "wireguard on every node", id: "SP-NET-005", want: StatusPass, weaken: wireguardOn},
		{name: "encryption off", id: "SP-NET-005", want: StatusFail, reason: "crosses the node network unencrypted"},
		{name: "encryption off, as resolved", id: "SP-NET-005", want: StatusFail, reason: "resolved to none",
			weaken: func(f *fakeTarget) { f.info.Spec.Network.TransparentEncryption = "none" }},
		{name: "wireguard asked, off live", id: "SP-NET-005", want: StatusFail, reason: "asks for wireguard and Cilium runs with none",
			weaken: func(f *fakeTarget) { f.info.Spec.Network.TransparentEncryption = "wireguard" }},
		{name: "wireguard device missing on a node", id: "SP-NET-005", want: StatusFail, reason: "node prod-worker has no WireGuard device",
			weaken: func(f *fakeTarget) { wireguardOn(f); delete(f.nodeModes["prod-worker"], ciliumWireGuardIf) }},
		{name: "no cilium configuration", id: "SP-NET-005", want: StatusFail, reason: "Cilium's configuration is missing",
			weaken: func(f *fakeTarget) {
				f.client.CoreV1().ConfigMaps("kube-system").Delete(t.Context(), ciliumConfigMap, metav1.DeleteOptions{})
			}},
		{name: "isolated", id: "SP-ISO-003", want: StatusPass},
		{name: "test kubelet reachable", id: "SP-ISO-003", want: StatusFail, reason: "reaches test node test-control-plane at 172.31.0.2:10250",
			weaken: func(f *fakeTarget) { f.reachable[netip.AddrPortFrom(testCP.Addresses[0], kubeletPort)] = true }},
		{name: "test API server reachable", id: "SP-ISO-003", want: StatusFail, reason: "172.31.0.2:6443",
			weaken: func(f *fakeTarget) { f.reachable[netip.AddrPortFrom(testCP.Addresses[0], apiServerNodePort)] = true }},
		{name: "probe cannot reach its own cluster", id: "SP-ISO-003", want: StatusError, reason: "refusals elsewhere prove nothing",
			weaken: func(f *fakeTarget) { f.reachable = map[netip.AddrPort]bool{} }},
		{name: "no other environment", id: "SP-ISO-003", want: StatusSkip, reason: "no cluster of another environment",
			weaken: func(f *fakeTarget) { f.peerNodes = nil }},
	})
}

// TestNodeChecksSkipWithoutNodes: on a provider without nodes (local)
// every node check skips, saying which capability is missing.
func TestNodeChecksSkipWithoutNodes(t *testing.T) {
	f := hardenedFake(t)
	f.caps = []Capability{API, Processes, Files, RawEtcd, ComponentEndpoints, ForeignCredentials, VaultAccess}
	rep := Run(t.Context(), f, nodeChecks(), Options{})
	for _, r := range rep.Results {
		if r.Status != StatusSkip || !strings.Contains(r.Reason, "nodes") {
			t.Errorf("%s = %s (%s), want a skip naming nodes", r.ID, r.Status, r.Reason)
		}
	}
}
