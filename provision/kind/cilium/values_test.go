package cilium

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/kind/images"
)

// kindSpec loads an example blueprint switched to the kind provider, as a
// user would write it, with the loader's defaults applied.
func kindSpec(t *testing.T, example string, workers int) (name string, spec v1alpha1.Spec) {
	t.Helper()
	data, err := os.ReadFile("../../../blueprints/examples/kind/" + example)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`workers: \d+`).ReplaceAll(data, []byte(fmt.Sprintf("workers: %d", workers)))
	bps, err := blueprints.LoadBytes(example, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(bps) != 1 || bps[0].Spec.Provider.Type != v1alpha1.ProviderKind {
		t.Fatalf("%s: want one kind blueprint, got %d", example, len(bps))
	}
	return bps[0].Metadata.Name, bps[0].Spec
}

var upstreamSet = images.Set{
	Node:           images.Ref{Repository: "kindest/node", Tag: "v1.37.2"},
	CiliumAgent:    images.Ref{Repository: "quay.io/cilium/cilium", Tag: "v1.20.2"},
	CiliumOperator: images.Ref{Repository: "quay.io/cilium/operator-generic", Tag: "v1.20.2"},
}

var offlineSet = images.Set{
	Offline:        true,
	Node:           images.Ref{Repository: "secprov.local/kind-node", Tag: "v1.37.2-0123456789ab"},
	CiliumAgent:    images.Ref{Repository: "secprov.local/cilium-agent", Tag: "v1.20.2-89abcdef0123"},
	CiliumOperator: images.Ref{Repository: "secprov.local/cilium-operator", Tag: "v1.20.2-456789abcdef"},
}

type valuesCase struct {
	name    string
	example string
	workers int
	images  images.Set
	drop    []string
}

var valuesCases = []valuesCase{
	// Upstream images on a host that grants every capability.
	{name: "prod", example: "prod.yaml", workers: 1, images: upstreamSet},
	// The offline set on a host like CI's, whose nodes lack SYS_RESOURCE.
	{name: "test", example: "test.yaml", workers: 2, images: offlineSet, drop: []string{"CAP_SYS_RESOURCE"}},
}

func (c valuesCase) inputs(t *testing.T) Inputs {
	name, spec := kindSpec(t, c.example, c.workers)
	return Inputs{
		Spec:             spec,
		ClusterName:      name,
		APIServerHost:    name + "-control-plane",
		APIServerPort:    6443,
		Images:           c.images,
		DropCapabilities: c.drop,
	}
}

func TestValuesGolden(t *testing.T) {
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			vals, err := Values(c.inputs(t))
			if err != nil {
				t.Fatal(err)
			}
			out, err := yaml.Marshal(vals)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "values-"+c.name+".yaml", out)
		})
	}
}

// TestValuesFacts states what the golden files must keep saying, so an
// -update cannot quietly weaken them.
func TestValuesFacts(t *testing.T) {
	for _, c := range valuesCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(t)
			vals, err := Values(in)
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string]any{
				"kubeProxyReplacement":  true,
				"k8sServiceHost":        in.APIServerHost,
				"k8sServicePort":        6443,
				"routingMode":           "tunnel",
				"tunnelProtocol":        "vxlan",
				"policyEnforcementMode": "default",
				"ipam.mode":             "cluster-pool",
				"ipam.operator.clusterPoolIPv4PodCIDRList": []any{in.Spec.Network.PodCIDR},
				"hubble.enabled":           true,
				"hubble.relay.enabled":     false,
				"l7Proxy":                  false,
				"envoy.enabled":            false,
				"operator.replicas":        1,
				"cni.exclusive":            true,
				"image.repository":         in.Images.CiliumAgent.Repository,
				"image.tag":                in.Images.CiliumAgent.Tag,
				"image.useDigest":          false,
				"operator.image.override":  in.Images.CiliumOperator.String(),
				"operator.image.useDigest": false,
				"securityContext.capabilities.ciliumAgent.length": 13 - len(c.drop),
			} {
				got := lookup(vals, path)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}
			wantPull := map[bool]string{true: "Never", false: "IfNotPresent"}[in.Images.Offline]
			if got := lookup(vals, "image.pullPolicy"); got != wantPull {
				t.Errorf("image.pullPolicy = %v, want %s", got, wantPull)
			}
			for _, key := range []string{"ciliumAgent", "cleanCiliumState", "mountCgroup", "applySysctlOverwrites"} {
				caps := lookup(vals, "securityContext.capabilities."+key).([]any)
				for _, d := range c.drop {
					if slices.Contains(caps, any(strings.TrimPrefix(d, "CAP_"))) {
						t.Errorf("%s still requests dropped %s", key, d)
					}
				}
			}
		})
	}
}

