package toolchain

import (
	"reflect"
	"strings"
	"testing"
)

func TestPinnedTable(t *testing.T) {
	want := []struct {
		name, version string
		binDir        string
		optional      bool
		bins          []string
	}{
		{"kubernetes", "v1.37.2", "", false, []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubeadm", "kubectl"}},
		{"etcd", "v3.7.3", "", false, []string{"etcd", "etcdctl"}},
		{"pulumi", "v3.259.0", "bin", false, []string{"pulumi"}},
		{"vault", "v1.17.6", "", false, []string{"vault"}},
	}
	got := Pinned()
	if len(got) != len(want) {
		t.Fatalf("Pinned() has %d tools, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		var bins []string
		for _, b := range g.Binaries {
			bins = append(bins, b.Name)
		}
		if g.Name != w.name || g.Version != w.version || g.BinDir != w.binDir || g.Optional != w.optional || !reflect.DeepEqual(bins, w.bins) {
			t.Errorf("tool %d = %s %s bindir=%q optional=%v %v, want %+v", i, g.Name, g.Version, g.BinDir, g.Optional, bins, w)
		}
		if g.Recipe == nil || g.Release == nil {
			t.Errorf("%s lacks a recipe or a release", g.Name)
		}
		if err := validateTool(g); err != nil {
			t.Error(err)
		}
	}
	// Pinned returns copies: changing one must not change the next.
	got[0].Digests["x"] = "y"
	if len(Pinned()[0].Digests) != 0 {
		t.Error("Pinned() shares state between calls")
	}
}

func TestReleaseURLs(t *testing.T) {
	type art struct{ url, checksum, name string }
	tests := []struct {
		tool, arch string
		want       []art
	}{
		{"kubernetes", "amd64", []art{
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver.sha256", ""},
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-controller-manager", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-controller-manager.sha256", ""},
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-scheduler", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-scheduler.sha256", ""},
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet.sha256", ""},
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubeadm", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubeadm.sha256", ""},
			{"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubectl", "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubectl.sha256", ""},
		}},
		{"etcd", "arm64", []art{{
			"https://github.com/etcd-io/etcd/releases/download/v3.7.3/etcd-v3.7.3-linux-arm64.tar.gz",
			"https://github.com/etcd-io/etcd/releases/download/v3.7.3/SHA256SUMS", "etcd-v3.7.3-linux-arm64.tar.gz"}}},
		{"pulumi", "amd64", []art{{
			"https://get.pulumi.com/releases/sdk/pulumi-v3.259.0-linux-x64.tar.gz",
			"https://get.pulumi.com/releases/sdk/pulumi-3.259.0-checksums.txt", "pulumi-v3.259.0-linux-x64.tar.gz"}}},
		{"pulumi", "arm64", []art{{
			"https://get.pulumi.com/releases/sdk/pulumi-v3.259.0-linux-arm64.tar.gz",
			"https://get.pulumi.com/releases/sdk/pulumi-3.259.0-checksums.txt", "pulumi-v3.259.0-linux-arm64.tar.gz"}}},
		{"vault", "amd64", []art{{
			"https://releases.hashicorp.com/vault/1.17.6/vault_1.17.6_linux_amd64.zip",
			"https://releases.hashicorp.com/vault/1.17.6/vault_1.17.6_SHA256SUMS", "vault_1.17.6_linux_amd64.zip"}}},
	}
	for _, tt := range tests {
		t.Run(tt.tool+"/"+tt.arch, func(t *testing.T) {
			arts, err := pinnedTool(t, tt.tool).Release("linux", tt.arch)
			if err != nil {
				t.Fatal(err)
			}
			var got []art
			for _, a := range arts {
				got = append(got, art{a.URL, a.ChecksumURL, a.ChecksumName})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("artifacts:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, tool := range Pinned() {
		if _, err := tool.Release("darwin", "amd64"); err == nil {
			t.Errorf("%s: a darwin release should be refused (not a target)", tool.Name)
		}
		if _, err := tool.Release("linux", "riscv64"); err == nil {
			t.Errorf("%s: a riscv64 release should be refused", tool.Name)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		bin, out string
		want     string // "" = no version found
		matches  bool   // equals the pinned version
	}{
		{"kube-apiserver", "Kubernetes v1.37.2\n", "v1.37.2", true},
		{"kube-scheduler", "W1122 warning: something\nKubernetes v1.37.2", "v1.37.2", true},
		{"kube-apiserver", "Kubernetes v0.0.0-master+$Format:%H$", "v0.0.0-master+$Format:%H$", false},
		{"kube-apiserver", "Kubernetes v1.37.2-dirty", "v1.37.2-dirty", false},
		{"kube-controller-manager", "Kubernetes v1.37.20", "v1.37.20", false},
		{"etcd", fakeOutput("etcd", "v3.7.3"), "3.7.3", true},
		{"etcd", "etcd Version: 3.7.30\n", "3.7.30", false},
		{"etcdctl", fakeOutput("etcdctl", "v3.7.3"), "3.7.3", true},
		{"etcdctl", "Error: unknown flag: --version", "", false},
		{"pulumi", "v3.259.0\n", "v3.259.0", true},
		{"pulumi", "warning: A new version of Pulumi is available.\nv3.259.0\n", "v3.259.0", true},
		{"pulumi", "v3.259.0-dev.0\n", "v3.259.0-dev.0", false},
		{"vault", fakeOutput("vault", "v1.17.6"), "v1.17.6", true},
		{"vault", "Vault v1.17.6 (cgo)\n", "v1.17.6", true}, // built from the module proxy
		{"vault", "Vault v1.17.6+ent ('x')", "v1.17.6+ent", false},
		{"vault", "", "", false},
	}
	byName := map[string]Binary{}
	versions := map[string]string{}
	for _, tool := range Pinned() {
		for _, b := range tool.Binaries {
			byName[b.Name], versions[b.Name] = b, tool.Version
		}
	}
	for _, tt := range tests {
		got, ok := parseVersion(byName[tt.bin], tt.out)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: parseVersion(%q) = %q, %v; want %q", tt.bin, tt.out, got, ok, tt.want)
		}
		if m := ok && sameVersion(got, versions[tt.bin]); m != tt.matches {
			t.Errorf("%s: %q matches %s = %v, want %v", tt.bin, tt.out, versions[tt.bin], m, tt.matches)
		}
	}
}

func TestStagingReplaces(t *testing.T) {
	gomod := `module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

replace github.com/some/fork => github.com/other/fork v1.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go // a comment
	k8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
	k8s.io/streaming => ./staging/src/k8s.io/streaming
	k8s.io/api => ./staging/src/k8s.io/api
)

replace k8s.io/kms v0.0.0 => ./staging/src/k8s.io/kms
`
	got, err := stagingReplaces([]byte(gomod), "v0.37.2")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"replace k8s.io/api => k8s.io/api v0.37.2",
		"replace k8s.io/client-go => k8s.io/client-go v0.37.2",
		"replace k8s.io/kms => k8s.io/kms v0.37.2",
		"replace k8s.io/streaming => k8s.io/streaming v0.37.2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stagingReplaces:\n got %q\nwant %q", got, want)
	}
	if _, err := stagingReplaces([]byte("module x\n\nrequire k8s.io/api v0.1.0\n"), "v0.37.2"); err == nil {
		t.Error("a go.mod without staging replaces should be an error: the recipe no longer fits")
	}
	if v, err := stagingVersion("v1.37.2"); err != nil || v != "v0.37.2" {
		t.Errorf("stagingVersion(v1.37.2) = %q, %v", v, err)
	}
	if _, err := stagingVersion("v2.0.0"); err == nil {
		t.Error("stagingVersion(v2.0.0) should fail")
	}
}

// The recipes must match the ones measured to work (ENVIRONMENT.md); these
// checks pin the parts that are easy to break in an edit.
func TestRecipes(t *testing.T) {
	k := pinnedTool(t, "kubernetes").Recipe
	last := k.Steps[len(k.Steps)-1]
	args := strings.Join(last.Go, " ")
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.37.2",
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=37",
		"-X k8s.io/client-go/pkg/version.gitVersion=v1.37.2",
		"-X k8s.io/client-go/pkg/version.gitTreeState=clean",
		"-o {out}/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("kubernetes build step %q lacks %q", args, want)
		}
	}
	if !reflect.DeepEqual(last.Env, []string{"CGO_ENABLED=0"}) {
		t.Errorf("kubernetes build env = %v", last.Env)
	}
	if !strings.Contains(k.Files["go.mod"], "module secprov-toolchain/kubernetes") || !strings.Contains(k.Files["go.mod"], "require k8s.io/kubernetes v1.37.2") {
		t.Errorf("kubernetes go.mod:\n%s", k.Files["go.mod"])
	}

	v := pinnedTool(t, "vault").Recipe
	for _, s := range v.Steps {
		if len(s.Go) > 1 && s.Go[0] == "mod" && s.Go[1] == "tidy" {
			t.Error("the vault recipe must never run go mod tidy: it breaks the build")
		}
	}
	for _, want := range []string{
		"github.com/hashicorp/vault v1.17.6", "github.com/hashicorp/vault/api v1.14.0", "github.com/hashicorp/vault/sdk v0.13.0",
		"tool github.com/hashicorp/vault",
		"replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1",
		"replace github.com/pires/go-proxyproto v1.0.0 => github.com/peteski22/go-proxyproto v1.0.0",
	} {
		if !strings.Contains(v.Files["go.mod"], want) {
			t.Errorf("vault go.mod lacks %q", want)
		}
	}
	env := buildEnv([]string{"GOFLAGS=-mod=vendor", "GOWORK=/x/go.work", "HOME=/root"}, v.Steps[0].Env)
	want := []string{"HOME=/root", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false -mod=mod"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("vault build env = %q, want %q", env, want)
	}

	p := pinnedTool(t, "pulumi").Recipe
	if !strings.Contains(p.Files["go.mod"], "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e") {
		t.Error("pulumi go.mod lacks the clipboard replace")
	}
	if !strings.HasPrefix(p.Files["tools.go"], "//go:build tools\n") {
		t.Error("pulumi tools.go lacks its build tag")
	}
	pb := strings.Join(p.Steps[len(p.Steps)-1].Go, " ")
	if !strings.Contains(pb, "version.Version=v3.259.0") || !strings.Contains(pb, "-o {out}/bin/pulumi") {
		t.Errorf("pulumi build step = %q", pb)
	}
}

