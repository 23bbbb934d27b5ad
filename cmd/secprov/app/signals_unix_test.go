//go:build unix

package app

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/internal/proctest"
	"secprov.dev/secprov/provision/paths"
)

// startMain runs this test binary as secprov, through Exec (see TestMain).
func startMain(t *testing.T, env []string, args ...string) *proctest.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return proctest.Start(t, exe, append(env, envRunMain+"=1"), args...)
}

// blockedKubeconfig prepares a state dir where `secprov kubeconfig
// --cluster shop-prod` reads cluster.json from a FIFO the test feeds (so
// the test knows the command runs) and then blocks for good opening
// admin.kubeconfig, another FIFO nobody writes.
func blockedKubeconfig(t *testing.T) (env []string, meta string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	dir := filepath.Join(paths.ClustersDir(state), "shop-prod")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	meta = filepath.Join(dir, "cluster.json")
	proctest.Mkfifo(t, meta)
	proctest.Mkfifo(t, filepath.Join(dir, "admin.kubeconfig"))
	return []string{paths.EnvHome + "=" + state}, meta
}

// TestBlockedCommandExitsOnSignal: a command blocked in a system call that
// ignores its context still ends within 2s of SIGTERM or SIGINT, with
// the signal's exit code and one line saying so; a second signal does
// not wait for the grace period.
func TestBlockedCommandExitsOnSignal(t *testing.T) {
	for _, c := range []struct {
		name string
		sigs []syscall.Signal
		code int
		max  time.Duration
	}{
		{"SIGTERM", []syscall.Signal{syscall.SIGTERM}, ExitTerminated, 2 * time.Second},
		{"SIGINT", []syscall.Signal{syscall.SIGINT}, ExitInterrupted, 2 * time.Second},
		{"second SIGINT", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, ExitInterrupted, SignalGrace - 300*time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, meta := blockedKubeconfig(t)
			p := startMain(t, env, "kubeconfig", "--cluster", "shop-prod")
			if !proctest.FeedFIFO(t, p, meta, []byte("{}")) {
				t.Fatalf("kubeconfig exited before it read cluster.json; stderr:\n%s", p.Stderr)
			}
			start := time.Now()
			for _, s := range c.sigs {
				p.Signal(t, s)
				time.Sleep(50 * time.Millisecond)
			}
			code := p.ExitCode(t, 5*time.Second)
			if took := time.Since(start); took > c.max {
				t.Errorf("exited %s after the signal; want within %s", took.Round(time.Millisecond), c.max)
			}
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, p.Stderr)
			}
			if lines := strings.Split(strings.TrimSpace(p.Stderr.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "secprov: ") {
				t.Errorf("stderr should be one secprov line:\n%s", p.Stderr)
			}
		})
	}
}

// TestReviewOfAFIFOExitsOnSignal: `secprov review FIFO` used to block in
// open(2) for good. Either the loader refuses the FIFO (exit 2 at once)
// or the process still ends within 2s of SIGTERM.
func TestReviewOfAFIFOExitsOnSignal(t *testing.T) {
	dir := t.TempDir()
	first, fifo := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	proctest.Mkfifo(t, first)
	proctest.Mkfifo(t, fifo)
	p := startMain(t, nil, "review", first, fifo)
	// Feeding a.yaml shows the command runs; b.yaml then blocks it.
	if !proctest.FeedFIFO(t, p, first, []byte("not: a blueprint\n")) {
		if code := p.ExitCode(t, time.Second); code != ExitUsage {
			t.Errorf("review refused the FIFO with exit %d, want %d; stderr:\n%s", code, ExitUsage, p.Stderr)
		}
		t.Logf("the loader refuses FIFOs; nothing to interrupt:\n%s", p.Stdout)
		return
	}
	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	code := p.ExitCode(t, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("exited %s after SIGTERM; want within 2s", took.Round(time.Millisecond))
	}
	if code != ExitTerminated && code != ExitUsage {
		t.Errorf("exit %d, want %d (or %d if the loader stopped at the FIFO); stderr:\n%s", code, ExitTerminated, ExitUsage, p.Stderr)
	}
}

// TestKMSPluginStopsCleanlyOnSignal: a long-runner whose normal stop is a
// signal exits 0 within 2s and removes its socket. The fake Vault keeps
// it free of the toolchain (TestKMSPluginExitsCleanlyOnSIGTERM does the
// same against a real one).
func TestKMSPluginStopsCleanlyOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(signalName(sig), func(t *testing.T) {
			args, socket := proctest.KMSPluginArgs(t, proctest.FakeVault(t))
			p := startMain(t, nil, args...)
			proctest.WaitHealthy(t, p, socket)
			start := time.Now()
			p.Signal(t, sig)
			if code := p.ExitCode(t, 5*time.Second); code != 0 {
				t.Errorf("exit %d after %s, want 0; stderr:\n%s", code, signalName(sig), p.Stderr)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("exited %s after %s; want within 2s", took.Round(time.Millisecond), signalName(sig))
			}
			if _, err := os.Stat(socket); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
			mustHave(t, p.Stderr.String(), "KMS plugin stopped")
		})
	}
}
