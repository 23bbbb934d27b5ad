package images

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validManifest() *Manifest {
	node := Ref{Repository: "secprov.local/node", Tag: "v1.37.2-0123456789ab"}
	agent := Ref{Repository: "secprov.local/cilium", Tag: "v1.20.2-0123456789ab"}
	op := Ref{Repository: "secprov.local/cilium-operator-generic", Tag: "v1.20.2-0123456789ab"}
	etcd := Ref{Repository: "secprov.local/etcd", Tag: "v3.7.3"}
	dns := Ref{Repository: "secprov.local/coredns", Tag: "v1.14.6"}
	pause := Ref{Repository: "secprov.local/pause", Tag: "3.10.2"}
	probe := Ref{Repository: "secprov.local/probe", Tag: "v1-0123456789ab"}
	img := func(name string, ref Ref, alias ...Ref) Image {
		return Image{Name: name, Ref: ref, Aliases: alias, ID: "sha256:00", Inputs: "0123456789abcdef", Size: 1,
			Components: []Component{{Name: name, Version: "1", Source: "test", SHA256: "ff"}}}
	}
	withTag := func(r Ref) Ref { r.Tag += "-0123456789ab"; return r }
	return &Manifest{
		Schema:  ManifestSchema,
		BuiltAt: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		Set: Set{Offline: true, Node: node, CiliumAgent: agent, CiliumOperator: op,
			KubeImageRepository: Repository, Etcd: etcd, CoreDNS: dns, Pause: pause, Probe: probe},
		Images: []Image{
			img("pause", withTag(pause), pause),
			img("node", node),
			img("cilium-agent", agent),
			img("cilium-operator", op),
			img("etcd", withTag(etcd), etcd),
			img("coredns", withTag(dns), dns),
			img("probe", probe),
		},
	}
}

func TestManifestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Manifest)
		errs   []string // substrings; none means valid
	}{
		{"valid", func(*Manifest) {}, nil},
		{"old schema", func(m *Manifest) { m.Schema = 0 }, []string{"schema 0"}},
		{"not offline", func(m *Manifest) { m.Set.Offline = false }, []string{"set.offline is false"}},
		{"set ref not built", func(m *Manifest) { m.Set.Node.Tag = "v1.37.2-ffffffffffff" }, []string{"set.node secprov.local/node:v1.37.2-ffffffffffff is not among the images"}},
		{"set ref empty", func(m *Manifest) { m.Set.Pause = Ref{} }, []string{"set.pause is empty"}},
		{"alias dropped", func(m *Manifest) { m.Images[0].Aliases = nil }, []string{"set.pause secprov.local/pause:3.10.2 is not among the images"}},
		{"image twice", func(m *Manifest) { m.Images = append(m.Images, m.Images[1]) }, []string{`"node" listed twice`}},
		{"no name, no digest, no ref", func(m *Manifest) {
			m.Images = append(m.Images, Image{})
		}, []string{"images[7]: no name", "images[7] (): no ref", "images[7] (): no input digest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.mutate(m)
			err := m.Validate()
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.errs)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
				}
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images", "manifest.json")
	m := validManifest()
	if err := WriteManifest(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("read back %+v\nwant %+v", got, m)
	}
	// Written sorted by name, so list output and diffs are stable.
	var names []string
	for _, im := range got.Images {
		names = append(names, im.Name)
	}
	want := []string{"cilium-agent", "cilium-operator", "coredns", "etcd", "node", "pause", "probe"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("image order %q, want %q", names, want)
	}
	if im, ok := got.Image("node"); !ok || im.Ref != m.Set.Node {
		t.Errorf("Image(node) = %+v, %v", im, ok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("manifest mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestReadManifestErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" means no file
		want    string
		is      error
	}{
		{"missing", "", "run `secprov images build`", ErrNoManifest},
		{"garbage", "{", "run `secprov images build`", nil},
		{"incomplete", `{"schema":1,"set":{"offline":true}}`, "set.node is empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".json")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ReadManifest(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadManifest() = %v, want an error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestWriteManifestRefusesIncomplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.json")
	m := validManifest()
	m.Set.CiliumAgent = Ref{}
	if err := WriteManifest(path, m); err == nil {
		t.Fatal("WriteManifest wrote an incomplete manifest")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was left behind: %v", err)
	}
}
