package cilium

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/kind/images"
)

// Inputs is what the kind provider knows when it installs Cilium.
type Inputs struct {
	// Spec is the defaulted blueprint spec (v1alpha1.SetDefaults applied):
	// spec.network's pod and service CIDRs, spec.provider.kind's workers.
	Spec v1alpha1.Spec
	// ClusterName is the cluster's name (the blueprint's metadata.name).
	ClusterName string
	// APIServerHost and APIServerPort reach the API server from inside the
	// nodes, without a Service: Cilium replaces kube-proxy, so it cannot use
	// the kubernetes Service to find the API server. For kind these are the
	// control-plane node's container name and 6443.
	APIServerHost string
	APIServerPort int
	// Images is the image set the cluster runs; the chart runs its
	// CiliumAgent and CiliumOperator refs.
	Images images.Set
	// DropCapabilities are Linux capabilities the nodes cannot grant (names
	// as in the chart, CAP_ prefix optional): the provider reads the node's
	// capability bounding set and passes what is missing. They are removed
	// from what the agent and its init containers request, since a
	// container asking for a capability its runtime cannot grant never
	// starts.
	DropCapabilities []string
}

// Values the rendering fixes. Exported for the provider and verify, which
// judge a live cluster against them.
const (
	// PodCIDRMaskSize is the per-node block cut from the pod CIDR.
	PodCIDRMaskSize = 24
	// OperatorReplicas: one operator is enough for a kind cluster; a second
	// would only wait for leader election on the same few nodes.
	OperatorReplicas = 1
	// TunnelProtocol: VXLAN works on every kernel these nodes run; GENEVE
	// does not on all of them.
	TunnelProtocol = "vxlan"
)

