//go:build e2e

// Package e2e runs the secprov binary end to end against real components:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the
// pinned toolchain, driven by the real Pulumi engine. Run with
// `go test -tags e2e ./e2e/` (make test does) after `make tools`.
package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var secprovBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secprov-e2e-bin")
	if err != nil {
		panic(err)
	}
	secprovBin = filepath.Join(dir, "secprov")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", secprovBin, "./cmd/secprov")
	build.Dir = filepath.Join(filepath.Dir(self), "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building secprov:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoPath returns a path inside the repository.
func repoPath(elem ...string) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(self), ".."}, elem...)...)
}

// home is one isolated secprov state directory; the toolchain cache is
// shared (the default user cache) so nothing is rebuilt.
type home struct {
	t   *testing.T
	dir string
	env []string // added to every secprov run (e.g. VAULT_TOKEN)
}

func newHome(t *testing.T) *home {
	t.Helper()
	h := &home{t: t, dir: filepath.Join(t.TempDir(), "home")}
	t.Cleanup(func() {
		// Whatever a test did, leave no process behind.
		out, err := h.run("down", "--all")
		if err != nil {
			t.Logf("cleanup down: %v\n%s", err, out)
		}
	})
	return h
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

func (h *home) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, secprovBin, args...)
	c.Env = append(append(os.Environ(), "SECPROV_HOME="+h.dir), h.env...)
	c.Dir = repoPath()
	return c
}

func (h *home) exec(args ...string) result {
	h.t.Helper()
	return h.execFor(8*time.Minute, args...)
}

// execFor runs secprov with a timeout of its own (image builds, kind).
func (h *home) execFor(timeout time.Duration, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut bytes.Buffer
	c := h.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("secprov %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errOut.String(), code}
}

func (h *home) run(args ...string) (string, error) {
	r := h.exec(args...)
	if r.code != 0 {
		return r.String(), fmt.Errorf("secprov %s: exit %d", strings.Join(args, " "), r.code)
	}
	return r.stdout, nil
}

func (h *home) must(args ...string) string {
	h.t.Helper()
	r := h.exec(args...)
	if r.code != 0 {
		h.t.Fatalf("secprov %s failed:\n%s", strings.Join(args, " "), r)
	}
	return r.stdout
}

type upJSON struct {
	Clusters []struct {
		Name       string         `json:"name"`
		Changes    map[string]int `json:"changes"`
		Error      string         `json:"error"`
		Kubeconfig string         `json:"kubeconfig"`
	} `json:"clusters"`
}

func (h *home) up(args ...string) upJSON {
	h.t.Helper()
	out := h.must(append([]string{"up", "-o", "json"}, args...)...)
	var u upJSON
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		h.t.Fatalf("up -o json: %v\n%s", err, out)
	}
	return u
}

func (h *home) clusterDir(name string) string { return filepath.Join(h.dir, "clusters", name) }

// killGroup kills a command and every process in its process group.
func killGroup(c *exec.Cmd) {
	if c.Process != nil {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
}

func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}
