package kms

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/vault"
)

func TestOptionsValidate(t *testing.T) {
	ok := Options{Socket: "/run/secprov/kms.sock", Vault: vault.Access{Address: "https://vault:8200", TokenFile: "/etc/secprov/kms-token"},
		Mount: "transit-prod", Key: "kms"}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want []string // nil: valid
	}{
		{"valid", func(*Options) {}, nil},
		{"nested mount with slashes", func(o *Options) { o.Mount = "/teams/a/transit/" }, nil},
		{"socket at the limit", func(o *Options) { o.Socket = "/" + strings.Repeat("s", MaxSocketPath-1) }, nil},
		{"socket too long", func(o *Options) { o.Socket = "/" + strings.Repeat("s", MaxSocketPath) }, []string{"108 bytes", "at most 107", "shorter directory"}},
		{"nothing", func(o *Options) { *o = Options{} }, []string{"no socket path", "no Vault address", "no Vault token file", "no transit mount", "transit key name"}},
		{"key with slash", func(o *Options) { o.Key = "a/b" }, []string{`"a/b"`}},
		{"key with colon", func(o *Options) { o.Key = "a:v1" }, []string{`"a:v1"`}},
		{"mount only slashes", func(o *Options) { o.Mount = "//" }, []string{"no transit mount"}},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, []string{"negative"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.edit(&o)
			err := o.Validate()
			if c.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			mustContain(t, "error", err.Error(), c.want...)
		})
	}
}

// offline returns options for a Vault nobody listens on, with a token file.
func offline(t *testing.T) Options {
	t.Helper()
	tf := filepath.Join(privateDir(t), "token")
	writeToken(t, tf, "test-not-a-real-token")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	_ = l.Close()
	return Options{Vault: vault.Access{Address: addr, TokenFile: tf}, Mount: "transit-x", Key: "k", Timeout: time.Second}
}

func TestServeStartsWithoutVaultAndReportsIt(t *testing.T) {
	o := offline(t)
	r := serve(t, o)
	st, err := r.probe(t)
	if err == nil || st.Healthy() {
		t.Fatalf("Probe = %+v, %v; want unhealthy", st, err)
	}
	mustContain(t, "Healthz", st.Healthz, "vault "+o.Vault.Address, "transit-x/k", "connection refused")
	if strings.Contains(st.Healthz, "\n") {
		t.Errorf("Healthz spans lines: %q", st.Healthz)
	}
	if st.Version != "v2" || st.KeyID != "" {
		t.Errorf("Probe = %+v: want version v2 and no key ID before Vault ever answered", st)
	}
	r.waitLog(t, "renewal failed")
	mustContain(t, "log", r.logs.String(), "KMS plugin serving", `"healthy":false`)
	if strings.Contains(r.logs.String(), "test-not-a-real-token") {
		t.Error("log holds the token")
	}
}

func TestServeRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, o *Options)
		want  string
	}{
		{"no socket directory", func(t *testing.T, o *Options) {
			o.Socket = filepath.Join(privateDir(t), "missing", "kms.sock")
		}, "create it with mode 0700"},
		{"shared socket directory", func(t *testing.T, o *Options) {
			dir := privateDir(t)
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			o.Socket = filepath.Join(dir, "kms.sock")
		}, "chmod 700"},
		{"a regular file at the socket path", func(t *testing.T, o *Options) {
			o.Socket = filepath.Join(privateDir(t), "kms.sock")
			if err := os.WriteFile(o.Socket, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a socket"},
		{"token file readable by others", func(t *testing.T, o *Options) {
			o.Socket = filepath.Join(privateDir(t), "kms.sock")
			if err := os.Chmod(o.Vault.TokenFile, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600"},
		{"no token file", func(t *testing.T, o *Options) {
			o.Socket = filepath.Join(privateDir(t), "kms.sock")
			o.Vault.TokenFile += ".missing"
		}, "token file"},
		{"empty token file", func(t *testing.T, o *Options) {
			o.Socket = filepath.Join(privateDir(t), "kms.sock")
			writeToken(t, o.Vault.TokenFile, "  ")
		}, "is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := offline(t)
			c.setup(t, &o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Serve(ctx, o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Serve = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	o := offline(t)
	o.Socket = filepath.Join(privateDir(t), "kms.sock")
	// A socket file nobody serves, as a killed plugin leaves it.
	l, err := net.Listen("unix", o.Socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close()
	if _, err := os.Stat(o.Socket); err != nil {
		t.Fatalf("stale socket: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// An answer (unhealthy, Vault is away) means the new plugin serves.
		st, _ := Probe(ctx, o.Socket)
		if st.Version == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no plugin answered on the formerly stale socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestProbeWithoutPlugin(t *testing.T) {
	sock := filepath.Join(privateDir(t), "none.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Probe(ctx, sock); err == nil || !strings.Contains(err.Error(), sock) {
		t.Errorf("Probe without a plugin = %v, want an error naming %s", err, sock)
	}
}
