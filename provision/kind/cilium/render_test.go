package cilium

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints/golden"
)

// TestRenderGolden renders the pinned chart in-process for the offline,
// capability-dropping case (the one CI runs) and holds the manifests in a
// golden file; then it checks the facts the cluster depends on in them.
func TestRenderGolden(t *testing.T) {
	dir, err := chartDirOnce()
	if err != nil {
		t.Fatal(err)
	}
	c := valuesCases[1]
	in := c.inputs(t)
	vals, err := Values(in)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := Render(t.Context(), dir, vals, "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := Render(t.Context(), dir, vals, "")
	if err != nil {
		t.Fatal(err)
	}
	if again != manifest {
		t.Fatal("two renders of the same values differ: something in the chart is random (generated certificates?), so every up would upgrade")
	}
	golden.Check(t, "manifests-"+c.name+".yaml", []byte(manifest))

	objs := splitManifest(t, manifest)
	ds := decodeObject[appsv1.DaemonSet](t, objs, "DaemonSet", "cilium")
	dep := decodeObject[appsv1.Deployment](t, objs, "Deployment", "cilium-operator")
	cm := decodeObject[corev1.ConfigMap](t, objs, "ConfigMap", "cilium-config")

	agent := in.Images.CiliumAgent.String()
	for _, ctr := range slices.Concat(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers) {
		if ctr.Image != agent {
			t.Errorf("agent DaemonSet container %s runs %q, want the set's agent %q", ctr.Name, ctr.Image, agent)
		}
		if ctr.ImagePullPolicy != corev1.PullNever {
			t.Errorf("agent DaemonSet container %s pull policy %q, want Never for the offline set", ctr.Name, ctr.ImagePullPolicy)
		}
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != in.Images.CiliumOperator.String() {
		t.Errorf("operator runs %q, want the set's operator %q", got, in.Images.CiliumOperator)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("operator replicas = %v, want 1", dep.Spec.Replicas)
	}

	// Every image anywhere in the manifests is one of the set's two: an
	// image the set does not carry (Envoy, Relay, certgen) would never pull.
	for _, line := range strings.Split(manifest, "\n") {
		if img, ok := strings.CutPrefix(strings.TrimSpace(line), "image: "); ok {
			img = strings.Trim(img, `"`)
			if img != agent && img != in.Images.CiliumOperator.String() {
				t.Errorf("manifests run image %q, which the image set does not have", img)
			}
		}
	}
	for _, o := range objs {
		if o.Kind == "DaemonSet" && o.Name != "cilium" || o.Kind == "Deployment" && o.Name != "cilium-operator" {
			t.Errorf("unexpected workload %s %s (Envoy, Relay and UI are off)", o.Kind, o.Name)
		}
	}

	// No container asks for a capability the nodes cannot grant.
	for _, ctr := range slices.Concat(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers) {
		if sc := ctr.SecurityContext; sc != nil && sc.Capabilities != nil {
			for _, capName := range sc.Capabilities.Add {
				for _, d := range in.DropCapabilities {
					if string(capName) == strings.TrimPrefix(d, "CAP_") {
						t.Errorf("container %s still adds %s", ctr.Name, capName)
					}
				}
			}
		}
	}
	if strings.Contains(manifest, "SYS_RESOURCE") {
		t.Error("SYS_RESOURCE appears in the manifests although it is dropped")
	}

	// kube-proxy replacement reaches the API server without a Service.
	env := map[string]string{}
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["KUBERNETES_SERVICE_HOST"] != in.APIServerHost || env["KUBERNETES_SERVICE_PORT"] != fmt.Sprint(in.APIServerPort) {
		t.Errorf("agent env KUBERNETES_SERVICE_HOST/PORT = %q/%q, want %q/%d", env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"], in.APIServerHost, in.APIServerPort)
	}
	for key, want := range map[string]string{
		"kube-proxy-replacement":      "true",
		"routing-mode":                "tunnel",
		"tunnel-protocol":             "vxlan",
		"enable-policy":               "default",
		"ipam":                        "cluster-pool",
		"cluster-pool-ipv4-cidr":      in.Spec.Network.PodCIDR,
		"cluster-pool-ipv4-mask-size": "24",
		"enable-l7-proxy":             "false",
		"enable-hubble":               "true",
		"cni-exclusive":               "true",
		"enable-ipv6":                 "false",
		"cluster-name":                in.ClusterName,
	} {
		if got, ok := cm.Data[key]; !ok || got != want {
			t.Errorf("cilium-config %s = %q (present %v), want %q", key, got, ok, want)
		}
	}
	if v, ok := cm.Data["hubble-listen-address"]; ok {
		t.Errorf("cilium-config has hubble-listen-address %q: Hubble's network listener should be off", v)
	}
}

// TestCapabilitiesMatchChart keeps the capability lists Values renders equal
// to the pinned chart's defaults, so dropping one never silently also
// drops one the chart added in a later version.
func TestCapabilitiesMatchChart(t *testing.T) {
	dir, err := chartDirOnce()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chartValues struct {
		SecurityContext struct {
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"securityContext"`
	}
	if err := yaml.Unmarshal(data, &chartValues); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, c := range capabilities {
		got[c.key] = c.caps
	}
	for key, want := range chartValues.SecurityContext.Capabilities {
		if !slices.Equal(got[key], want) {
			t.Errorf("securityContext.capabilities.%s: secprov renders %v, the chart's default is %v; update capabilities in values.go", key, got[key], want)
		}
	}
	if len(got) != len(chartValues.SecurityContext.Capabilities) {
		t.Errorf("secprov renders capability lists %v, the chart has %d", slices.Sorted(maps.Keys(got)), len(chartValues.SecurityContext.Capabilities))
	}
}

type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Name string `json:"-"`
	raw  []byte
}

func splitManifest(t *testing.T, manifest string) []object {
	t.Helper()
	var out []object
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("manifest document does not parse: %v\n%s", err, doc)
		}
		if o.Kind == "" {
			continue // a document of comments only
		}
		o.Name, o.raw = o.Metadata.Name, []byte(doc)
		out = append(out, o)
	}
	return out
}

func decodeObject[T any](t *testing.T, objs []object, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			v := new(T)
			if err := yaml.UnmarshalStrict(o.raw, v); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return v
		}
	}
	t.Fatalf("the manifests have no %s %s", kind, name)
	return nil
}
