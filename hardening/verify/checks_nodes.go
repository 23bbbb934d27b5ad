package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
)

// nodeChecks judge the nodes: the kubelets' running configuration
// (CIS section 4.2), the kubelet files on each node (4.1), Cilium as the
// healthy CNI of every node, and that no node reaches another
// environment's nodes.
func nodeChecks() []Check {
	return []Check{
		{ID: blueprints.KubeletAuth, Run: checkKubeletAuth, Needs: needs(API, Nodes)},
		{ID: blueprints.KubeletReadOnlyPort, Run: checkKubeletReadOnlyPort, Needs: needs(API, Nodes)},
		{ID: blueprints.KubeletHardened, Run: checkKubeletHardened, Needs: needs(API, Nodes)},
		{ID: blueprints.KubeletFilesPrivate, Run: checkKubeletFiles, Needs: needs(Nodes)},
		{ID: blueprints.CiliumCNI, Run: checkCilium, Needs: needs(API, Nodes)},
		{ID: blueprints.NetworkEncrypted, Run: checkTransparentEncryption, Needs: needs(API, Nodes)},
		{ID: blueprints.IsolationNetworks, Run: checkNodeIsolation, Needs: needs(Nodes)},
	}
}

// Ports probed on nodes.
const (
	kubeletPort         = 10250
	kubeletReadOnlyPort = 10255
	apiServerNodePort   = 6443
	nodeProbeTimeout    = 2 * time.Second
)

// kubeletConfig is the part of a running kubelet's configuration
// (GET /api/v1/nodes/NAME/proxy/configz) the node checks judge.
type kubeletConfig struct {
	Authentication struct {
		Anonymous struct {
			Enabled *bool `json:"enabled"`
		} `json:"anonymous"`
		Webhook struct {
			Enabled *bool `json:"enabled"`
		} `json:"webhook"`
		X509 struct {
			ClientCAFile string `json:"clientCAFile"`
		} `json:"x509"`
	} `json:"authentication"`
	Authorization struct {
		Mode string `json:"mode"`
	} `json:"authorization"`
	ReadOnlyPort                   *int32   `json:"readOnlyPort"`
	RotateCertificates             *bool    `json:"rotateCertificates"`
	ProtectKernelDefaults          *bool    `json:"protectKernelDefaults"`
	MakeIPTablesUtilChains         *bool    `json:"makeIPTablesUtilChains"`
	EventRecordQPS                 *int32   `json:"eventRecordQPS"`
	StreamingConnectionIdleTimeout string   `json:"streamingConnectionIdleTimeout"`
	TLSCipherSuites                []string `json:"tlsCipherSuites"`
	TLSMinVersion                  string   `json:"tlsMinVersion"`
}

