package proc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var errNotYet = errors.New("not yet")

func TestWaitReady(t *testing.T) {
	t.Run("ready on third probe", func(t *testing.T) {
		n := 0
		err := WaitReady(context.Background(), func(context.Context) error {
			if n++; n < 3 {
				return errNotYet
			}
			return nil
		}, 10*time.Millisecond)
		if err != nil || n != 3 {
			t.Fatalf("WaitReady = %v after %d probes, want nil after 3", err, n)
		}
	})
	t.Run("timeout returns last probe error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		n := 0
		err := WaitReady(ctx, func(context.Context) error {
			n++
			return fmt.Errorf("attempt %d: %w", n, errNotYet)
		}, 20*time.Millisecond)
		if !errors.Is(err, errNotYet) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReady = %v, want the last probe error and the deadline", err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("attempt %d:", n)) {
			t.Errorf("error %q is not the last probe's (%d)", err, n)
		}
	})
	t.Run("fails fast when the process dies", func(t *testing.T) {
		needBinaries(t, "/bin/sh")
		s := spec(t, "/bin/sh", "-c", `echo "listen tcp 127.0.0.1:2379: bind: address already in use" >&2; exit 1`)
		s.Name = "etcd"
		if _, err := Start(s); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		err := WaitReady(ctx, func(context.Context) error { return errNotYet }, 50*time.Millisecond, s.PidFile)
		if !errors.Is(err, ErrExited) {
			t.Fatalf("WaitReady = %v, want ErrExited", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %s to notice the exit", d)
		}
		for _, want := range []string{"etcd (pid", "exited before it became ready", "not yet", "address already in use"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("fails when the pid file is gone", func(t *testing.T) {
		pf := filepath.Join(t.TempDir(), "gone.pid")
		err := WaitReady(context.Background(), func(context.Context) error { return nil }, time.Millisecond, pf)
		if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("WaitReady = %v, want ErrExited for a missing pid file", err)
		}
	})
}

func TestHTTPSReady(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			fmt.Fprint(w, "ok")
			return
		}
		http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	trusted := &tls.Config{RootCAs: roots}

	tests := []struct {
		name, url string
		tls       *tls.Config
		want      string // "" = ready
	}{
		{"200", srv.URL + "/readyz", trusted, ""},
		{"500 with failed checks", srv.URL + "/livez", trusted, "500 Internal Server Error: [-]etcd failed"},
		{"untrusted server", srv.URL + "/readyz", &tls.Config{RootCAs: x509.NewCertPool()}, "certificate"},
		{"plain http refused", strings.Replace(srv.URL, "https", "http", 1) + "/readyz", trusted, "not an https:// URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := HTTPSReady(tc.url, tc.tls)(context.Background())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("probe: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("probe: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var long strings.Builder
	for i := range 10000 { // ~90 KiB, more than Tail reads
		fmt.Fprintf(&long, "line %d\n", i)
	}
	tests := []struct {
		name, content string
		n             int
		want          string
	}{
		{"last lines", "a\nb\nc\nd\n", 2, "c\nd"},
		{"no trailing newline", "a\nb\nc", 2, "b\nc"},
		{"fewer lines than asked", "a\nb\n", 10, "a\nb"},
		{"empty", "", 5, ""},
		{"larger than the window", long.String(), 3, "line 9997\nline 9998\nline 9999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Tail(write(strings.ReplaceAll(tc.name, " ", "_"), tc.content), tc.n)
			if err != nil || got != tc.want {
				t.Fatalf("Tail = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// A window that cuts mid-file never returns a partial first line.
	got, err := Tail(write("window", long.String()), 100000)
	if err != nil || !strings.HasPrefix(got, "line ") || strings.Count(got, "\n")+1 > tailMax/8 {
		t.Errorf("Tail of whole window: %d lines, err %v", strings.Count(got, "\n")+1, err)
	}
	if _, err := Tail(filepath.Join(dir, "missing"), 3); err == nil {
		t.Error("Tail of a missing file succeeded")
	}
}
