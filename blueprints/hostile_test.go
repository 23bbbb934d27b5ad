package blueprints

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hostile and careless input (issue 13). Entries that cannot live in git
// (symbolic links leading out, FIFOs, devices) are built at run time.

const secretContent = "s.TOPSECRET-ROOT-TOKEN-4711\nkind: Blueprint\n"

func blueprintYAML(name, env string) string {
	return fmt.Sprintf("apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata:\n  name: %s\nspec:\n  environment: %s\n", name, env)
}

// chdir makes dir the working directory for the test.
func chdir(t *testing.T, dir string) {
	t.Helper()
	t.Chdir(dir)
}

// hostileTree makes a reviewed tree "repo" and, beside it, an "outside"
// directory holding a secret the tree must never reveal.
func hostileTree(t *testing.T) (repo, outside, secret string) {
	t.Helper()
	top := t.TempDir()
	repo, outside = filepath.Join(top, "repo"), filepath.Join(top, "outside")
	for _, d := range []string{repo, outside, filepath.Join(repo, "bp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret = filepath.Join(outside, "token")
	writeFile(t, secret, secretContent)
	writeFile(t, filepath.Join(outside, "real.yaml"), blueprintYAML("outside", "prod"))
	writeFile(t, filepath.Join(repo, "bp", "prod.yaml"), blueprintYAML("shop-prod", "prod"))
	return repo, outside, secret
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// loadWithin loads paths and fails the test if that takes more than a few
// seconds (a FIFO opened for reading blocks forever).
func loadWithin(t *testing.T, paths ...string) ([]*Blueprint, error) {
	t.Helper()
	type result struct {
		bps []*Blueprint
		err error
	}
	done := make(chan result, 1)
	go func() {
		bps, err := Load(paths...)
		done <- result{bps, err}
	}()
	select {
	case r := <-done:
		return r.bps, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Load(%q) still running after 5s", paths)
		return nil, nil
	}
}

func TestLoadRefusesLinksOutOfTheTree(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, repo, outside, secret string) []string // returns the paths to load
		want  string                                                    // in the error
	}{
		{"file link in a directory", func(t *testing.T, repo, _, secret string) []string {
			symlink(t, secret, filepath.Join(repo, "bp", "x.yaml"))
			return []string{"bp"}
		}, "bp/x.yaml: is a symbolic link that leads outside the reviewed tree"},
		{"relative file link in a directory", func(t *testing.T, repo, _, _ string) []string {
			symlink(t, "../../outside/token", filepath.Join(repo, "bp", "x.yaml"))
			return []string{"bp"}
		}, "bp/x.yaml: is a symbolic link that leads outside the reviewed tree"},
		{"file link as an argument", func(t *testing.T, repo, _, secret string) []string {
			symlink(t, secret, filepath.Join(repo, "x.yaml"))
			return []string{"x.yaml"}
		}, "x.yaml: is a symbolic link that leads outside the reviewed tree"},
		{"directory link as an argument", func(t *testing.T, repo, outside, _ string) []string {
			symlink(t, secret2dir(t, outside), filepath.Join(repo, "linked"))
			return []string{"linked"}
		}, "is a symbolic link that leads outside the reviewed tree"},
		{"link through a linked directory", func(t *testing.T, repo, outside, _ string) []string {
			symlink(t, outside, filepath.Join(repo, "bp", "sub"))
			symlink(t, "sub/token", filepath.Join(repo, "bp", "y.yaml"))
			return []string{"bp"}
		}, "bp/y.yaml: is a symbolic link that leads outside the reviewed tree"},
		{"absolute argument outside the working directory", func(t *testing.T, repo, outside, secret string) []string {
			d := filepath.Join(outside, "bps")
			os.MkdirAll(d, 0o755)
			symlink(t, secret, filepath.Join(d, "x.yaml"))
			return []string{d}
		}, "/bps/x.yaml: is a symbolic link that leads outside the reviewed tree"},
		{"dangling link", func(t *testing.T, repo, _, _ string) []string {
			symlink(t, "/nonexistent/secprov-test", filepath.Join(repo, "bp", "d.yaml"))
			return []string{"bp"}
		}, "bp/d.yaml: is a symbolic link to nothing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo, outside, secret := hostileTree(t)
			chdir(t, repo)
			paths := c.setup(t, repo, outside, secret)
			_, err := loadWithin(t, paths...)
			if err == nil {
				t.Fatal("Load succeeded; want the link refused")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "outside/token") {
				t.Errorf("error reveals the link's target: %q", err)
			}
		})
	}
}

// secret2dir makes a directory outside the tree holding a YAML-named link
// to the secret, and returns it.
func secret2dir(t *testing.T, outside string) string {
	d := filepath.Join(outside, "dir")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, "a.yaml"), secretContent)
	return d
}

