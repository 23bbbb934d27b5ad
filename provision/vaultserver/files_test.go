package vaultserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecretNeverPrints(t *testing.T) {
	const raw = "hvs.s3cr3t-token-value"
	s := secret(raw)
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "token", s, "group", slog.GroupValue(slog.Any("key", s)))
	js, _ := json.Marshal(map[string]any{"t": s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %d %#v %+v", s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ K secret }{s}), logBuf.String(), string(js),
		fmt.Errorf("wrapped %w: %v", errors.New("e"), s).Error(),
	}
	for _, o := range outs {
		if strings.Contains(o, raw) {
			t.Errorf("secret printed in clear: %s", o)
		}
		if !strings.Contains(o, redacted) {
			t.Errorf("no %s marker in %s", redacted, o)
		}
	}
	if s.reveal() != raw {
		t.Error("reveal does not return the value")
	}
}

func TestScrubErr(t *testing.T) {
	key, tok := secret("c2VjcmV0LWtleQ=="), secret("hvs.root")
	base := errors.New("server said: bad key c2VjcmV0LWtleQ== for hvs.root")
	err := scrubErr(base, key, tok)
	if strings.Contains(err.Error(), key.reveal()) || strings.Contains(err.Error(), tok.reveal()) {
		t.Errorf("scrubbed error still holds a secret: %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("scrubbed error lost its chain")
	}
	clean := errors.New("connection refused")
	if scrubErr(clean, key) != clean {
		t.Error("an error without secrets was rewrapped")
	}
	if scrubErr(nil, key) != nil {
		t.Error("scrubErr(nil) != nil")
	}
}

func TestReadInit(t *testing.T) {
	tests := []struct {
		name, content string
		wantErr       string
	}{
		{name: "ok", content: `{"unsealKeysB64":["a2V5"],"rootToken":"hvs.tok"}`},
		{name: "not json", content: `{"unsealKeysB64":["a2V5"`, wantErr: "not valid JSON"},
		{name: "no token", content: `{"unsealKeysB64":["a2V5"]}`, wantErr: "exactly one unseal key"},
		{name: "two keys", content: `{"unsealKeysB64":["a2V5","b"],"rootToken":"x"}`, wantErr: "exactly one unseal key"},
		{name: "missing", wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "init.json")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			key, tok, err := readInit(path)
			if tt.wantErr == "" {
				if err != nil || key.reveal() != "a2V5" || tok.reveal() != "hvs.tok" {
					t.Errorf("readInit = %q, %q, %v", key.reveal(), tok.reveal(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "a2V5") {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func TestLostKeyErrorNamesReset(t *testing.T) {
	l := layout("/state/vault")
	for _, why := range []error{os.ErrNotExist, errors.New("not valid JSON")} {
		msg := lostKeyError(l, why).Error()
		for _, want := range []string{"secprov vault reset --yes", "/state/vault/init.json", "cannot be unsealed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
	}
}

func TestWriteFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestCheckOurs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vault")
	if err := checkOurs(layout(dir)); err != nil {
		t.Errorf("missing directory: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vault.hcl", "init.json.old-20260101T000000Z", ".init.json.tmp-123"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkOurs(layout(dir)); err != nil {
		t.Errorf("our own files: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".bashrc"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkOurs(layout(dir)); err == nil || !strings.Contains(err.Error(), ".bashrc") {
		t.Errorf("foreign file: err = %v", err)
	}
	if err := (&Server{Dir: dir}).Destroy(context.Background()); err == nil {
		t.Error("Destroy removed a directory holding a foreign file")
	}
	if _, err := os.Stat(filepath.Join(dir, ".bashrc")); err != nil {
		t.Errorf("foreign file gone: %v", err)
	}
}

func TestLockDir(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	l := layout(filepath.Join(t.TempDir(), "vault"))
	ctx := context.Background()

	// Without create, a missing directory has nothing to lock.
	if unlock, ok, err := lockDir(ctx, l, false, log); err != nil || ok || unlock != nil {
		t.Fatalf("lockDir(missing, no create) = %v, %v", ok, err)
	}
	unlock, ok, err := lockDir(ctx, l, true, log)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// A second locker waits until the first lets go.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := lockDir(short, l, true, log); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second lock while held: err = %v, want a timeout", err)
	}
	got := make(chan error, 1)
	go func() {
		u, ok, err := lockDir(ctx, l, false, log)
		if ok {
			u()
		}
		if err == nil && ok {
			err = errors.New("got a lock on a removed directory")
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	// What Destroy does: remove the directory, lock file included, while
	// holding the lock. The waiter must notice, not carry on.
	if err := os.RemoveAll(l.dir()); err != nil {
		t.Fatal(err)
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter still waiting after the lock was released")
	}
}
