//go:build unix

// Package proctest runs secprov as a separate process in tests, for what
// only a process shows: exit codes, signals, and system calls that block
// regardless of any context (opening a FIFO).
package proctest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/vault/kms"
)

// Buffer is a bytes.Buffer safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Process is a started secprov process.
type Process struct {
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer
	done   chan struct{}
	err    error
}

// Start runs bin with args; env is added to this process's environment.
// The process is killed when the test ends, if it still runs.
func Start(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process.
func (p *Process) Signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
}

// ExitCode waits up to d for the process to exit and returns its exit
// code. A process still running, or killed by a signal rather than
// exiting, fails the test.
func (p *Process) ExitCode(tb testing.TB, d time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		tb.Fatalf("still running %s later; stderr:\n%s", d, p.Stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			tb.Fatalf("killed by %v instead of exiting; stderr:\n%s", ws.Signal(), p.Stderr)
		}
		return ee.ExitCode()
	}
	if p.err != nil {
		tb.Fatal(p.err)
	}
	return 0
}

// Mkfifo makes a FIFO: opening it for reading blocks until a writer comes,
// whatever the reader's context says. It skips the test where FIFOs
// cannot be made.
func Mkfifo(tb testing.TB, path string) {
	tb.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		tb.Skipf("cannot make a FIFO here: %v", err)
	}
}

// FeedFIFO waits until the process opens fifo for reading, writes data
// and closes it, so the test knows how far the process got. It returns
// false if the process exits first, never having opened the FIFO.
func FeedFIFO(tb testing.TB, p *Process, fifo string, data []byte) bool {
	tb.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until a reader comes
		if err != nil {
			f = nil
		}
		opened <- f
	}()
	select {
	case f := <-opened:
		if f == nil {
			tb.Fatalf("cannot open %s for writing", fifo)
		}
		_, _ = f.Write(data)
		_ = f.Close()
		return true
	case <-p.done:
		// Release the writer: be its reader.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			if f := <-opened; f != nil {
				_ = f.Close()
			}
			_ = r.Close()
		}
		return false
	case <-time.After(30 * time.Second):
		tb.Fatalf("the process never opened %s; stderr:\n%s", fifo, p.Stderr)
		return false
	}
}

// Transit mount and key the fake Vault serves.
const (
	TransitMount = "transit-app"
	TransitKey   = "kms"
)

// FakeVault answers the calls kms-plugin makes (read the transit key,
// renew and look up its token), so a test of the plugin's process needs
// no Vault binary.
func FakeVault(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/" + TransitMount + "/keys/" + TransitKey:
			_, _ = w.Write([]byte(`{"data":{"name":"` + TransitKey + `","type":"aes256-gcm96","latest_version":1,"supports_encryption":true,"supports_decryption":true}}`))
		case "/v1/auth/token/renew-self":
			_, _ = w.Write([]byte(`{"auth":{"client_token":"t","lease_duration":3600,"renewable":true}}`))
		case "/v1/auth/token/lookup-self":
			_, _ = w.Write([]byte(`{"data":{"ttl":3600,"renewable":true}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// KMSPluginArgs prepares a private directory with a token file and
// returns kms-plugin's arguments against vaultAddr, and its socket.
func KMSPluginArgs(tb testing.TB, vaultAddr string) (args []string, socket string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "kms") // short: socket paths are limited to 107 bytes
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	tf, socket := dir+"/token", dir+"/kms.sock"
	if err := os.WriteFile(tf, []byte("t"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return []string{"kms-plugin", "--socket", socket, "--vault-addr", vaultAddr, "--token-file", tf,
		"--transit-mount", TransitMount, "--transit-key", TransitKey}, socket
}

// WaitHealthy probes the KMS plugin's socket until it answers healthy.
func WaitHealthy(tb testing.TB, p *Process, socket string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := kms.Probe(context.Background(), socket)
		if err == nil {
			return
		}
		select {
		case <-p.done:
			tb.Fatalf("kms-plugin exited before it was healthy: %v; stderr:\n%s", p.err, p.Stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kms-plugin not healthy after 30s: %v; stderr:\n%s", err, p.Stderr)
		}
	}
}
