package app

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// complete runs cobra's hidden __complete command in-process, as the shell
// scripts do, and returns the suggestions (one per line, the directive
// line dropped).
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, append([]string{"__complete"}, args...)); err != nil {
		t.Fatalf("__complete %q: %v\n%s", args, err, errOut.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" || strings.HasPrefix(l, ":") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

func TestFlagCompletion(t *testing.T) {
	state, _ := isolatedHome(t)
	for _, name := range []string{"shop-prod", "shop-test"} {
		if err := os.MkdirAll(filepath.Join(state, "clusters", name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Not a cluster name: nothing secprov made, never suggested.
	os.MkdirAll(filepath.Join(state, "clusters", "Not_A_Cluster"), 0o700)

	tests := []struct {
		args []string
		want []string // exact suggestions (without descriptions), in order
		has  string   // or: one suggestion has this prefix
	}{
		{args: []string{"verify", "--cluster", ""}, want: []string{"shop-prod", "shop-test"}},
		{args: []string{"kubeconfig", "--cluster", "shop-p"}, want: []string{"shop-prod"}},
		{args: []string{"down", "--cluster", ""}, want: []string{"shop-prod", "shop-test"}},
		{args: []string{"rotate-keys", "--cluster", ""}, want: []string{"shop-prod", "shop-test"}},
		{args: []string{"plan", "--only", ""}, want: []string{"shop-prod", "shop-test"}},
		{args: []string{"up", "--only", "shop-t"}, want: []string{"shop-test"}},
		{args: []string{"verify", "--check", ""}, has: "SP-API-001\t"},
		{args: []string{"up", "--check", "SP-ETCD"}, has: "SP-ETCD-"},
		{args: []string{"verify", "-o", ""}, want: []string{"text", "json", "junit", "sarif"}},
		{args: []string{"review", "--output", ""}, want: []string{"text", "json", "sarif", "markdown"}},
		{args: []string{"status", "-o", ""}, want: []string{"text", "json"}},
		{args: []string{"plan", "-o", "j"}, want: []string{"json"}},
		{args: []string{"review", "--fail-on", ""}, want: []string{"critical", "high", "medium", "low", "info", "none"}},
		{args: []string{"verify", "--fail-on", ""}, want: []string{"critical", "high", "medium", "low", "info"}},
		{args: []string{"tools", "install", "etcd", ""}, want: []string{"kubernetes", "pulumi", "vault"}},
	}
	for _, tt := range tests {
		got := complete(t, tt.args...)
		if tt.want != nil {
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("%q: got %q, want %q", tt.args, got, tt.want)
			}
			continue
		}
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, tt.has) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no suggestion starting %q in %q", tt.args, tt.has, got)
		}
	}
}

// TestCheckCompletionOnlyMatches makes sure every suggested check ID has
// the typed prefix and a title, so the shell shows what it would run.
func TestCheckCompletionOnlyMatches(t *testing.T) {
	isolatedHome(t)
	got := complete(t, "verify", "--check", "SP-ENC-")
	if len(got) == 0 {
		t.Fatal("no SP-ENC- checks suggested")
	}
	for _, g := range got {
		id, title, ok := strings.Cut(g, "\t")
		if !strings.HasPrefix(id, "SP-ENC-") || !ok || title == "" {
			t.Errorf("suggestion %q: want an SP-ENC- ID with a title", g)
		}
	}
}

// TestBaseCompletionOutsideGit: outside a repository, --base suggests
// nothing (and does not fall back to file names).
func TestBaseCompletionOutsideGit(t *testing.T) {
	isolatedHome(t)
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	if err := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &bytes.Buffer{}}, []string{"__complete", "review", "--base", ""}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != ":4" {
		t.Errorf("got %q, want only the no-file directive :4", got)
	}
}

// directive runs __complete and returns its last line, cobra's directive.
func directive(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &bytes.Buffer{}}, append([]string{"__complete"}, args...)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1]
}

// TestNoFileNamesForCommandsWithoutArgs: a command that takes no
// arguments must not make the shell offer file names.
func TestNoFileNamesForCommandsWithoutArgs(t *testing.T) {
	isolatedHome(t)
	for _, args := range [][]string{{"verify", ""}, {"up", ""}, {"status", ""}, {"vault", "stop", ""}} {
		if got := complete(t, args...); len(got) != 0 {
			t.Errorf("%q: got %q, want nothing", args, got)
		}
		if d := directive(t, args...); d != ":4" {
			t.Errorf("%q: directive %s, want :4 (no file completion)", args, d)
		}
	}
	// review and init take paths: the shell's file completion stays.
	if d := directive(t, "review", ""); d != ":0" {
		t.Errorf("review: directive %s, want :0 (file completion)", d)
	}
}

func TestBaseCompletionListsGitRefs(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	isolatedHome(t)
	t.Setenv("PATH", filepath.Dir(git))
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"},
		{"branch", "feature"},
		{"tag", "v1.0.0"},
	} {
		if out, err := exec.Command(git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
	}
	got := complete(t, "review", "--base", "")
	if strings.Join(got, ",") != "feature,main,v1.0.0" {
		t.Errorf("got %q, want feature, main, v1.0.0", got)
	}
	if got := complete(t, "review", "--base", "ma"); strings.Join(got, ",") != "main" {
		t.Errorf("prefix ma: got %q, want main", got)
	}
}
