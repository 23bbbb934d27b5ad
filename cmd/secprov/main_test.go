//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/internal/proctest"
	"secprov.dev/secprov/provision/paths"
)

// The tests here run the real binary, as users and scripts do: main's own
// wiring of exit codes and signals, which in-process tests cannot see.
// cmd/secprov/app's process tests cover the same through app.Exec in the
// test binary, under -short too.

var (
	buildOnce sync.Once
	binDir    string
	bin       string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// secprov builds the binary once per test binary.
func secprov(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: builds the secprov binary (about 10s with a warm build cache, minutes without) (-short)")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "secprov-bin"); buildErr != nil {
			return
		}
		bin = filepath.Join(binDir, "secprov")
		out, err := exec.Command("go", "build", "-o", bin, "secprov.dev/secprov/cmd/secprov").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

func TestBinaryExitCodes(t *testing.T) {
	b := secprov(t)
	home := []string{paths.EnvHome + "=" + t.TempDir(), paths.EnvCache + "=" + t.TempDir()}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"kubeconfig", "--cluster", "../../etc"}, 2, "DNS label"},
		{[]string{"down", "--cluster", "nosuch"}, 2, `no cluster "nosuch"`},
		{[]string{"completion", "tcsh"}, 2, "powershell"},
	} {
		p := proctest.Start(t, b, home, c.args...)
		if code := p.ExitCode(t, 10*time.Second); code != c.code || !strings.Contains(p.Stderr.String(), c.want) {
			t.Errorf("secprov %s: exit %d, want %d with %q; stderr:\n%s", strings.Join(c.args, " "), code, c.code, c.want, p.Stderr)
		}
	}
}

// TestBinaryExitsOnSignalWhileBlocked: `secprov review FIFO` blocks in
// open(2), which no context interrupts; the process must still end within
// 2s of SIGTERM (143) or SIGINT (130).
func TestBinaryExitsOnSignalWhileBlocked(t *testing.T) {
	b := secprov(t)
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{{"SIGTERM", syscall.SIGTERM, 143}, {"SIGINT", syscall.SIGINT, 130}} {
		t.Run(c.name, func(t *testing.T) {
			// Feeding a.yaml shows the command runs; b.yaml then blocks it.
			// kubeconfig reads a FIFO admin.kubeconfig the same way, and no
			// loader change makes it stop, so it is the fallback.
			dir := t.TempDir()
			first, fifo := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
			proctest.Mkfifo(t, first)
			proctest.Mkfifo(t, fifo)
			p := proctest.Start(t, b, nil, "review", first, fifo)
			if !proctest.FeedFIFO(t, p, first, []byte("not: a blueprint\n")) {
				t.Logf("the loader refuses FIFOs (%s); interrupting kubeconfig instead", strings.TrimSpace(p.Stdout.String()))
				state := t.TempDir()
				cdir := filepath.Join(paths.ClustersDir(state), "shop-prod")
				if err := os.MkdirAll(cdir, 0o700); err != nil {
					t.Fatal(err)
				}
				first = filepath.Join(cdir, "cluster.json")
				proctest.Mkfifo(t, first)
				proctest.Mkfifo(t, filepath.Join(cdir, "admin.kubeconfig"))
				p = proctest.Start(t, b, []string{paths.EnvHome + "=" + state}, "kubeconfig", "--cluster", "shop-prod")
				if !proctest.FeedFIFO(t, p, first, []byte("{}")) {
					t.Fatalf("kubeconfig exited before it read cluster.json; stderr:\n%s", p.Stderr)
				}
			}
			start := time.Now()
			p.Signal(t, c.sig)
			code := p.ExitCode(t, 5*time.Second)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("exited %s after %v; want within 2s", took.Round(time.Millisecond), c.sig)
			}
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, p.Stderr)
			}
			if !strings.Contains(p.Stderr.String(), "did not stop within") {
				t.Errorf("stderr does not say why it exited:\n%s", p.Stderr)
			}
		})
	}
}

// TestBinaryKMSPluginStopsCleanlyOnSIGTERM: the long-runner's normal stop
// is exit 0, with its socket removed, well within 2s.
func TestBinaryKMSPluginStopsCleanlyOnSIGTERM(t *testing.T) {
	b := secprov(t)
	args, socket := proctest.KMSPluginArgs(t, proctest.FakeVault(t))
	p := proctest.Start(t, b, nil, args...)
	proctest.WaitHealthy(t, p, socket)
	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, p.Stderr)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("exited %s after SIGTERM; want within 2s", took.Round(time.Millisecond))
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
