package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"

	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// cluster is one cluster's transit key in the dev Vault and the plugin's
// narrow token for it.
type cluster struct {
	mount, key string
	token      string // the narrow token
	accessor   string
	tokenFile  string // 0600, holds token
}

// env is a dev Vault with two clusters' keys, c1 and c2.
type env struct {
	d      *vaulttest.Dev
	root   *api.Client
	c1, c2 cluster
}

func newEnv(t testing.TB) *env {
	t.Helper()
	d := vaulttest.StartDev(t)
	root, err := d.Access().Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, root: root}
	e.c1 = e.newCluster(t, "transit-c1", "c1")
	e.c2 = e.newCluster(t, "transit-c2", "c2")
	return e
}

// newCluster makes a transit mount and key, the KMS policy the brief
// allows (encrypt, decrypt, read the key; nothing else) and a periodic
// orphan token with only that policy (plus Vault's default policy, which
// lets a token renew and look up itself).
func (e *env) newCluster(t testing.TB, mount, key string) cluster {
	t.Helper()
	e.d.MustWrite(t, "sys/mounts/"+mount, map[string]any{"type": "transit"})
	e.d.MustWrite(t, mount+"/keys/"+key, nil)
	policy := `
path "` + mount + `/encrypt/` + key + `" { capabilities = ["update"] }
path "` + mount + `/decrypt/` + key + `" { capabilities = ["update"] }
path "` + mount + `/keys/` + key + `" { capabilities = ["read"] }
`
	e.d.MustWrite(t, "sys/policies/acl/kms-"+mount, map[string]any{"policy": policy})
	c := cluster{mount: mount, key: key}
	c.token, c.accessor = e.newToken(t, mount, "1h")
	c.tokenFile = filepath.Join(privateDir(t), "token")
	writeToken(t, c.tokenFile, c.token)
	return c
}

// newToken creates a periodic orphan token with the KMS policy of mount.
func (e *env) newToken(t testing.TB, mount, period string) (tok, accessor string) {
	t.Helper()
	s, err := e.root.Logical().Write("auth/token/create", map[string]any{
		"policies": []string{"kms-" + mount}, "period": period, "no_parent": true,
	})
	if err != nil || s == nil || s.Auth == nil {
		t.Fatalf("create token: %v", err)
	}
	return s.Auth.ClientToken, s.Auth.Accessor
}

// tokenTTL is the remaining TTL of the token with accessor, as root sees it.
func (e *env) tokenTTL(t testing.TB, accessor string) time.Duration {
	t.Helper()
	s, err := e.root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if err != nil || s == nil {
		t.Fatalf("lookup token: %v", err)
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		t.Fatal(err)
	}
	return ttl
}

func (e *env) access(c cluster) vault.Access {
	return vault.Access{Address: e.d.Addr, TokenFile: c.tokenFile}
}

// writeToken replaces path atomically, as secprov does when it rotates
// the plugin's token.
func writeToken(t testing.TB, path, tok string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// privateDir is a 0700 directory with a short path: t.TempDir's paths
// can exceed what a unix socket allows.
func privateDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a plugin served on a socket for one test.
type running struct {
	socket string
	logs   *logBuffer
	client kmsapi.KeyManagementServiceClient
	stop   func() error // cancels Serve and returns its result
}

// serve runs Serve with o (Socket and Log filled in) until the test ends,
// and waits until the plugin answers.
func serve(t testing.TB, o Options) *running {
	t.Helper()
	r := &running{socket: filepath.Join(privateDir(t), "kms.sock"), logs: &logBuffer{}}
	o.Socket = r.socket
	o.Log = slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o) }()
	var once sync.Once
	var result error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = errors.New("Serve did not return 15s after cancel")
			}
		})
		return result
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// The socket file appears at bind, a moment before the plugin
	// listens: wait for an answer (healthy or not), not for the file.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, _ := Probe(ctx, r.socket)
		cancel()
		if st.Version == APIVersion {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Serve returned before serving: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin did not answer within 10s")
		}
	}
	conn, err := grpc.NewClient("unix://"+r.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r.client = kmsapi.NewKeyManagementServiceClient(conn)
	return r
}

func (r *running) encrypt(t testing.TB, pt []byte) (*kmsapi.EncryptResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: pt, Uid: "test-uid"})
}

func (r *running) decrypt(t testing.TB, ct []byte, keyID string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.client.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: ct, KeyId: keyID, Uid: "test-uid"})
	if err != nil {
		return nil, err
	}
	return resp.Plaintext, nil
}

func (r *running) probe(t testing.TB) (StatusResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Probe(ctx, r.socket)
}

// waitLog waits up to 5 s for msg to appear in the plugin's log.
func (r *running) waitLog(t testing.TB, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("log has no %q after 5s:\n%s", msg, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seed is what the apiserver sends: 32 random bytes.
func seed(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mustContain fails unless s contains every one of want.
func mustContain(t testing.TB, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s %q does not contain %q", what, s, w)
		}
	}
}