// capabilities are what the chart's securityContext.capabilities lists
// grant the agent's containers, keyed by the chart's value names. They are
// rendered in full, filtered by DropCapabilities, so the values say exactly
// what secprov grants; a test holds them equal to the pinned chart's
// defaults, so a chart update that changes them is noticed.
var capabilities = []struct {
	key  string
	caps []string
}{
	{"ciliumAgent", []string{"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SYSLOG"}},
	{"mountCgroup", []string{"SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"}},
	{"applySysctlOverwrites", []string{"SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"}},
	{"cleanCiliumState", []string{"NET_ADMIN", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE"}},
}

// capabilityNumbers are the Linux capability numbers (linux/capability.h)
// of the capabilities in capabilities.
var capabilityNumbers = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "SYS_MODULE": 16, "SYS_CHROOT": 18,
	"SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "SYSLOG": 34,
}

// UngrantableCapabilities returns the capabilities the chart's containers
// request that a node with capability bounding set bounding (CapBnd in
// /proc/1/status of the node, as a number) cannot grant, sorted: what the
// provider passes as Inputs.DropCapabilities.
func UngrantableCapabilities(bounding uint64) []string {
	var out []string
	for name, n := range capabilityNumbers {
		if bounding&(1<<n) == 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// requiredCapabilities cannot be dropped: without them the agent cannot
// load its datapath or program routes, so an install would only fail later
// with a less clear error.
var requiredCapabilities = []string{"NET_ADMIN", "SYS_ADMIN"}

var capabilityName = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

// Values renders the chart values for in. Every problem with in is
// reported, joined, in one error.
func Values(in Inputs) (map[string]any, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if in.ClusterName == "" {
		bad("cluster name is empty")
	}
	if in.Spec.Network.CNI != v1alpha1.CNICilium {
		bad("spec.network.cni is %q: Cilium is installed only for cni %q", in.Spec.Network.CNI, v1alpha1.CNICilium)
	}
	if in.APIServerHost == "" {
		bad("API server host is empty: kube-proxy replacement needs the address nodes reach the API server at (for kind, the control-plane container's name)")
	}
	if in.APIServerPort < 1 || in.APIServerPort > 65535 {
		bad("API server port %d is not a TCP port (for kind it is 6443)", in.APIServerPort)
	}
	for what, ref := range map[string]images.Ref{"CiliumAgent": in.Images.CiliumAgent, "CiliumOperator": in.Images.CiliumOperator} {
		if ref.Repository == "" || ref.Tag == "" {
			bad("image set has no %s image (repository %q, tag %q)", what, ref.Repository, ref.Tag)
		}
	}
	pod, err := podCIDR(in.Spec)
	if err != nil {
		errs = append(errs, err)
	}
	encryption := map[string]any{"enabled": false}
	switch in.Spec.Network.TransparentEncryption {
	case v1alpha1.TransparentEncryptionWireGuard:
		// Pod traffic between nodes in WireGuard; the agent makes the
		// cilium_wg0 device and exchanges keys through the node objects.
		encryption = map[string]any{"enabled": true, "type": "wireguard"}
	case "", v1alpha1.TransparentEncryptionNone:
	default:
		bad("spec.network.transparentEncryption %q: Cilium is installed with wireguard or none", in.Spec.Network.TransparentEncryption)
	}
	drop, err := normalizeCapabilities(in.DropCapabilities)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rendering Cilium values for cluster %q: %w", in.ClusterName, err)
	}

	pullPolicy := "IfNotPresent"
	if in.Images.Offline {
		// The offline images are preloaded into the node image and exist in
		// no registry: a pull can only fail, after a DNS timeout, with a
		// vaguer error than ErrImageNeverPull.
		pullPolicy = "Never"
	}
	caps := map[string]any{}
	for _, c := range capabilities {
		// []any, not []string: the chart's JSON schema checks Go types.
		var keep []any
		for _, s := range c.caps {
			if !slices.Contains(drop, s) {
				keep = append(keep, s)
			}
		}
		caps[c.key] = keep
	}

	return map[string]any{
		"cluster": map[string]any{"name": ciliumClusterName(in.ClusterName)},
		// The API server is reached directly: there is no kube-proxy, so the
		// kubernetes Service does not work before Cilium itself runs.
		"kubeProxyReplacement": true,
		"k8sServiceHost":       in.APIServerHost,
		"k8sServicePort":       in.APIServerPort,
		// Pod traffic between nodes in VXLAN: kind nodes share one Docker
		// network with no routes for pod CIDRs, which native routing needs.
		"routingMode":           "tunnel",
		"tunnelProtocol":        TunnelProtocol,
		"policyEnforcementMode": "default",
		"ipam": map[string]any{
			"mode": "cluster-pool",
			"operator": map[string]any{
				"clusterPoolIPv4PodCIDRList": []any{pod.String()},
				"clusterPoolIPv4MaskSize":    PodCIDRMaskSize,
			},
		},
		"encryption": encryption,
		"ipv4":       map[string]any{"enabled": true},
		"ipv6":       map[string]any{"enabled": false},
		// Cilium owns /etc/cni/net.d: no pod starts on another CNI while the
		// agent restarts.
		"cni": map[string]any{"exclusive": true},
		// L7 proxy and Envoy are off: no Envoy image can be built from the
		// pinned sources (Envoy is C++ and not on the Go module proxy), so
		// L7 policy and DNS-aware (toFQDNs) policy are not available. L3/L4
		// policy is enforced by the BPF datapath alone. Notes says so.
		"l7Proxy": false,
		"envoy":   map[string]any{"enabled": false},
		// Hubble records flows on every node, read through the agent's local
		// socket (hubble observe in the agent pod). Its TCP listener serves
		// only Relay, which is off (no image offline), so the listener is
		// removed (null deletes the chart's default) rather than left open;
		// without a listener there is no TLS to set up, and the chart's
		// helm-generated certificates, which change on every render, are
		// not created.
		"hubble": map[string]any{
			"enabled":       true,
			"listenAddress": nil,
			"tls":           map[string]any{"enabled": false},
			"relay":         map[string]any{"enabled": false},
			"ui":            map[string]any{"enabled": false},
		},
		"image": map[string]any{
			"repository": in.Images.CiliumAgent.Repository,
			"tag":        in.Images.CiliumAgent.Tag,
			"useDigest":  false,
			"pullPolicy": pullPolicy,
		},
		"operator": map[string]any{
			"replicas": OperatorReplicas,
			// The chart builds the operator's name from repository + "-generic"
			// + suffix; override names the set's image exactly.
			"image": map[string]any{
				"override":   in.Images.CiliumOperator.String(),
				"useDigest":  false,
				"pullPolicy": pullPolicy,
			},
			"rollOutPods": true,
		},
		// A changed value restarts the agents, so an upgrade takes effect.
		"rollOutCiliumPods": true,
		"securityContext": map[string]any{
			"capabilities": caps,
		},
	}, nil
}

// podCIDR checks spec.network's CIDRs and that the pod CIDR has a
// PodCIDRMaskSize block for every node.
func podCIDR(spec v1alpha1.Spec) (netip.Prefix, error) {
	pod, err := netip.ParsePrefix(spec.Network.PodCIDR)
	if err != nil || !pod.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("spec.network.podCIDR %q is not an IPv4 CIDR", spec.Network.PodCIDR)
	}
	pod = pod.Masked()
	svc, err := netip.ParsePrefix(spec.Network.ServiceCIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("spec.network.serviceCIDR %q is not a CIDR", spec.Network.ServiceCIDR)
	}
	if pod.Overlaps(svc) {
		return netip.Prefix{}, fmt.Errorf("spec.network.podCIDR %s overlaps spec.network.serviceCIDR %s: pick disjoint ranges", pod, svc)
	}
	nodes := 1
	if spec.Provider.Kind != nil {
		nodes += v1alpha1.Int(spec.Provider.Kind.Workers, v1alpha1.DefaultKindWorkers)
	}
	need := bits.Len(uint(nodes - 1)) // blocks of /24 for nodes, as a power of two
	if pod.Bits()+need > PodCIDRMaskSize {
		return netip.Prefix{}, fmt.Errorf("spec.network.podCIDR %s is too small: Cilium gives each of the %d nodes a /%d, so it needs a /%d or larger", pod, nodes, PodCIDRMaskSize, PodCIDRMaskSize-need)
	}
	return pod, nil
}

func normalizeCapabilities(in []string) ([]string, error) {
	var out []string
	var errs []error
	for _, c := range in {
		n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
		switch {
		case !capabilityName.MatchString(n):
			errs = append(errs, fmt.Errorf("drop capability %q is not a capability name", c))
		case slices.Contains(requiredCapabilities, n):
			errs = append(errs, fmt.Errorf("the nodes cannot grant CAP_%s, which Cilium's agent needs to load its datapath: run the nodes where the container runtime can grant it", n))
		case !slices.Contains(out, n):
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// ciliumClusterName is name when Cilium accepts it (at most 32 characters);
// a longer name is cut and given a hash suffix, so it stays unique and
// stable.
func ciliumClusterName(name string) string {
	const limit = 32
	if len(name) <= limit {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("%s-%08x", strings.TrimRight(name[:limit-9], "-"), h.Sum32())
}

// Notes says what the rendered Cilium does not do, for the provider to
// print after an install.
func Notes() string {
	return "Cilium: L7 proxy (Envoy) is off because no Envoy image can be built from pinned sources; " +
		"L3/L4 NetworkPolicy and CiliumNetworkPolicy are enforced, L7 (HTTP, Kafka) and DNS-aware (toFQDNs) rules are not. " +
		"Hubble records flows on each node (hubble observe in a cilium agent pod); Relay, UI and Hubble's network listener are off."
}
