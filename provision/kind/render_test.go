package kind

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/kind/images"
)

func example(t *testing.T, env string) *blueprints.Blueprint {
	t.Helper()
	bps, err := blueprints.Load(filepath.Join("..", "..", "blueprints", "examples", "kind", env+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return bps[0]
}

// upstream is an image set as users get by default: a node image, kubeadm's
// own control-plane images.
var upstream = images.Set{Node: images.Ref{Repository: "kindest/node", Tag: "v1.37.2"}}

// offline is an image set as `secprov images build` makes it.
var offline = images.Set{Offline: true,
	Node:                images.Ref{Repository: "secprov.local/kind-node", Tag: "v1.37.2-0123456789ab"},
	KubeImageRepository: "secprov.local",
	Etcd:                images.Ref{Repository: "secprov.local/etcd", Tag: "v3.7.3"},
	CoreDNS:             images.Ref{Repository: "secprov.local/coredns", Tag: "v1.12.4"},
}

type renderCase struct {
	name  string
	env   string
	edit  func(*v1alpha1.Spec)
	set   images.Set
	facts HostFacts
}

func (c renderCase) input(t *testing.T) RenderInput {
	bp := example(t, c.env)
	spec := bp.Spec
	if c.edit != nil {
		c.edit(&spec)
	}
	in := RenderInput{Name: bp.Name(), Spec: spec, Dir: "/state/clusters/" + bp.Name(), Images: c.set, APIServerPort: 41234, Host: c.facts}
	if spec.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS {
		in.KMSSocket = in.Dir + "/run/kms/kms.sock"
	}
	return in
}

var renderCases = []renderCase{
	{name: "prod", env: "prod", set: upstream},
	{name: "test", env: "test", set: upstream},
	{name: "test-offline-cgroupv1", env: "test", set: offline, facts: HostFacts{CgroupV1: true}},
	{name: "prod-kernel-defaults", env: "prod", set: upstream, facts: HostFacts{KernelDefaults: true}},
	{name: "prod-public-no-audit-3-workers", env: "prod", set: upstream, edit: func(s *v1alpha1.Spec) {
		s.APIServer.Endpoint = v1alpha1.EndpointPublic
		off, three := false, 3
		s.Audit.Enabled = &off
		s.Provider.Kind.Workers = &three
	}},
	{name: "test-no-workers", env: "test", set: upstream, edit: func(s *v1alpha1.Spec) {
		zero := 0
		s.Provider.Kind.Workers = &zero
	}},
}

// TestRenderGolden: the kind configuration and the files written before
// create, for prod- and test-like blueprints and the host and image
// variants (go test -update rewrites them).
func TestRenderGolden(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Render(c.input(t))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			b.Write(r.Config)
			for _, f := range r.Files {
				fmt.Fprintf(&b, "--- file %s\n%s", f.Path, f.Data)
			}
			golden.Check(t, c.name+".golden.yaml", b.Bytes())
		})
	}
}

// parsed is a rendered configuration read back: the kind Cluster (strict,
// as kind reads it) and its kubeadm patches by kind.
type parsed struct {
	cluster v1alpha4.Cluster
	patches map[string]map[string]any
}

func parse(t *testing.T, r *Rendered) parsed {
	t.Helper()
	var p parsed
	if err := yaml.UnmarshalStrict(r.Config, &p.cluster); err != nil {
		t.Fatalf("kind config does not read back strictly: %v", err)
	}
	p.patches = map[string]map[string]any{}
	for _, doc := range p.cluster.KubeadmConfigPatches {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		p.patches[m["kind"].(string)] = m
	}
	return p
}

func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func argsOf(t *testing.T, v any) map[string]any {
	t.Helper()
	out := map[string]any{}
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("extraArgs is %T", v)
	}
	for _, a := range list {
		m := a.(map[string]any)
		out[m["name"].(string)] = m["value"]
	}
	return out
}

