package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

func TestInitWritesLoadableBlueprints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bp")
	out, errOut, code := run(t, "init", dir, "--name", "pay")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "prod.yaml") || !strings.Contains(out, "test.yaml") {
		t.Errorf("output does not name the files: %q", out)
	}
	bps, err := blueprints.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, b := range bps {
		names[b.Name()] = b.Spec.Environment
	}
	if names["pay-prod"] != "prod" || names["pay-test"] != "test" || len(names) != 2 {
		t.Errorf("clusters = %v; want pay-prod (prod) and pay-test (test)", names)
	}

	// A second init refuses and changes nothing.
	os.WriteFile(filepath.Join(dir, "test.yaml"), []byte("mine"), 0o644)
	_, errOut, code = run(t, "init", dir)
	if code != ExitUsage || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second init: exit %d, %q", code, errOut)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "test.yaml")); string(data) != "mine" {
		t.Error("init overwrote a file without --force")
	}
	if _, _, code = run(t, "init", dir, "--force"); code != 0 {
		t.Errorf("init --force: exit %d", code)
	}
}

func TestInitRejectsBadName(t *testing.T) {
	_, errOut, code := run(t, "init", t.TempDir(), "--name", "Bad Name")
	if code != ExitUsage || !strings.Contains(errOut, "--name") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	out, _, code := run(t, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"version"`) {
		t.Errorf("version -o json: exit %d, %q", code, out)
	}
	if _, errOut, code := run(t, "frobnicate"); code != ExitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if _, _, code := run(t, "completion", "bash"); code != 0 {
		t.Errorf("completion bash: exit %d", code)
	}
}

// TestCompletionRefusesUnknownShells: a script running `secprov completion
// $SHELL` must learn that no script came out.
func TestCompletionRefusesUnknownShells(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out, errOut, code := run(t, "completion", sh)
		if code != 0 || out == "" {
			t.Errorf("completion %s: exit %d, %d bytes; stderr:\n%s", sh, code, len(out), errOut)
		}
	}
	for _, args := range [][]string{
		{"completion", "tcsh"},
		{"completion", "bash\nerror: forged"},
		{"completion"},
		{"completion", "bash", "zsh"},
	} {
		out, errOut, code := run(t, args...)
		if code != ExitUsage {
			t.Errorf("secprov %q: exit %d, want %d; stdout:\n%s", args, code, ExitUsage, out)
		}
		if len(args) == 2 {
			mustHave(t, errOut, "bash", "zsh", "fish", "powershell")
		}
		if strings.Contains(errOut, "\nerror: forged") {
			t.Errorf("the shell name reached stderr raw: %q", errOut)
		}
	}
	if out, _, code := run(t, "completion", "--help"); code != 0 || !strings.Contains(out, "bash") {
		t.Errorf("completion --help: exit %d:\n%s", code, out)
	}
}

// TestInitNeverWritesThroughLinks plants links (dangling or not) where
// init writes, pointing outside DIR; they are made here because git cannot
// be trusted to keep them.
func TestInitNeverWritesThroughLinks(t *testing.T) {
	setup := func(t *testing.T, dangling bool) (dir, outside string) {
		root := t.TempDir()
		dir, outside = filepath.Join(root, "bp"), filepath.Join(root, "outside.yaml")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if !dangling {
			if err := os.WriteFile(outside, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(outside, filepath.Join(dir, "prod.yaml")); err != nil {
			t.Fatal(err)
		}
		return dir, outside
	}
	outsideIs := func(t *testing.T, outside, want string) {
		t.Helper()
		data, err := os.ReadFile(outside)
		switch {
		case want == "" && !os.IsNotExist(err):
			t.Errorf("init created the link's target %s (%v): %q", outside, err, data)
		case want != "" && string(data) != want:
			t.Errorf("the link's target now holds %q, want %q", data, want)
		}
	}
	for _, dangling := range []bool{true, false} {
		t.Run(map[bool]string{true: "dangling", false: "existing"}[dangling], func(t *testing.T) {
			want := map[bool]string{true: "", false: "mine"}[dangling]
			dir, outside := setup(t, dangling)
			_, errOut, code := run(t, "init", dir)
			if code != ExitUsage {
				t.Fatalf("init: exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut)
			}
			mustHave(t, errOut, "symbolic link", "--force")
			outsideIs(t, outside, want)
			if _, err := os.Lstat(filepath.Join(dir, "test.yaml")); !os.IsNotExist(err) {
				t.Errorf("a refused init wrote test.yaml: %v", err)
			}

			// --force replaces the link itself, never its target.
			if _, errOut, code := run(t, "init", dir, "--force"); code != 0 {
				t.Fatalf("init --force: exit %d; stderr:\n%s", code, errOut)
			}
			outsideIs(t, outside, want)
			fi, err := os.Lstat(filepath.Join(dir, "prod.yaml"))
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("prod.yaml after --force: %v, %v; want a regular file", fi, err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("prod.yaml mode %v, want 0644", fi.Mode().Perm())
			}
			if _, err := blueprints.Load(dir); err != nil {
				t.Errorf("blueprints written over the link do not load: %v", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("temporary files left in %s: %v", dir, ents)
			}
		})
	}
}

func TestInitRefusesNonRegularTargetsEvenWithForce(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "test.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "init", dir, "--force")
	if code != ExitUsage || !strings.Contains(errOut, "not a regular file") {
		t.Fatalf("init --force over a directory: exit %d; stderr:\n%s", code, errOut)
	}
	if _, err := os.Lstat(filepath.Join(dir, "prod.yaml")); !os.IsNotExist(err) {
		t.Errorf("a refused init wrote prod.yaml: %v", err)
	}
}

// TestCreateNewRefusesALinkPlantedAfterTheCheck: the file is opened with
// O_EXCL (and O_NOFOLLOW), so a link that appears between init's check and
// its write is not followed.
func TestCreateNewRefusesALinkPlantedAfterTheCheck(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "x")
	link := filepath.Join(dir, "prod.yaml")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if err := createNew(link, []byte("x")); err == nil {
		t.Fatal("createNew wrote through a dangling link")
	}
	if _, err := os.Lstat(outside); !os.IsNotExist(err) {
		t.Errorf("the link's target was created: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link itself was removed or replaced: %v, %v", fi, err)
	}
}
