// Package vaulttest runs a real Vault server (the toolchain's pinned
// binary) for tests, or skips them with the reason.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/vault"
)

// Version is the toolchain's pinned Vault.
const Version = "v1.17.6"

// Binary returns the cached vault binary, or skips under -short or when
// the toolchain has not installed it.
func Binary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping: starts a real Vault server (-short)")
	}
	dir := os.Getenv("SECPROV_CACHE")
	if dir == "" {
		home, err := os.UserCacheDir()
		if err != nil {
			tb.Skipf("skipping: no cache dir: %v", err)
		}
		dir = filepath.Join(home, "secprov")
	}
	p := filepath.Join(dir, "tools", "vault", Version, "vault")
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("skipping: vault not installed (make tools): %v", err)
	}
	return p
}

// Dev is a Vault dev server (in-memory, unsealed, plain HTTP on loopback)
// with a random root token. It is stopped when the test ends.
type Dev struct {
	Addr      string // http://127.0.0.1:PORT
	RootToken string
	cmd       *exec.Cmd
	exited    chan struct{}
	tokenFile string
}

// Access returns root access to the dev server through a 0600 token file.
func (d *Dev) Access() vault.Access {
	return vault.Access{Address: d.Addr, TokenFile: d.tokenFile}
}

// Stop kills the server (tests that need Vault to disappear).
func (d *Dev) Stop() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// StartDev starts a dev server and waits until it serves requests.
func StartDev(tb testing.TB) *Dev {
	tb.Helper()
	bin := Binary(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "test-" + hex.EncodeToString(b) // "hvs." prefixes are reserved
	dir := tb.TempDir()
	log, err := os.OpenFile(filepath.Join(dir, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+tok, "-dev-listen-address="+addr, "-dev-no-store-token")
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "VAULT_LOG_LEVEL=warn"}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start vault: %v", err)
	}
	d := &Dev{Addr: "http://" + addr, RootToken: tok, cmd: cmd, exited: make(chan struct{}), tokenFile: filepath.Join(dir, "root-token")}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	tb.Cleanup(d.Stop)
	if err := os.WriteFile(d.tokenFile, []byte(tok), 0o600); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Access().Client(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for {
		h, err := c.Sys().HealthWithContext(ctx)
		if err == nil && h.Initialized && !h.Sealed {
			return d
		}
		select {
		case <-d.exited:
			b, _ := os.ReadFile(filepath.Join(dir, "vault.log"))
			tb.Fatalf("vault dev server exited: %s", b)
		case <-ctx.Done():
			b, _ := os.ReadFile(filepath.Join(dir, "vault.log"))
			tb.Fatalf("vault dev server not ready after 30s: %v\n%s", err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MustWrite writes data at path with root, failing the test on error.
func (d *Dev) MustWrite(tb testing.TB, path string, data map[string]any) {
	tb.Helper()
	c, err := d.Access().Client(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Logical().Write(path, data); err != nil {
		tb.Fatalf("vault write %s: %v", path, err)
	}
}

// Leftovers lists the Vault objects of cluster n that still exist: its
// mounts, auth mount, policies and KMS token role. Tests of down and
// Delete expect none.
func Leftovers(tb testing.TB, root *api.Client, n vault.Names) []string {
	tb.Helper()
	var out []string
	mounts, err := root.Sys().ListMounts()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range []string{n.TransitMount, n.KVMount} {
		if _, ok := mounts[m+"/"]; ok {
			out = append(out, "mount "+m)
		}
	}
	auths, err := root.Sys().ListAuth()
	if err != nil {
		tb.Fatal(err)
	}
	if _, ok := auths[n.AuthPath+"/"]; ok {
		out = append(out, "auth "+n.AuthPath)
	}
	policies, err := root.Sys().ListPolicies()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range policies {
		if strings.HasPrefix(p, "secprov-"+n.Cluster+"-") {
			out = append(out, "policy "+p)
		}
	}
	if role, err := root.Logical().Read("auth/token/roles/" + n.KMSTokenRole()); err != nil || role != nil {
		out = append(out, "token role "+n.KMSTokenRole())
	}
	return out
}
