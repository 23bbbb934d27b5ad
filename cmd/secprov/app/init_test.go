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