// kubeletConfigs reads every node's running kubelet configuration through
// the API server's node proxy.
func kubeletConfigs(ctx context.Context, t Target, r *findings) map[string]kubeletConfig {
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return nil
	}
	nodes, err := t.Nodes(ctx)
	if err != nil {
		r.errorf("list nodes: %v", err)
		return nil
	}
	if len(nodes) == 0 {
		r.errorf("the provider lists no nodes for a cluster that should have them")
		return nil
	}
	out := map[string]kubeletConfig{}
	for _, n := range nodes {
		raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", n.Name, "proxy", "configz").DoRaw(ctx)
		if err != nil {
			r.errorf("read the running kubelet configuration of node %s (nodes/proxy configz): %v", n.Name, err)
			continue
		}
		var doc struct {
			KubeletConfig *kubeletConfig `json:"kubeletconfig"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || doc.KubeletConfig == nil {
			r.errorf("node %s: configz is not a kubelet configuration: %v", n.Name, err)
			continue
		}
		out[n.Name] = *doc.KubeletConfig
	}
	return out
}

func boolString(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}

func kubeletEvidence(node, field, want, got string) Evidence {
	return Evidence{Object: "Node/" + node + " kubelet", Field: field, Want: want, Got: got}
}

// judgeKubeletAuth is SP-NODE-001 on one node's running configuration.
func judgeKubeletAuth(node string, c kubeletConfig, r *findings) {
	a := c.Authentication
	if a.Anonymous.Enabled == nil || *a.Anonymous.Enabled {
		r.fail(kubeletEvidence(node, "authentication.anonymous.enabled", "false", boolString(a.Anonymous.Enabled)),
			fmt.Sprintf("kubelet on %s accepts anonymous requests", node))
	} else {
		r.ok(kubeletEvidence(node, "authentication.anonymous.enabled", "false", "false"))
	}
	if a.Webhook.Enabled == nil || !*a.Webhook.Enabled {
		r.fail(kubeletEvidence(node, "authentication.webhook.enabled", "true", boolString(a.Webhook.Enabled)),
			fmt.Sprintf("kubelet on %s does not authenticate bearer tokens with the API server", node))
	}
	if a.X509.ClientCAFile == "" {
		r.fail(kubeletEvidence(node, "authentication.x509.clientCAFile", "the cluster CA", "(none)"),
			fmt.Sprintf("kubelet on %s does not authenticate client certificates", node))
	}
	if c.Authorization.Mode != "Webhook" {
		r.fail(kubeletEvidence(node, "authorization.mode", "Webhook", c.Authorization.Mode),
			fmt.Sprintf("kubelet on %s authorizes with %s, not the API server", node, orNone(c.Authorization.Mode)))
	} else {
		r.ok(kubeletEvidence(node, "authorization.mode", "Webhook", "Webhook"))
	}
}

func checkKubeletAuth(ctx context.Context, t Target) Outcome {
	var r findings
	for node, c := range kubeletConfigs(ctx, t, &r) {
		judgeKubeletAuth(node, c, &r)
	}
	return r.outcome("every kubelet refuses anonymous requests and authorizes with the API server (running configuration)")
}

// checkKubeletReadOnlyPort reads readOnlyPort from each running kubelet
// and proves it: a connection from the node to its own read-only port is
// refused.
func checkKubeletReadOnlyPort(ctx context.Context, t Target) Outcome {
	var r findings
	cfgs := kubeletConfigs(ctx, t, &r)
	nodes, err := t.Nodes(ctx)
	if err != nil {
		r.errorf("list nodes: %v", err)
	}
	for _, n := range nodes {
		c, ok := cfgs[n.Name]
		if !ok {
			continue
		}
		if c.ReadOnlyPort != nil && *c.ReadOnlyPort != 0 {
			r.fail(kubeletEvidence(n.Name, "readOnlyPort", "0", fmt.Sprint(*c.ReadOnlyPort)),
				fmt.Sprintf("kubelet on %s serves the unauthenticated read-only port %d", n.Name, *c.ReadOnlyPort))
		}
		for _, a := range n.Addresses {
			addr := netip.AddrPortFrom(a, kubeletReadOnlyPort)
			ev := Evidence{Object: "Node/" + n.Name, Field: "tcp " + addr.String(), Want: "refused"}
			if err := t.NodeDial(ctx, n.Name, addr, nodeProbeTimeout); err == nil {
				ev.Got = "connected"
				r.fail(ev, fmt.Sprintf("%s accepts connections on the kubelet read-only port", addr))
			} else {
				ev.Got = err.Error()
				r.ok(ev)
			}
		}
	}
	return r.outcome("no kubelet serves the read-only port (configuration and a connection from each node)")
}

// strongKubeletCiphers are the cipher suites CIS 4.2.12 accepts.
var strongKubeletCiphers = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
}

// judgeKubeletHardened is SP-NODE-003 on one node's running configuration.
func judgeKubeletHardened(node string, c kubeletConfig, r *findings) {
	if c.RotateCertificates == nil || !*c.RotateCertificates {
		r.fail(kubeletEvidence(node, "rotateCertificates", "true", boolString(c.RotateCertificates)),
			fmt.Sprintf("kubelet on %s does not rotate its client certificate", node))
	}
	if d, err := time.ParseDuration(c.StreamingConnectionIdleTimeout); c.StreamingConnectionIdleTimeout != "" && (err != nil || d == 0) {
		r.fail(kubeletEvidence(node, "streamingConnectionIdleTimeout", "non-zero", c.StreamingConnectionIdleTimeout),
			fmt.Sprintf("kubelet on %s keeps idle exec/attach streams open forever", node))
	}
	if c.EventRecordQPS != nil && *c.EventRecordQPS == 0 {
		r.fail(kubeletEvidence(node, "eventRecordQPS", "above 0", "0"),
			fmt.Sprintf("kubelet on %s records events without a limit", node))
	}
	if c.MakeIPTablesUtilChains != nil && !*c.MakeIPTablesUtilChains {
		r.fail(kubeletEvidence(node, "makeIPTablesUtilChains", "true", "false"),
			fmt.Sprintf("kubelet on %s does not manage its iptables chains", node))
	}
	switch weak := slices.DeleteFunc(slices.Clone(c.TLSCipherSuites), func(s string) bool { return slices.Contains(strongKubeletCiphers, s) }); {
	case len(c.TLSCipherSuites) == 0:
		r.fail(kubeletEvidence(node, "tlsCipherSuites", "strong suites only", "Go's defaults"),
			fmt.Sprintf("kubelet on %s does not restrict its TLS cipher suites", node))
	case len(weak) > 0:
		r.fail(kubeletEvidence(node, "tlsCipherSuites", "strong suites only", strings.Join(weak, ",")),
			fmt.Sprintf("kubelet on %s allows weak cipher suites %s", node, strings.Join(weak, ",")))
	default:
		r.ok(kubeletEvidence(node, "tlsCipherSuites", "strong suites only", strings.Join(c.TLSCipherSuites, ",")))
	}
	if c.ProtectKernelDefaults == nil || !*c.ProtectKernelDefaults {
		// A warning: a node inside a container (kind) may not be able to
		// set the kernel tunables the kubelet would insist on.
		r.warn(kubeletEvidence(node, "protectKernelDefaults", "true", boolString(c.ProtectKernelDefaults)),
			fmt.Sprintf("kubelet on %s does not protect kernel defaults", node))
	}
}

func checkKubeletHardened(ctx context.Context, t Target) Outcome {
	var r findings
	for node, c := range kubeletConfigs(ctx, t, &r) {
		judgeKubeletHardened(node, c, &r)
	}
	return r.outcome("every kubelet rotates certificates, allows only strong TLS ciphers and limits idle streams and events (running configuration)")
}

// kubeletFiles are kubeadm's kubelet files on a node and the widest mode
// CIS section 4.1 allows for each.
var kubeletFiles = []struct {
	path string
	max  fs.FileMode
	ref  string
}{
	{"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", 0o644, "4.1.1"},
	{"/etc/kubernetes/kubelet.conf", 0o600, "4.1.5"},
	{"/etc/kubernetes/pki/ca.crt", 0o644, "4.1.7"},
	{"/var/lib/kubelet/config.yaml", 0o600, "4.1.9"},
}

func checkKubeletFiles(ctx context.Context, t Target) Outcome {
	var r findings
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return Errorf("list nodes: %v", err)
	}
	for _, n := range nodes {
		for _, f := range kubeletFiles {
			ev := Evidence{Object: "Node/" + n.Name + " " + f.path, Field: "mode", Want: fmt.Sprintf("%#o or stricter (CIS %s)", f.max, f.ref)}
			st, err := t.NodeStat(ctx, n.Name, f.path)
			if err != nil {
				r.errorf("node %s: stat %s: %v", n.Name, f.path, err)
				continue
			}
			mode := st.Mode().Perm()
			ev.Got = fmt.Sprintf("%#o", mode)
			if mode&^f.max != 0 {
				r.fail(ev, fmt.Sprintf("%s on node %s is %#o, wider than %#o", f.path, n.Name, mode, f.max))
			} else {
				r.ok(ev)
			}
		}
	}
	return r.outcome("the kubelet's unit, kubeconfig, config and client CA are private on every node")
}

// ciliumCNIConfig is where the Cilium agent writes the node's CNI
// configuration.
const ciliumCNIConfig = "/etc/cni/net.d/05-cilium.conflist"

// checkCilium: every node the provider runs is registered and Ready, the
// Cilium agent runs ready on each of them, the operator is available, and
// each node's CNI configuration is Cilium's.
func checkCilium(ctx context.Context, t Target) Outcome {
	var r findings
	if cni := t.Info().Spec.Network.CNI; cni != "cilium" {
		r.fail(Evidence{Object: "Blueprint", Field: "spec.network.cni", Want: "cilium", Got: cni}, "the blueprint does not ask for Cilium")
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return Errorf("list nodes: %v", err)
	}
	for _, n := range nodes {
		ev := Evidence{Object: "Node/" + n.Name, Field: "status.conditions[Ready]", Want: "True"}
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			ev.Got = "not registered"
			r.fail(ev, fmt.Sprintf("node %s runs but is not registered with the API server", n.Name))
			continue
		case err != nil:
			r.errorf("get node %s: %v", n.Name, err)
			continue
		}
		ev.Got = string(nodeReady(node))
		if ev.Got != string(corev1.ConditionTrue) {
			r.fail(ev, fmt.Sprintf("node %s is not Ready", n.Name))
		} else {
			r.ok(ev)
		}
		cni := Evidence{Object: "Node/" + n.Name + " " + ciliumCNIConfig, Want: "present (Cilium's CNI configuration)"}
		if _, err := t.NodeStat(ctx, n.Name, ciliumCNIConfig); err != nil {
			cni.Got = err.Error()
			r.fail(cni, fmt.Sprintf("node %s has no Cilium CNI configuration", n.Name))
		} else {
			cni.Got = "present"
			r.ok(cni)
		}
	}
	ds, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	dsEv := Evidence{Object: "DaemonSet/kube-system/cilium", Field: "status", Want: fmt.Sprintf("%d ready of %d", len(nodes), len(nodes))}
	switch {
	case apierrors.IsNotFound(err):
		dsEv.Got = "missing"
		r.fail(dsEv, "the Cilium agent DaemonSet is missing")
	case err != nil:
		r.errorf("get the Cilium DaemonSet: %v", err)
	default:
		st := ds.Status
		dsEv.Got = fmt.Sprintf("%d ready of %d scheduled", st.NumberReady, st.DesiredNumberScheduled)
		if int(st.DesiredNumberScheduled) != len(nodes) || st.NumberReady != st.DesiredNumberScheduled || st.NumberUnavailable > 0 {
			r.fail(dsEv, fmt.Sprintf("the Cilium agent is not ready on every node (%s)", dsEv.Got))
		} else {
			r.ok(dsEv)
		}
	}
	op, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "cilium-operator", metav1.GetOptions{})
	opEv := Evidence{Object: "Deployment/kube-system/cilium-operator", Field: "status.availableReplicas", Want: "at least 1"}
	switch {
	case apierrors.IsNotFound(err):
		opEv.Got = "missing"
		r.fail(opEv, "the Cilium operator is missing")
	case err != nil:
		r.errorf("get the Cilium operator: %v", err)
	default:
		opEv.Got = fmt.Sprint(op.Status.AvailableReplicas)
		if !deploymentAvailable(op) {
			r.fail(opEv, "the Cilium operator is not available")
		} else {
			r.ok(opEv)
		}
	}
	return r.outcome(fmt.Sprintf("Cilium is the CNI of all %d nodes, its agent ready on each and its operator available", len(nodes)))
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	return d.Status.AvailableReplicas >= 1
}

// checkNodeIsolation proves with connections that the cluster's nodes
// cannot reach another environment's nodes. First it proves the probe
// itself can succeed — a node reaches a kubelet of its own cluster — or
// every "refused" would mean nothing.
func checkNodeIsolation(ctx context.Context, t Target) Outcome {
	var r findings
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return Errorf("list nodes: %v", err)
	}
	if len(nodes) == 0 {
		return Errorf("the provider lists no nodes")
	}
	peers, err := t.PeerNodes(ctx)
	if err != nil {
		return Errorf("list other environments' nodes: %v", err)
	}
	env := t.Info().Environment
	var foreign []Node
	for _, p := range peers {
		if p.Environment != env {
			foreign = append(foreign, p)
		}
	}
	if len(foreign) == 0 {
		return Skip("no cluster of another environment runs on this machine to probe")
	}
	from := nodes[0]
	// Non-vacuity: the same probe to a node of this cluster must connect.
	own := nodes[len(nodes)-1]
	if len(own.Addresses) == 0 {
		return Errorf("node %s has no address", own.Name)
	}
	self := netip.AddrPortFrom(own.Addresses[0], kubeletPort)
	selfEv := Evidence{Object: "Node/" + from.Name, Field: "tcp " + self.String() + " (own cluster)", Want: "connected"}
	if err := t.NodeDial(ctx, from.Name, self, nodeProbeTimeout); err != nil {
		selfEv.Got = err.Error()
		return Outcome{Status: StatusError, Reason: fmt.Sprintf("the probe cannot reach its own cluster's kubelet %s (%v), so refusals elsewhere prove nothing", self, err), Evidence: []Evidence{selfEv}}
	}
	selfEv.Got = "connected"
	r.ok(selfEv)
	for _, p := range foreign {
		ports := []uint16{kubeletPort}
		if p.Role == "control-plane" {
			ports = append(ports, apiServerNodePort)
		}
		for _, a := range p.Addresses {
			for _, port := range ports {
				addr := netip.AddrPortFrom(a, port)
				ev := Evidence{Object: "Node/" + from.Name, Field: fmt.Sprintf("tcp %s (%s node %s)", addr, p.Environment, p.Name), Want: "no connection"}
				if err := t.NodeDial(ctx, from.Name, addr, nodeProbeTimeout); err == nil {
					ev.Got = "connected"
					r.fail(ev, fmt.Sprintf("node %s (%s) reaches %s node %s at %s", from.Name, env, p.Environment, p.Name, addr))
				} else {
					ev.Got = err.Error()
					r.ok(ev)
				}
			}
		}
	}
	return r.outcome(fmt.Sprintf("no node of this cluster reaches the %d node(s) of other environments (probed from %s; its own cluster's kubelet answers the same probe)", len(foreign), from.Name))
}