func TestLoadFollowsLinksInsideTheTree(t *testing.T) {
	repo, _, _ := hostileTree(t)
	chdir(t, repo)
	if err := os.MkdirAll("other", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, "other/test.yaml", blueprintYAML("shop-test", "test"))
	symlink(t, "../other/test.yaml", "bp/test.yaml")
	bps, err := loadWithin(t, "bp")
	if err != nil {
		t.Fatal(err)
	}
	if len(bps) != 2 || bps[1].Source.File != filepath.Join("bp", "test.yaml") {
		t.Fatalf("got %d blueprints (%v); want prod and test, test under its link's name", len(bps), bps)
	}
}

func TestLoadRefusesSpecialFiles(t *testing.T) {
	repo, _, _ := hostileTree(t)
	chdir(t, repo)
	if err := syscall.Mkfifo("bp/fifo.yaml", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo("arg.yaml", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("bp/dir.yaml", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{"bp"}, "bp/fifo.yaml: is a named pipe (FIFO), not a regular file"},
		{[]string{"bp"}, "bp/dir.yaml: is a directory, not a blueprint file"},
		{[]string{"arg.yaml"}, "arg.yaml: is a named pipe (FIFO), not a regular file"},
		{[]string{"/dev/zero"}, "/dev/zero: is a device, not a regular file"},
	} {
		bps, err := loadWithin(t, c.paths...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%q) error = %v; want %q", c.paths, err, c.want)
		}
		if c.paths[0] == "bp" && len(bps) != 1 {
			t.Errorf("Load(%q) loaded %d blueprints; want the regular prod.yaml still loaded", c.paths, len(bps))
		}
	}
}

func TestLoadReadsAFileOnce(t *testing.T) {
	repo, _, _ := hostileTree(t)
	chdir(t, repo)
	symlink(t, "bp", "alias-dir")
	abs := filepath.Join(repo, "bp", "prod.yaml")
	for _, paths := range [][]string{
		{"bp/prod.yaml", abs},
		{"bp", "alias-dir"},
		{"bp/prod.yaml", "./bp/prod.yaml", "bp/../bp/prod.yaml"},
		{"bp", "alias-dir/prod.yaml"},
	} {
		bps, err := loadWithin(t, paths...)
		if err != nil {
			t.Fatalf("Load(%q): %v", paths, err)
		}
		if len(bps) != 1 {
			t.Errorf("Load(%q) gave %d blueprints; want the one file once", paths, len(bps))
		}
		if err := CheckUniqueNames(bps); err != nil {
			t.Errorf("Load(%q): %v", paths, err)
		}
	}
}

func TestLoadBytesHostile(t *testing.T) {
	bp := blueprintYAML("shop-prod", "prod")
	cases := []struct {
		name string
		data string
		want string // the whole first error, file:line:col: message
		docs int    // blueprints that still load
	}{
		{"empty file", "", "f.yaml:1:1: holds no blueprint", 0},
		{"comments only", "# nothing\n# here\n", "f.yaml:1:1: holds no blueprint", 0},
		{"null only", "null\n---\n~\n", "f.yaml:1:1: holds no blueprint", 0},
		{"alias for apiVersion and kind", "metadata: {name: a, annotations: {v: &v secprov.dev/v1alpha1, k: &k Blueprint}}\napiVersion: *v\nkind: *k\nspec: {environment: prod}\n", "", 0},
		{"anchor across documents", "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: a, labels: &l {team: x}}\nspec: {environment: prod}\n---\napiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: b, labels: *l}\nspec: {environment: test}\n",
			"f.yaml:8:29: invalid YAML: alias *l has no anchor &l before it in this YAML document", 1},
		{"error inside an anchored value", bp + "  audit: &a {maxAgeDays: 10, bogus: 1}\n",
			"f.yaml:7:30: spec.audit.bogus: unknown field", 0},
		{"error reported where the alias is used", "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata:\n  name: a\n  labels: &p {port: x}\nspec:\n  environment: prod\n  network:\n    allow:\n    - from: {namespace: a}\n      to: *p\n",
			"f.yaml:11:11: spec.network.allow[0].to.port: unknown field \"port\"", 0},
		{"NUL byte", bp + "  audit:\n    policy: \"de\x00fault\"\n", "f.yaml:8:16: NUL byte", 0},
		{"invalid UTF-8", bp + "  audit:\n    policy: d\xffefault\n", "f.yaml:8:14: invalid UTF-8 byte 0xFF", 0},
		{"control character", bp + "  x: \x1b[31m\n", "f.yaml:7:6: control character U+001B", 0},
		{"UTF-16", "\xff\xfea\x00", "f.yaml:1:1: file is UTF-16 encoded", 0},
		{"int past 32 bits", bp + "  audit:\n    maxAgeDays: 4294967296\n", "f.yaml:8:17: spec.audit.maxAgeDays: integer 4294967296 is out of range; use 0 to 3650", 0},
		{"int past 64 bits", bp + "  audit:\n    maxSizeMB: 99999999999999999999999\n", "f.yaml:8:16: spec.audit.maxSizeMB: integer 99999999999999999999999 is out of range; use 1 to 100000", 0},
		{"port past 64 bits", bp + "  network:\n    allow:\n    - from: {namespace: a}\n      to: {namespace: b, ports: [-99999999999999999999999]}\n", "spec.network.allow[0].to.ports[0]: integer -99999999999999999999999 is out of range; use 1 to 65535", 0},
		{"syntax error in the middle document", bp + "---\nmetadata: [\n---\n" + blueprintYAML("shop-test", "test"),
			"f.yaml:9:1: invalid YAML", 2},
		{"syntax error in the first document", "a: [\n---\n" + bp + "---\n" + blueprintYAML("shop-test", "test"),
			"f.yaml:2:1: invalid YAML", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bps, err := LoadBytes("f.yaml", []byte(c.data))
			if c.want == "" {
				if err != nil {
					t.Fatalf("LoadBytes: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadBytes succeeded; want %q", c.want)
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error %T", err)
			}
			if !strings.Contains(el[0].Error(), c.want) {
				t.Errorf("first error %q; want it to contain %q (all: %v)", el[0].Error(), c.want, err)
			}
			if len(bps) != c.docs {
				t.Errorf("%d blueprints loaded; want %d", len(bps), c.docs)
			}
		})
	}
}

