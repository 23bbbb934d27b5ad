package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/vault/kms"
	"secprov.dev/secprov/vault/vaulttest"
)

func TestKMSPluginBadFlags(t *testing.T) {
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := []string{"kms-plugin", "--socket", "/tmp/kms-x.sock", "--vault-addr", "http://127.0.0.1:1",
		"--token-file", tf, "--transit-mount", "transit-prod", "--transit-key", "kms"}
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no flags", []string{"kms-plugin"}, ExitUsage, []string{"--socket is required", "--vault-addr is required",
			"--token-file is required", "--transit-mount is required", "--transit-key is required"}},
		{"unknown flag", append(full, "--vault-token", "x"), ExitUsage, []string{"unknown flag: --vault-token"}},
		{"bad timeout", append(full, "--timeout", "soon"), ExitUsage, []string{"--timeout"}},
		{"bad log format", append(full, "--log-format", "xml"), ExitUsage, []string{`unknown --log-format "xml"`}},
		{"argument", append(full, "extra"), ExitUsage, []string{"unknown command \"extra\""}},
		{"socket too long", append(full, "--socket", "/tmp/"+strings.Repeat("s", 120)), ExitUsage, []string{"at most 107"}},
		{"bad key name", append(full, "--transit-key", "a/b"), ExitUsage, []string{`transit key name "a/b"`}},
		{"no socket dir", append(full, "--socket", "/nonexistent-secprov/kms.sock"), 1, []string{"kms-plugin:", "socket directory", "0700"}},
		{"missing token file", append(full, "--token-file", tf+".missing"), 1, []string{"kms-plugin:", "token file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			mustHave(t, stderr, c.want...)
		})
	}
}

func TestKMSPluginHiddenButDocumented(t *testing.T) {
	out, _, code := run(t, "--help")
	if code != 0 || strings.Contains(out, "kms-plugin") {
		t.Errorf("secprov --help (exit %d) lists kms-plugin:\n%s", code, out)
	}
	out, _, code = run(t, "kms-plugin", "--help")
	if code != 0 {
		t.Fatalf("kms-plugin --help: exit %d", code)
	}
	mustHave(t, out, "run by secprov beside the control plane; not for humans", "--socket", "--vault-cacert", "--timeout duration")
}

// kmsVault starts a dev Vault with a transit key and a token that may only
// use it, and returns the kms-plugin flags for them.
func kmsVault(t *testing.T) (args []string, socket string) {
	t.Helper()
	d := vaulttest.StartDev(t)
	d.MustWrite(t, "sys/mounts/transit-app", map[string]any{"type": "transit"})
	d.MustWrite(t, "transit-app/keys/kms", nil)
	d.MustWrite(t, "sys/policies/acl/kms-app", map[string]any{"policy": `
path "transit-app/encrypt/kms" { capabilities = ["update"] }
path "transit-app/decrypt/kms" { capabilities = ["update"] }
path "transit-app/keys/kms" { capabilities = ["read"] }`})
	root, err := d.Access().Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := root.Logical().Write("auth/token/create", map[string]any{"policies": []string{"kms-app"}, "period": "1h", "no_parent": true})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	tf := filepath.Join(dir, "token")
	if err := os.WriteFile(tf, []byte(s.Auth.ClientToken), 0o600); err != nil {
		t.Fatal(err)
	}
	socket = filepath.Join(dir, "kms.sock")
	return []string{"kms-plugin", "--socket", socket, "--vault-addr", d.Addr, "--token-file", tf,
		"--transit-mount", "transit-app", "--transit-key", "kms"}, socket
}

// waitHealthy probes socket until the plugin says it is healthy.
func waitHealthy(t *testing.T, socket string, done <-chan error) kms.StatusResult {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := kms.Probe(context.Background(), socket)
		if err == nil {
			return st
		}
		select {
		case err := <-done:
			t.Fatalf("kms-plugin exited before it was healthy: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kms-plugin not healthy after 20s: %v", err)
		}
	}
}

func TestKMSPluginServesUntilCancelled(t *testing.T) {
	args, socket := kmsVault(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, append(args, "--log-format", "json"))
	}()
	st := waitHealthy(t, socket, done)
	if st.KeyID != kms.KeyID("transit-app", "kms", 1) {
		t.Errorf("Probe key ID = %q", st.KeyID)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kms-plugin after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("kms-plugin did not stop within 15s of cancel")
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	// Every stderr line is a JSON log record; start and stop are there.
	var msgs []string
	sc := bufio.NewScanner(&errOut)
	for sc.Scan() {
		var rec struct{ Msg string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", sc.Text())
		}
		msgs = append(msgs, rec.Msg)
	}
	mustHave(t, strings.Join(msgs, "\n"), "KMS plugin serving", "KMS plugin stopped")
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
}

// envRunMain makes the test binary run secprov's main instead of the tests,
// to see how the real process meets SIGTERM.
const envRunMain = "SECPROV_APP_TEST_RUN_MAIN"

func TestKMSPluginExitsCleanlyOnSIGTERM(t *testing.T) {
	args, socket := kmsVault(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(exe, append(args, "--log-format", "text")...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitHealthy(t, socket, exited)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
	mustHave(t, stderr.String(), "level=INFO", "KMS plugin stopped")
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func mustHave(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("output does not contain %q:\n%s", w, s)
		}
	}
}
