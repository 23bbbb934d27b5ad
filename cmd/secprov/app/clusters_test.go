package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
)

// isolatedHome points the state and cache directories at fresh temporary
// directories and leaves PATH without any tool, so a command that tried
// to obtain the toolchain would show it (it would write to the cache or
// fail slowly).
func isolatedHome(t *testing.T) (state, cache string) {
	t.Helper()
	root := t.TempDir()
	state, cache = filepath.Join(root, "state"), filepath.Join(root, "cache")
	t.Setenv(paths.EnvHome, state)
	t.Setenv(paths.EnvCache, cache)
	t.Setenv(engine.EnvState, "")
	t.Setenv("PATH", filepath.Join(root, "no-tools"))
	return state, cache
}

// TestHostileClusterNamesAreUsageErrors gives every command that takes a
// cluster name names built to escape the state directory or to forge
// output; each must stop with exit 2 and say what a cluster name is.
func TestHostileClusterNamesAreUsageErrors(t *testing.T) {
	state, cache := isolatedHome(t)
	// A directory beside the state dir that a "../" name would reach,
	// holding what kubeconfig would print.
	outside := filepath.Join(filepath.Dir(state), "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(outside, "cluster.json"), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(outside, "admin.kubeconfig"), []byte("LEAKED-SECRET"), 0o600)

	names := []string{
		"../../outside", "../outside", "/etc", "a/b", "..", ".",
		"Prod", "-x", "x-", "a b", "a.b", "pröd",
		"x\nerror: forged line", "x\rY", "x\x1b[31m", string([]byte{'x', 0xff}),
		strings.Repeat("a", 64),
	}
	cmds := [][]string{
		{"kubeconfig", "--cluster"},
		{"kubeconfig", "--path", "--cluster"},
		{"down", "--cluster"},
		{"verify", "--cluster"},
		{"rotate-keys", "--cluster"},
	}
	for _, c := range cmds {
		for _, name := range names {
			args := append(append([]string{}, c...), name)
			start := time.Now()
			out, errOut, code := run(t, args...)
			if code != ExitUsage {
				t.Errorf("%s %q: exit %d, want %d; stderr:\n%s", strings.Join(c, " "), name, code, ExitUsage, errOut)
			}
			if strings.Contains(out, "LEAKED") || strings.Contains(errOut, "LEAKED") {
				t.Errorf("%s %q printed a file outside the state directory", strings.Join(c, " "), name)
			}
			mustHave(t, errOut, "DNS label", "secprov status")
			// The name is quoted: its newline cannot forge a line.
			if strings.Contains(errOut, "\nerror: forged line") || strings.Contains(errOut, "\x1b") {
				t.Errorf("%s %q: stderr carries the raw name:\n%q", strings.Join(c, " "), name, errOut)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s %q took %s", strings.Join(c, " "), name, d)
			}
		}
	}
	for _, only := range []string{"../x", "Prod", "a\nb"} {
		for _, c := range []string{"plan", "up"} {
			_, errOut, code := run(t, c, "-f", t.TempDir(), "--only", only)
			if code != ExitUsage || !strings.Contains(errOut, "DNS label") {
				t.Errorf("%s --only %q: exit %d; stderr:\n%s", c, only, code, errOut)
			}
		}
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the toolchain cache was touched: %v", err)
	}
}

// TestUnknownClusterStopsBeforeTheToolchain: down, kubeconfig, verify and
// rotate-keys on a cluster that does not exist exit 2 at once, without
// obtaining the toolchain (a download or a 25-45 minute build).
func TestUnknownClusterStopsBeforeTheToolchain(t *testing.T) {
	state, cache := isolatedHome(t)
	if err := os.MkdirAll(filepath.Join(paths.ClustersDir(state), "shop-prod"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"down", "--cluster", "nosuch"},
		{"down", "--cluster", "nosuch", "--cluster", "other"},
		{"kubeconfig", "--cluster", "nosuch"},
		{"kubeconfig", "--path", "--cluster", "nosuch"},
		{"verify", "--cluster", "nosuch"},
		{"rotate-keys", "--cluster", "nosuch"},
	} {
		start := time.Now()
		_, errOut, code := run(t, args...)
		if code != ExitUsage {
			t.Errorf("secprov %s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), code, ExitUsage, errOut)
		}
		mustHave(t, errOut, `no cluster "nosuch"`, "secprov status")
		if strings.Contains(errOut, "toolchain") || strings.Contains(errOut, "etcd") {
			t.Errorf("secprov %s went for the toolchain:\n%s", strings.Join(args, " "), errOut)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("secprov %s took %s", strings.Join(args, " "), d)
		}
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the toolchain cache was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(paths.ClustersDir(state), "shop-prod")); err != nil {
		t.Errorf("a refused down touched another cluster: %v", err)
	}
}

func TestCheckClustersKnown(t *testing.T) {
	state, _ := isolatedHome(t)
	os.MkdirAll(filepath.Join(paths.ClustersDir(state), "has-dir"), 0o700)
	stacks := filepath.Join(state, "pulumi", ".pulumi", "stacks", engine.ProjectName)
	os.MkdirAll(stacks, 0o700)
	os.WriteFile(filepath.Join(stacks, "has-stack.json"), nil, 0o600)
	// A symlinked "cluster directory" is nothing secprov made.
	os.Symlink(t.TempDir(), filepath.Join(paths.ClustersDir(state), "a-link"))

	if err := checkClustersKnown(state, "", []string{"has-dir", "has-stack"}); err != nil {
		t.Errorf("known clusters refused: %v", err)
	}
	err := checkClustersKnown(state, "", []string{"has-dir", "nosuch", "a-link"})
	if ExitCode(err) != ExitUsage || !errors.Is(err, provision.ErrUnknownCluster) {
		t.Fatalf("unknown clusters: %v (exit %d)", err, ExitCode(err))
	}
	mustHave(t, err.Error(), `"nosuch"`, `"a-link"`, "nothing was changed")
	// A remote backend cannot be asked without the Pulumi CLI: the engine decides.
	if err := checkClustersKnown(state, "s3://bucket", []string{"nosuch"}); err != nil {
		t.Errorf("remote backend: %v", err)
	}
}