func TestParseChecksum(t *testing.T) {
	d1, d2 := strings.Repeat("a1", 32), strings.Repeat("B2", 32)
	tests := []struct {
		name, data, entry, want string
	}{
		{"bare digest", d1 + "\n", "", d1},
		{"bare digest upper case", d2, "", strings.ToLower(d2)},
		{"sha256sum list", d1 + "  a.tar.gz\n" + d2 + "  b.tar.gz\n", "b.tar.gz", strings.ToLower(d2)},
		{"binary marker", d1 + " *a.zip\n", "a.zip", d1},
		{"dot slash", d1 + "  ./a.zip\n", "a.zip", d1},
		{"not listed", d1 + "  a.tar.gz\n", "c.tar.gz", ""},
		{"prefix name is not a match", d1 + "  a.tar.gz.sig\n", "a.tar.gz", ""},
		{"short digest", "abc  a.tar.gz\n", "a.tar.gz", ""},
		{"empty", "", "", ""},
		{"html error page", "<html>not found</html>", "", ""},
	}
	for _, tt := range tests {
		got, err := parseChecksum([]byte(tt.data), tt.entry)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: parseChecksum = %q, want an error", tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: parseChecksum = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestEntryName(t *testing.T) {
	tests := []struct {
		in, want string // want "" = refused
	}{
		{"etcd-v3.7.3-linux-amd64/etcd", "etcd-v3.7.3-linux-amd64/etcd"},
		{"./pulumi/pulumi", "pulumi/pulumi"},
		{"vault", "vault"},
		{"dir/", "dir"},
		{"../evil", ""},
		{"a/../../evil", ""},
		{"a/..", ""},
		{"/etc/passwd", ""},
		{`..\evil`, ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := entryName(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("entryName(%q) = %q, want it refused", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("entryName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	bad := []Options{
		{CacheDir: dir, Mirror: "http://mirror.example/"},
		{CacheDir: dir, Mirror: "ftp://mirror.example/"},
		{CacheDir: dir, Tools: []Tool{{Name: "../x", Version: "v1", Binaries: Pinned()[3].Binaries}}},
		{CacheDir: dir, Tools: []Tool{{Name: "x", Version: "v1"}}},
		{CacheDir: dir, Tools: []Tool{Pinned()[0], Pinned()[0]}},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("options %d: New accepted %+v", i, o)
		}
	}
	t.Setenv(EnvMirror, "http://plain.example")
	if _, err := New(Options{CacheDir: dir}); err == nil || !strings.Contains(err.Error(), EnvMirror) {
		t.Errorf("a plain-http mirror from the environment should be refused naming %s, got %v", EnvMirror, err)
	}
	t.Setenv(EnvMirror, "https://mirror.example/root/")
	t.Setenv(EnvNoDownload, "1")
	m, err := New(Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !m.noDownload || m.mirror != "https://mirror.example/root" {
		t.Errorf("env not applied: noDownload=%v mirror=%q", m.noDownload, m.mirror)
	}
	u, _ := m.mirrored("https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver")
	if u != "https://mirror.example/root/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver" {
		t.Errorf("mirrored URL = %s", u)
	}
	if got := m.DefaultNames(); !reflect.DeepEqual(got, []string{"kubernetes", "etcd", "pulumi", "vault"}) {
		t.Errorf("DefaultNames = %v", got)
	}
	if _, err := m.Ensure(t.Context(), "kubectl"); err == nil || !strings.Contains(err.Error(), "known tools are etcd, kubernetes, pulumi, vault") {
		t.Errorf("unknown tool error = %v", err)
	}
}