// TestRenderCarriesTheHardening: every flag hardening renders for the
// control plane reaches kubeadm with the rendered value, except the ones
// kubeadm owns and the API server's bind address, each named here; the
// cluster networks, mounts and kubelet hardening are as the blueprint
// says.
func TestRenderCarriesTheHardening(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.input(t)
			r, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			p := parse(t, r)
			cc := p.patches["ClusterConfiguration"]
			where := map[string][]string{
				hardening.Etcd: {"etcd", "local", "extraArgs"}, hardening.APIServer: {"apiServer", "extraArgs"},
				hardening.ControllerManager: {"controllerManager", "extraArgs"}, hardening.Scheduler: {"scheduler", "extraArgs"},
			}
			cp := ControlPlane(in.Name, in.Spec, in.Dir)
			for _, comp := range Components {
				got := argsOf(t, dig(cc, where[comp]...))
				for _, f := range cp.Flags(comp) {
					v, ok := got[f.Name]
					switch {
					case comp == hardening.APIServer && (f.Name == "advertise-address" || f.Name == "secure-port"):
						if ok {
							t.Errorf("%s --%s is kubeadm's; rendered %v", comp, f.Name, v)
						}
					case comp == hardening.APIServer && f.Name == "bind-address" && f.Value == host:
						if v != "$("+nodeIPEnv+")" {
							t.Errorf("private API server binds %v, want the node's address", v)
						}
					case !ok || v != f.Value:
						t.Errorf("%s --%s = %v (set %v), want %q", comp, f.Name, v, ok, f.Value)
					}
				}
			}
			if v, ok := argsOf(t, dig(cc, "controllerManager", "extraArgs"))["enable-hostpath-provisioner"]; !ok || v != nil {
				t.Errorf("kind's hostpath provisioner is not turned off: %v", v)
			}
			n := p.cluster.Networking
			if n.PodSubnet != in.Spec.Network.PodCIDR || n.ServiceSubnet != in.Spec.Network.ServiceCIDR || !n.DisableDefaultCNI || n.KubeProxyMode != "none" {
				t.Errorf("networking %+v does not follow spec.network with Cilium", n)
			}
			wantAddr := "127.0.0.1"
			if in.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic {
				wantAddr = "0.0.0.0"
			}
			if n.APIServerAddress != wantAddr || n.APIServerPort != 41234 {
				t.Errorf("API server published on %s:%d, want %s:41234", n.APIServerAddress, n.APIServerPort, wantAddr)
			}
			if got, want := len(p.cluster.Nodes), 1+*in.Spec.Provider.Kind.Workers; got != want || !slices.Equal(r.Nodes, NodeNames(in.Name, want-1)) {
				t.Errorf("%d nodes %v, want %d", got, r.Nodes, want)
			}
			for _, node := range p.cluster.Nodes {
				if node.Image != in.Images.Node.String() {
					t.Errorf("node image %s, want %s", node.Image, in.Images.Node)
				}
				for _, m := range node.ExtraMounts {
					if !strings.HasPrefix(m.HostPath, in.Dir+"/") {
						t.Errorf("%s mounts %s from outside the cluster directory", node.Role, m.HostPath)
					}
					// The audit log is written; the KMS plugin's socket is
					// dialled, and the plugin makes a new one when it starts.
					rw := m.HostPath == newLayout(in.Dir).LogDir() || (in.KMSSocket != "" && m.HostPath == filepath.Dir(in.KMSSocket))
					if m.Readonly == rw {
						t.Errorf("%s mounts %s read-only=%v", node.Role, m.HostPath, m.Readonly)
					}
				}
			}
			k := p.patches["KubeletConfiguration"]
			for path, want := range map[string]any{
				"authentication.anonymous.enabled": false, "authentication.webhook.enabled": true, "authorization.mode": "Webhook",
				"readOnlyPort": float64(0), "rotateCertificates": true, "serverTLSBootstrap": true,
				"protectKernelDefaults": c.facts.KernelDefaults, "streamingConnectionIdleTimeout": "5m0s",
			} {
				if got := dig(k, strings.Split(path, ".")...); got != want {
					t.Errorf("kubelet %s = %v, want %v", path, got, want)
				}
			}
			if got := dig(k, "failCgroupV1"); (got != nil) != c.facts.CgroupV1 || (got != nil && got != false) {
				t.Errorf("failCgroupV1 = %v on a cgroup v1 host = %v", got, c.facts.CgroupV1)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	c := renderCases[0]
	for name, edit := range map[string]func(*RenderInput){
		"no node image": func(in *RenderInput) { in.Images = images.Set{} },
		"no port":       func(in *RenderInput) { in.APIServerPort = 0 },
		"vault-kms without the plugin's socket": func(in *RenderInput) {
			in.Spec.EncryptionAtRest.Provider, in.KMSSocket = v1alpha1.EncryptionVaultKMS, ""
		},
		"etcd image kubeadm cannot name": func(in *RenderInput) {
			in.Images.Etcd = images.Ref{Repository: "registry.example/etcd-server", Tag: "v3"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := c.input(t)
			edit(&in)
			if _, err := Render(in); err == nil {
				t.Error("rendered; want an error")
			}
		})
	}
}

// TestTweakReachesKubeadm: tests build weakened clusters by tweaking the
// flags; the tweak wins over the kind adjustments.
func TestTweakReachesKubeadm(t *testing.T) {
	in := renderCases[0].input(t)
	in.Tweak = func(comp string, f hardening.Flags) hardening.Flags {
		if comp == hardening.APIServer {
			return f.With("anonymous-auth", "true")
		}
		return f
	}
	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, r)
	if v := argsOf(t, dig(p.patches["ClusterConfiguration"], "apiServer", "extraArgs"))["anonymous-auth"]; v != "true" {
		t.Errorf("anonymous-auth = %v after the tweak", v)
	}
}
