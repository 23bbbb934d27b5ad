package vaultserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// Environment of the helper process TestEnsureConcurrent re-executes this
// test binary as.
const (
	helperDirEnv = "SECPROV_VAULTSERVER_HELPER_DIR"
	helperBinEnv = "SECPROV_VAULTSERVER_HELPER_BIN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		os.Exit(helperMain(dir, os.Getenv(helperBinEnv)))
	}
	os.Exit(m.Run())
}

// helperMain is a second secprov process calling Ensure; it prints the
// resulting pid.
func helperMain(dir, bin string) int {
	s := &Server{Dir: dir, Binary: bin}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.Ensure(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := s.Status(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(st.Pid)
	return 0
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newServer returns a Server in a fresh state directory whose log goes to
// the returned buffer; the server is destroyed when the test ends.
func newServer(t testing.TB) (*Server, *syncBuffer) {
	t.Helper()
	bin := vaulttest.Binary(t)
	logs := &syncBuffer{}
	s := &Server{
		Dir:    DirIn(t.TempDir()),
		Binary: bin,
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		// Stop first: should Destroy refuse, no Vault outlives the test.
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := s.Destroy(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s, logs
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustEnsure(t testing.TB, ctx context.Context, s *Server) vault.Access {
	t.Helper()
	a, err := s.Ensure(ctx)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return a
}

func mustStatus(t testing.TB, ctx context.Context, s *Server) Status {
	t.Helper()
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// wantServing checks that the local Vault runs, initialized and unsealed.
func wantServing(t *testing.T, ctx context.Context, s *Server) Status {
	t.Helper()
	st := mustStatus(t, ctx, s)
	if !st.Running || st.Pid == 0 || !st.Initialized || st.Sealed || st.Problem != "" {
		t.Fatalf("status %+v, want running, initialized and unsealed", st)
	}
	return st
}

// rootClient is a client with the token from a, as other secprov packages
// get it.
func rootClient(t *testing.T, ctx context.Context, a vault.Access) *api.Client {
	t.Helper()
	c, err := a.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// vaultProcesses lists live processes running a Vault server with dir's
// configuration.
func vaultProcesses(t *testing.T, l layout) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte("-config="+l.configFile()+"\x00")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue // exited, waiting to be reaped
		}
		pids = append(pids, pid)
	}
	return pids
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

// TestLifecycle runs one local Vault through everything that happens to
// it: a cold start, warm calls, Stop, a crash, a port taken while it was
// down, certificate renewal and Destroy. The steps share one server because
// each cold start costs an init.
func TestLifecycle(t *testing.T) {
	ctx := testContext(t)
	s, logs := newServer(t)
	l := s.layout()
	var errs []error // every error a step saw, checked for secrets at the end

	began := time.Now()
	a := mustEnsure(t, ctx, s)
	t.Logf("cold Ensure (start, init, unseal, audit): %s", time.Since(began).Round(time.Millisecond))
	st := wantServing(t, ctx, s)
	if st.Version != strings.TrimPrefix(vaulttest.Version, "v") {
		t.Errorf("version %q, want %s", st.Version, vaulttest.Version)
	}
	port, _ := readState(l.stateFile())
	if want := (vault.Access{Address: fmt.Sprintf("https://127.0.0.1:%d", port.Port), CAFile: l.caCert(), TokenFile: l.tokenFile()}); a != want || s.Access() != want || st.Address != want.Address {
		t.Errorf("Ensure = %+v, Access() = %+v, status address %s; want %+v", a, s.Access(), st.Address, want)
	}
	if len(vaultProcesses(t, l)) != 1 {
		t.Errorf("vault processes: %v, want one", vaultProcesses(t, l))
	}

	t.Run("files and modes", func(t *testing.T) {
		for _, d := range []string{l.dir(), l.tlsDir(), l.dataDir(), l.homeDir()} {
			wantMode(t, d, 0o700|os.ModeDir)
		}
		for _, f := range []string{l.caKey(), l.serverKey(), l.initFile(), l.tokenFile(), l.logFile(), l.auditLog(), l.stateFile(), l.configFile(), l.pidFile()} {
			wantMode(t, f, 0o600)
		}
		cfg, err := os.ReadFile(l.configFile())
		if err != nil || !bytes.Equal(cfg, renderConfig(l, port.Port)) {
			t.Errorf("vault.hcl is not the rendered config (err %v)", err)
		}
	})

	t.Run("TLS verified with the CA only", func(t *testing.T) {
		cfg, err := clientTLS(l)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", strings.TrimPrefix(a.Address, "https://"), cfg)
		if err != nil {
			t.Fatalf("TLS with the local CA: %v", err)
		}
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("negotiated TLS version %x", v)
		}
		_ = conn.Close()
		// The system roots don't know the local CA.
		if _, err := http.Get(a.Address + "/v1/sys/health"); err == nil {
			t.Error("the local Vault's certificate verified without its CA")
		}
		// TLS 1.1 is refused.
		old := cfg.Clone()
		old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if c, err := tls.Dial("tcp", strings.TrimPrefix(a.Address, "https://"), old); err == nil {
			_ = c.Close()
			t.Error("the local Vault accepted TLS 1.1")
		}
	})

	t.Run("only the API port is open", func(t *testing.T) {
		// Clustering is off: Vault must not listen on port+1.
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port.Port+1), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("something listens on the cluster port %d", port.Port+1)
		}
	})

	const secretValue = "kv-value-that-must-not-appear-in-clear"
	t.Run("root token works", func(t *testing.T) {
		c := rootClient(t, ctx, a)
		if err := c.Sys().MountWithContext(ctx, "test-kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Logical().WriteWithContext(ctx, "test-kv/app", map[string]any{"password": secretValue}); err != nil {
			t.Fatal(err)
		}
		readKV(t, ctx, a, secretValue)
	})

	t.Run("warm Ensure changes nothing", func(t *testing.T) {
		cfgBefore, _ := os.Stat(l.configFile())
		began := time.Now()
		if got := mustEnsure(t, ctx, s); got != a {
			t.Errorf("Access changed: %+v", got)
		}
		t.Logf("warm Ensure: %s", time.Since(began).Round(time.Microsecond))
		if after := wantServing(t, ctx, s); after.Pid != st.Pid {
			t.Errorf("pid %d, want %d (restarted?)", after.Pid, st.Pid)
		}
		if cfgAfter, _ := os.Stat(l.configFile()); !cfgAfter.ModTime().Equal(cfgBefore.ModTime()) {
			t.Error("vault.hcl rewritten")
		}
	})

	t.Run("audit log", func(t *testing.T) {
		data, err := os.ReadFile(l.auditLog())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"path":"test-kv/app"`)) || !bytes.Contains(data, []byte(`"path":"sys/audit/file"`)) {
			t.Errorf("audit log lacks the kv and audit requests:\n%.2000s", data)
		}
		if bytes.Contains(data, []byte(secretValue)) {
			t.Error("audit log holds the kv value in clear")
		}
		if !bytes.Contains(data, []byte("hmac-sha256:")) {
			t.Error("audit log has no HMAC'd values")
		}
	})

	t.Run("Stop then Ensure keeps data", func(t *testing.T) {
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if got := mustStatus(t, ctx, s); got.Running || got.Pid != 0 {
			t.Errorf("after Stop: %+v", got)
		}
		if pids := vaultProcesses(t, l); len(pids) != 0 {
			t.Errorf("vault still runs after Stop: %v", pids)
		}
		if err := s.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if got := mustEnsure(t, ctx, s); got != a {
			t.Errorf("Access changed after restart: %+v", got)
		}
		wantServing(t, ctx, s)
		readKV(t, ctx, a, secretValue)
	})

	t.Run("kill -9 then Ensure", func(t *testing.T) {
		before := mustStatus(t, ctx, s)
		if err := syscall.Kill(before.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return !proc.Alive(l.pidFile()) })
		if st, _ := proc.Status(l.pidFile()); st != proc.StateStale {
			t.Fatalf("pid file state %s, want stale", st)
		}
		mustEnsure(t, ctx, s)
		if after := wantServing(t, ctx, s); after.Pid == before.Pid {
			t.Error("same pid after a kill")
		}
		readKV(t, ctx, a, secretValue)
	})

	t.Run("port taken while stopped", func(t *testing.T) {
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port.Port))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Ensure(ctx)
		_ = ln.Close()
		errs = append(errs, err)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", port.Port)) || !strings.Contains(err.Error(), l.stateFile()) {
			t.Errorf("err = %v, want one naming port %d and %s", err, port.Port, l.stateFile())
		}
		mustEnsure(t, ctx, s)
		readKV(t, ctx, a, secretValue)
	})

	t.Run("server certificate renewed", func(t *testing.T) {
		before := mustStatus(t, ctx, s)
		now := time.Now()
		ca, caKey, err := loadCA(l, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := issueServerCert(l, ca, caKey, now, 10*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		mustEnsure(t, ctx, s)
		after := wantServing(t, ctx, s)
		if after.Pid == before.Pid {
			t.Error("Vault not restarted after the certificate was renewed")
		}
		cfg, _ := clientTLS(l)
		conn, err := tls.Dial("tcp", strings.TrimPrefix(a.Address, "https://"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		left := time.Until(conn.ConnectionState().PeerCertificates[0].NotAfter)
		_ = conn.Close()
		if left < serverValidity-time.Hour {
			t.Errorf("Vault serves a certificate valid for %s more, want ≈ %s", left, serverValidity)
		}
		readKV(t, ctx, a, secretValue)
	})

	t.Run("no secrets in logs or errors", func(t *testing.T) {
		key, tok, err := readInit(l.initFile())
		if err != nil {
			t.Fatal(err)
		}
		vlog, err := os.ReadFile(l.logFile())
		if err != nil {
			t.Fatal(err)
		}
		audit, _ := os.ReadFile(l.auditLog())
		texts := map[string]string{"vault.log": string(vlog), "secprov log": logs.String(), "audit.log": string(audit)}
		for i, e := range errs {
			if e != nil {
				texts[fmt.Sprintf("error %d", i)] = e.Error()
			}
		}
		for name, text := range texts {
			for what, v := range map[string]string{"unseal key": key.reveal(), "root token": tok.reveal()} {
				if strings.Contains(text, v) {
					t.Errorf("%s holds the %s", name, what)
				}
			}
		}
		if !strings.Contains(logs.String(), "local Vault: initialized") || !strings.Contains(string(vlog), "core: vault is unsealed") {
			t.Errorf("logs look empty; the check above proves nothing:\nsecprov:\n%s\nvault:\n%.1000s", logs.String(), vlog)
		}
	})

	t.Run("Destroy", func(t *testing.T) {
		pid := mustStatus(t, ctx, s).Pid
		if err := s.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(l.dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists: %v", l.dir(), err)
		}
		if pids := vaultProcesses(t, l); len(pids) != 0 {
			t.Errorf("vault (pid %d) still runs after Destroy: %v", pid, pids)
		}
		if got := mustStatus(t, ctx, s); got.Running || got.Address != "" {
			t.Errorf("status after Destroy: %+v", got)
		}
		if err := s.Destroy(ctx); err != nil {
			t.Errorf("second Destroy: %v", err)
		}
	})
}

func readKV(t *testing.T, ctx context.Context, a vault.Access, want string) {
	t.Helper()
	sec, err := rootClient(t, ctx, a).Logical().ReadWithContext(ctx, "test-kv/app")
	if err != nil {
		t.Fatal(err)
	}
	if sec == nil || sec.Data["password"] != want {
		t.Fatalf("read test-kv/app = %+v, want password %q", sec, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEnsureConcurrent starts the local Vault from three goroutines and a
// second process at once: exactly one Vault results and every caller gets
// the same access.
func TestEnsureConcurrent(t *testing.T) {
	ctx := testContext(t)
	s, _ := newServer(t)
	l := s.layout()

	helper := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperDirEnv+"="+s.Dir, helperBinEnv+"="+s.Binary)
	var helperOut, helperErr bytes.Buffer
	helper.Stdout, helper.Stderr = &helperOut, &helperErr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}

	const n = 3
	var wg sync.WaitGroup
	access := make([]vault.Access, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Each goroutine is its own Server value, like separate callers.
			access[i], errs[i] = (&Server{Dir: s.Dir, Binary: s.Binary, Log: s.Log}).Ensure(ctx)
		})
	}
	wg.Wait()
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, helperErr.String())
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if access[i] != access[0] {
			t.Errorf("goroutine %d got %+v, goroutine 0 %+v", i, access[i], access[0])
		}
	}
	st := wantServing(t, ctx, s)
	if got := strings.TrimSpace(helperOut.String()); got != strconv.Itoa(st.Pid) {
		t.Errorf("helper process saw pid %q, want %d", got, st.Pid)
	}
	if pids := vaultProcesses(t, l); len(pids) != 1 || pids[0] != st.Pid {
		t.Errorf("vault processes %v, want exactly [%d]", pids, st.Pid)
	}
	log, _ := os.ReadFile(l.logFile())
	if c := bytes.Count(log, []byte("---- secprov: starting vault")); c != 1 {
		t.Errorf("vault was started %d times", c)
	}
	rootClient(t, ctx, access[0]) // the token file is in place
}

// TestUnsealKeyLost: an initialized Vault whose init.json is gone or
// damaged cannot be unsealed, and the error says how to recover; putting
// the file back recovers.
func TestUnsealKeyLost(t *testing.T) {
	ctx := testContext(t)
	s, logs := newServer(t)
	l := s.layout()
	mustEnsure(t, ctx, s)
	good, err := os.ReadFile(l.initFile())
	if err != nil {
		t.Fatal(err)
	}
	key, tok, err := readInit(l.initFile())
	if err != nil {
		t.Fatal(err)
	}
	otherKey := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes like a real key, but not this Vault's

	tests := []struct {
		name    string
		content []byte // nil: remove the file
		want    []string
	}{
		{name: "missing", want: []string{"is missing", "secprov vault reset --yes"}},
		{name: "not JSON", content: []byte(`{"unsealKeysB64": [`), want: []string{"not valid JSON", "secprov vault reset --yes"}},
		{name: "no root token", content: []byte(`{"unsealKeysB64": ["` + key.reveal() + `"]}`), want: []string{"exactly one unseal key", "secprov vault reset --yes"}},
		{name: "wrong key", content: []byte(`{"unsealKeysB64": ["` + otherKey + `"], "rootToken": "` + tok.reveal() + `"}`), want: []string{"does not open", "secprov vault reset --yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if tt.content == nil {
				if err := os.Remove(l.initFile()); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(l.initFile(), tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Ensure(ctx)
			if err == nil {
				t.Fatal("Ensure succeeded without a usable unseal key")
			}
			for _, w := range append(tt.want, l.initFile()) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, v := range []string{key.reveal(), tok.reveal(), otherKey} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error holds a key or token:\n%v", err)
				}
			}
			if st := mustStatus(t, ctx, s); !st.Initialized || !st.Sealed {
				t.Errorf("status %+v, want initialized and sealed", st)
			}
		})
	}

	// The remedy the error offers first: put the file back.
	if err := os.WriteFile(l.initFile(), good, 0o600); err != nil {
		t.Fatal(err)
	}
	mustEnsure(t, ctx, s)
	wantServing(t, ctx, s)
	if strings.Contains(logs.String(), key.reveal()) || strings.Contains(logs.String(), tok.reveal()) {
		t.Error("secprov log holds the unseal key or root token")
	}
}

// TestStartFailureShowsLog: a Vault that exits while starting is reported
// with the tail of its log and what to do. A script stands in for Vault,
// so this runs without the real binary.
func TestStartFailureShowsLog(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-vault")
	script := "#!/bin/sh\necho 'Error parsing listener configuration.' >&2\necho 'Error initializing core: boom at line 7' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: DirIn(dir), Binary: bin}
	_, err := s.Ensure(testContext(t))
	if err == nil {
		t.Fatal("Ensure succeeded with a Vault that exits")
	}
	for _, want := range []string{"exited while starting", "boom at line 7", s.layout().logFile(), "secprov vault reset --yes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// The fake process saw only the minimal environment.
	t.Setenv("VAULT_TOKEN", "must-not-be-passed")
	envScript := "#!/bin/sh\nenv > " + filepath.Join(dir, "env.txt") + "\nexit 1\n"
	if err := os.WriteFile(bin, []byte(envScript), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Ensure(testContext(t))
	env, err := os.ReadFile(filepath.Join(dir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		name, _, _ := strings.Cut(line, "=")
		if name != "HOME" && name != "PATH" && name != "PWD" && name != "SHLVL" && name != "_" {
			t.Errorf("Vault's environment has %s", name)
		}
	}
}
