package images

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestContainerdConfig(t *testing.T) {
	pause := Ref{Repository: "secprov.local/pause", Tag: "3.10.2"}
	tests := []struct {
		name, in string
		want     []string // lines the result must have
		err      string
	}{
		{
			name: "both settings",
			in:   "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n  restrict_oom_score_adj = false\n",
			want: []string{`  sandbox_image = "secprov.local/pause:3.10.2"`, "  restrict_oom_score_adj = true"},
		},
		{
			name: "already restricted",
			in:   "sandbox_image=\"x\"\nrestrict_oom_score_adj = true\n",
			want: []string{`sandbox_image="secprov.local/pause:3.10.2"`, "restrict_oom_score_adj = true"},
		},
		{name: "no sandbox image", in: "restrict_oom_score_adj = false\n", err: "no sandbox_image"},
		{name: "no oom setting", in: "sandbox_image = \"x\"\n", err: "no restrict_oom_score_adj"},
		{name: "commented out", in: "# sandbox_image = \"x\"\nrestrict_oom_score_adj = false\n", err: "no sandbox_image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := containerdConfig([]byte(tt.in), pause)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(out), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("result lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestParseKubeadmImages(t *testing.T) {
	tests := []struct {
		name, out  string
		dns, pause string
		err        string
	}{
		{
			name: "v1.37 list",
			out: "secprov.local/kube-apiserver:v1.37.2\nsecprov.local/kube-controller-manager:v1.37.2\nsecprov.local/kube-scheduler:v1.37.2\n" +
				"secprov.local/kube-proxy:v1.37.2\nsecprov.local/coredns:v1.14.6\nsecprov.local/pause:3.10.2\nsecprov.local/etcd:3.7.0-0\n",
			dns: "v1.14.6", pause: "3.10.2",
		},
		{name: "no dns", out: "secprov.local/pause:3.10.2\n", err: "names no CoreDNS image"},
		{name: "upstream repository", out: "registry.k8s.io/coredns/coredns:v1.14.6\nregistry.k8s.io/pause:3.10.2\n", err: "names no CoreDNS image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ki, err := parseKubeadmImages(tt.out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ki.coreDNSTag != tt.dns || ki.pauseTag != tt.pause {
				t.Errorf("got dns %q pause %q, want %q %q", ki.coreDNSTag, ki.pauseTag, tt.dns, tt.pause)
			}
		})
	}
}

type tarEntry struct {
	name string
	typ  byte
	mode int64
	link string
	body string
}

func readEntries(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, tarEntry{h.Name, h.Typeflag, h.Mode, h.Linkname, string(body)})
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
	}
}

func TestLayer(t *testing.T) {
	// A base rootfs with /usr/local/bin at 0775 (unusual on purpose).
	var base bytes.Buffer
	bw := tar.NewWriter(&base)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./usr/local/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./usr/local/bin/", Mode: 0o775},
		// Replaced below: Docker refuses a path named twice.
		{Typeflag: tar.TypeReg, Name: "./usr/local/bin/tool", Mode: 0o644, Size: 3},
		{Typeflag: tar.TypeReg, Name: "./usr/local/bin/kept", Mode: 0o644, Size: 3},
	} {
		if err := bw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			bw.Write([]byte("old"))
		}
	}
	bw.Close()

	src := t.TempDir()
	for rel, body := range map[string]string{"kind/bin/a.sh": "#!/bin/sh\n", "kind/README.txt": "r", "tests/x": "skip"} {
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o600)
	}

	var out bytes.Buffer
	baseBytes := base.Bytes()
	err := writeLayer(&out, func(l *layer) error {
		for _, err := range []error{
			l.copyTar(bytes.NewReader(baseBytes)),
			l.bytes("/usr/local/bin/tool", 0o755, []byte("x")),
			l.symlink("/usr/local/bin/clang", "/usr/bin/clang-19"),
			l.dir("/tmp", 0o1777),
			l.tree("/", src, kindFileMode, func(rel string, dir bool) bool { return dir && rel == "tests" }),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readEntries(t, out.Bytes())
	want := []tarEntry{
		// The root's own entry is dropped: the image's / is Docker's.
		{"./usr/", tar.TypeDir, 0o755, "", ""},
		{"./usr/local/", tar.TypeDir, 0o755, "", ""},
		{"./usr/local/bin/", tar.TypeDir, 0o775, "", ""},
		{"./usr/local/bin/kept", tar.TypeReg, 0o644, "", "old"},
		// The base's directories are not written again (their mode stays).
		{"usr/local/bin/tool", tar.TypeReg, 0o755, "", "x"},
		{"usr/local/bin/clang", tar.TypeSymlink, 0o777, "/usr/bin/clang-19", ""},
		{"tmp/", tar.TypeDir, 0o1777, "", ""},
		{"kind/", tar.TypeDir, 0o755, "", ""},
		{"kind/README.txt", tar.TypeReg, 0o644, "", "r"},
		{"kind/bin/", tar.TypeDir, 0o755, "", ""},
		{"kind/bin/a.sh", tar.TypeReg, 0o755, "", "#!/bin/sh\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestCiliumBPFSkip(t *testing.T) {
	tests := []struct {
		rel  string
		dir  bool
		skip bool
	}{
		{"tests", true, true},
		{"complexity-tests", true, true},
		{"custom", true, true},
		{"Makefile", false, true},
		{"Makefile.bpf", false, true},
		{"bpf_lxc.c", false, false},
		{"lib", true, false},
		{"include/bpf/ctx/skb.h", false, false},
		{"lib/tests", true, false}, // only the top-level test dirs
	}
	for _, tt := range tests {
		if got := ciliumBPFSkip(tt.rel, tt.dir); got != tt.skip {
			t.Errorf("ciliumBPFSkip(%q, %v) = %v, want %v", tt.rel, tt.dir, got, tt.skip)
		}
	}
}

func TestLayerRefusesDoubleWrite(t *testing.T) {
	err := writeLayer(io.Discard, func(l *layer) error {
		if err := l.bytes("/etc/x", 0o644, nil); err != nil {
			return err
		}
		return l.symlink("/etc/x", "y")
	})
	if err == nil || !strings.Contains(err.Error(), "etc/x written twice") {
		t.Errorf("err = %v", err)
	}
}

// The CoreDNS build registers every plugin kubeadm's Corefile names
// (prometheus is the metrics plugin's directive), and no cloud plugin.
func TestCoreDNSMainHasKubeadmPlugins(t *testing.T) {
	main := coreDNSMain()
	for _, p := range []string{"errors", "health", "ready", "kubernetes", "metrics", "forward", "cache", "loop", "reload", "loadbalance"} {
		if !strings.Contains(main, `"github.com/coredns/coredns/plugin/`+p+`"`) {
			t.Errorf("CoreDNS main does not register %s:\n%s", p, main)
		}
	}
	for _, p := range []string{"route53", "azure", "clouddns", "etcd", "trace", "core/plugin"} {
		if strings.Contains(main, "/"+p+`"`) {
			t.Errorf("CoreDNS main registers %s", p)
		}
	}
}