func TestCIDRsRefused(t *testing.T) {
	for _, c := range []struct{ pod, svc, want string }{
		{"127.0.0.0/16", "10.96.0.0/16", "overlaps the loopback range"},
		{"10.0.0.0/16", "169.254.0.0/16", "overlaps the link-local range"},
		{"224.0.0.0/16", "10.96.0.0/16", "overlaps the multicast range"},
		{"fd00::/8", "fd01::/112", "prefix length /8 is out of range for IPv6; use /48 to /64"},
		{"fd00::/56", "fd01::/16", "prefix length /16 is out of range for IPv6; use /108 to /124"},
		{"fd00::/128", "fd01::/112", "prefix length /128 is out of range for IPv6"},
		{"::/48", "fd01::/112", "overlaps the IPv6 unspecified and loopback addresses"},
		{"fe80::/56", "fd01::/112", "overlaps the IPv6 link-local range"},
	} {
		data := blueprintYAML("a", "prod") + fmt.Sprintf("  network: {podCIDR: %q, serviceCIDR: %q}\n", c.pod, c.svc)
		_, err := LoadBytes("f.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pod %s svc %s: error %v; want %q", c.pod, c.svc, err, c.want)
		}
	}
	data := blueprintYAML("a", "prod") + "  network: {podCIDR: \"fd00:10::/56\", serviceCIDR: \"fd00:20::/112\"}\n"
	if _, err := LoadBytes("f.yaml", []byte(data)); err != nil {
		t.Errorf("an IPv6 cluster of sane size: %v", err)
	}
}

func TestCanonicalForms(t *testing.T) {
	data := blueprintYAML("a", "prod") + `  network:
    podCIDR: "::ffff:10.20.0.0/112"
    serviceCIDR: "::FFFF:10.30.0.0/112"
    allow:
    - from: {cidr: "::ffff:192.168.0.0/120"}
      to: {namespace: b}
  apiServer:
    endpoint: public
    allowedCIDRs: ["FD00:0:0::/48"]
  vault:
    address: "HTTPS://Vault.Example.COM.:0443/"
`
	bps, err := LoadBytes("f.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	s := bps[0].Spec
	for _, c := range []struct{ got, want string }{
		{s.Network.PodCIDR, "10.20.0.0/16"},
		{s.Network.ServiceCIDR, "10.30.0.0/16"},
		{s.Network.Allow[0].From.CIDR, "192.168.0.0/24"},
		{s.APIServer.AllowedCIDRs[0], "fd00::/48"},
		{s.Vault.Address, "https://vault.example.com"},
	} {
		if c.got != c.want {
			t.Errorf("got %q; want %q", c.got, c.want)
		}
	}
}

func TestSameService(t *testing.T) {
	same := [][2]string{
		{"https://vault.example.com", "https://vault.example.com:443"},
		{"https://vault.example.com", "HTTPS://VAULT.EXAMPLE.COM/"},
		{"https://vault.example.com:8200", "https://vault.example.com.:08200//"},
		{"https://10.0.0.1:8200", "https://[::ffff:10.0.0.1]:8200"},
		{"http://127.0.0.1", "http://127.0.0.1:80/"},
		{"https://v.example/a/b", "https://v.example/a/./b/"},
		{"https://v.example/a%2Fb", "https://v.example/a/b"},
	}
	for _, p := range same {
		if !SameService(p[0], p[1]) {
			t.Errorf("SameService(%q, %q) = false; want true", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"https://vault.example.com", "http://vault.example.com"},
		{"https://vault.example.com", "https://vault.example.com:8200"},
		{"https://vault.example.com", "https://vault2.example.com"},
		{"https://v.example/a", "https://v.example/b"},
	}
	for _, p := range differ {
		if SameService(p[0], p[1]) {
			t.Errorf("SameService(%q, %q) = true; want false", p[0], p[1])
		}
	}
}
