package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/provision/kind/images"
)

func TestStepProgressRendering(t *testing.T) {
	events := []images.Event{
		{Kind: images.EventStart, Step: "rootfs node"},
		{Kind: images.EventStart, Step: "toolchain kubernetes v1.37.2"},
		{Kind: images.EventCached, Step: "toolchain kubernetes v1.37.2", Elapsed: 30 * time.Millisecond},
		{Kind: images.EventStep, Step: "rootfs node", Detail: "packing"},
		{Kind: images.EventDone, Step: "rootfs node", Elapsed: 4*time.Minute + 2*time.Second},
		{Kind: images.EventStart, Step: "image node"},
		{Kind: images.EventFailed, Step: "image node", Elapsed: time.Second, Err: errors.New("docker commit: no space")},
	}
	tests := []struct {
		name    string
		tty     bool
		want    []string
		wantNot []string
	}{
		{"log", false, []string{
			"• rootfs node… 0.0s\n",
			"• rootfs node… 0.0s; toolchain kubernetes v1.37.2… 0.0s\n",
			"✓ toolchain kubernetes v1.37.2 (cached) 0.0s\n",
			"✓ rootfs node 4m2s\n",
			"✗ image node 1.0s: docker commit: no space\n",
		}, []string{"\r", "packing"}},
		{"terminal", true, []string{
			"\r\033[K• rootfs node (packing)… 0.0s",
			"\r\033[K✓ rootfs node 4m2s\n",
		}, nil},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		p := newStepProgress(&buf, tt.tty)
		for _, e := range events {
			p.Event(e)
		}
		p.stop()
		for _, w := range tt.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: output lacks %q:\n%q", tt.name, w, buf.String())
			}
		}
		for _, w := range tt.wantNot {
			if strings.Contains(buf.String(), w) {
				t.Errorf("%s: output has %q:\n%q", tt.name, w, buf.String())
			}
		}
	}
}

func writeTestManifest(t *testing.T, cache string) *images.Manifest {
	t.Helper()
	ref := func(repo, tag string) images.Ref { return images.Ref{Repository: repo, Tag: tag} }
	set := images.Set{
		Offline:             true,
		Node:                ref("secprov.local/node", "v1.37.2-0123456789ab"),
		CiliumAgent:         ref("secprov.local/cilium", "v1.20.2-0123456789ab"),
		CiliumOperator:      ref("secprov.local/cilium-operator-generic", "v1.20.2-0123456789ab"),
		KubeImageRepository: "secprov.local",
		Etcd:                ref("secprov.local/etcd", "v3.7.3"),
		CoreDNS:             ref("secprov.local/coredns", "v1.14.6"),
		Pause:               ref("secprov.local/pause", "3.10.2"),
		Probe:               ref("secprov.local/probe", "v1-0123456789ab"),
	}
	im := func(name string, r images.Ref, aliases ...images.Ref) images.Image {
		return images.Image{Name: name, Ref: r, Aliases: aliases, ID: "sha256:1", Inputs: "0123456789abcdef0123", Size: 3 << 20,
			Components: []images.Component{{Name: name + "-bin", Version: "v1", Source: "toolchain (cache)", SHA256: "abcdef0123456789abcdef"}}}
	}
	m := &images.Manifest{
		Schema: images.ManifestSchema, BuiltAt: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), Set: set,
		Images: []images.Image{
			im("node", set.Node), im("cilium-agent", set.CiliumAgent), im("cilium-operator", set.CiliumOperator),
			im("etcd", ref("secprov.local/etcd", "v3.7.3-0123456789ab"), set.Etcd),
			im("coredns", ref("secprov.local/coredns", "v1.14.6-0123456789ab"), set.CoreDNS),
			im("pause", ref("secprov.local/pause", "3.10.2-0123456789ab"), set.Pause),
			im("probe", set.Probe),
		},
	}
	m.Images[0].Preloaded = []string{"etcd", "pause"}
	if err := images.WriteManifest(images.ManifestPath(cache), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestImagesList(t *testing.T) {
	cache := isolate(t)
	_, _, err := runCLI(t, "images", "list")
	if err == nil || !strings.Contains(err.Error(), "run `secprov images build`") {
		t.Fatalf("list without a build: %v, want advice to build", err)
	}
	if code := ExitCode(err); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}

	m := writeTestManifest(t, cache)
	stdout, _, err := runCLI(t, "images", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got images.Manifest
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("list -o json is not a manifest: %v\n%s", err, stdout)
	}
	if got.Set != m.Set || len(got.Images) != 7 {
		t.Errorf("json list: %+v", got)
	}

	stdout, _, err = runCLI(t, "images", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"node  secprov.local/node:v1.37.2-0123456789ab  3 MiB  inputs 0123456789ab\n",
		"  preloaded: etcd, pause\n",
		"etcd  secprov.local/etcd:v3.7.3-0123456789ab, secprov.local/etcd:v3.7.3  3 MiB",
		"  COMPONENT  VERSION  SOURCE             SHA256\n  etcd-bin   v1       toolchain (cache)  abcdef012345\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text list lacks %q:\n%s", want, stdout)
		}
	}

	if _, _, err := runCLI(t, "images", "list", "-o", "yaml"); ExitCode(err) != ExitUsage {
		t.Errorf("-o yaml: %v, want a usage error", err)
	}
}