// TestValuesTransparentEncryption: wireguard turns Cilium's WireGuard on;
// none and unset render it off, explicitly.
func TestValuesTransparentEncryption(t *testing.T) {
	for mode, want := range map[string]string{
		v1alpha1.TransparentEncryptionWireGuard: "map[enabled:true type:wireguard]",
		v1alpha1.TransparentEncryptionNone:      "map[enabled:false]",
		"":                                      "map[enabled:false]",
	} {
		in := valuesCases[0].inputs(t)
		in.Spec.Network.TransparentEncryption = mode
		vals, err := Values(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(lookup(vals, "encryption")); got != want {
			t.Errorf("%q: encryption = %s, want %s", mode, got, want)
		}
	}
}

func TestValuesErrors(t *testing.T) {
	base := valuesCases[0].inputs(t)
	for _, c := range []struct {
		name   string
		change func(*Inputs)
		want   []string
	}{
		{"overlap", func(in *Inputs) { in.Spec.Network.ServiceCIDR = "10.66.128.0/20" }, []string{"overlaps spec.network.serviceCIDR"}},
		{"pod CIDR too small", func(in *Inputs) { in.Spec.Network.PodCIDR = "10.64.0.0/24" }, []string{"too small", "needs a /23 or larger"}},
		{"pod CIDR too small for workers", func(in *Inputs) {
			w := 4
			in.Spec.Provider.Kind.Workers = &w
			in.Spec.Network.PodCIDR = "10.64.0.0/22"
		}, []string{"5 nodes", "needs a /21"}},
		{"IPv6 pod CIDR", func(in *Inputs) { in.Spec.Network.PodCIDR = "fd00::/104" }, []string{"not an IPv4 CIDR"}},
		{"cni none", func(in *Inputs) { in.Spec.Network.CNI = v1alpha1.CNINone }, []string{`spec.network.cni is "none"`}},
		{"ipsec", func(in *Inputs) { in.Spec.Network.TransparentEncryption = v1alpha1.TransparentEncryptionIPsec }, []string{`transparentEncryption "ipsec": Cilium is installed with wireguard or none`}},
		{"every problem at once", func(in *Inputs) {
			in.APIServerHost, in.APIServerPort = "", 0
			in.Images = images.Set{}
			in.DropCapabilities = []string{"NET_ADMIN", "not a cap"}
		}, []string{"API server host is empty", "port 0", "no CiliumAgent image", "no CiliumOperator image", "CAP_NET_ADMIN", `"not a cap"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := base
			kp := *base.Spec.Provider.Kind
			in.Spec.Provider.Kind = &kp
			c.change(&in)
			_, err := Values(in)
			if err == nil {
				t.Fatal("Values accepted bad inputs")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCiliumClusterName(t *testing.T) {
	long := strings.Repeat("a", 30) + "-prod-cluster-one"
	for _, c := range []struct{ in, want string }{
		{"shop-prod", "shop-prod"},
		{strings.Repeat("x", 32), strings.Repeat("x", 32)},
	} {
		if got := ciliumClusterName(c.in); got != c.want {
			t.Errorf("ciliumClusterName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := ciliumClusterName(long)
	if len(got) > 32 || got != ciliumClusterName(long) || got == ciliumClusterName(long+"x") {
		t.Errorf("ciliumClusterName(%q) = %q: want ≤ 32 characters, stable, distinct", long, got)
	}
}

// lookup follows a dotted path; a final ".length" gives a list's length.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			if k == "length" {
				return len(x)
			}
			return nil
		default:
			return nil
		}
	}
	return v
}

// chartDirOnce locates the chart once per test binary.
var chartDirOnce = sync.OnceValues(func() (string, error) { return ChartDir(context.Background()) })

func TestUngrantableCapabilities(t *testing.T) {
	const full = 1<<41 - 1 // every capability of Linux 6.x
	for _, c := range []struct {
		bounding uint64
		want     []string
	}{
		{full, nil},
		{full &^ (1 << 24), []string{"SYS_RESOURCE"}}, // these machines
		{full &^ (1<<24 | 1<<34), []string{"SYSLOG", "SYS_RESOURCE"}},
		{full &^ (1 << 40), nil}, // CHECKPOINT_RESTORE: nothing the chart asks for
	} {
		if got := UngrantableCapabilities(c.bounding); !slices.Equal(got, c.want) {
			t.Errorf("UngrantableCapabilities(%#x) = %v, want %v", c.bounding, got, c.want)
		}
	}
	// Every capability the chart requests has a number.
	for _, c := range capabilities {
		for _, name := range c.caps {
			if _, ok := capabilityNumbers[name]; !ok {
				t.Errorf("capability %s (%s) has no number in capabilityNumbers", name, c.key)
			}
		}
	}
}
