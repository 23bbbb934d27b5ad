package kms

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRoundTripWithNarrowToken(t *testing.T) {
	e := newEnv(t)
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})

	fi, err := os.Stat(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %04o, want 0600", fi.Mode().Perm())
	}

	st, err := r.probe(t)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	want := StatusResult{Version: "v2", Healthz: "ok", KeyID: "vault-transit:transit-c1/c1:v1"}
	if st != want || !st.Healthy() {
		t.Errorf("Probe = %+v, want %+v", st, want)
	}

	pt := seed(t)
	enc, err := r.encrypt(t, pt)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if enc.KeyId != want.KeyID {
		t.Errorf("Encrypt key ID = %q, want %q", enc.KeyId, want.KeyID)
	}
	if !bytes.HasPrefix(enc.Ciphertext, []byte("vault:v1:")) || bytes.Contains(enc.Ciphertext, pt) {
		t.Errorf("ciphertext is not a v1 transit ciphertext of the seed")
	}
	if len(enc.Ciphertext) >= 1024 {
		t.Errorf("ciphertext is %d bytes; the apiserver refuses 1 kB or more", len(enc.Ciphertext))
	}
	if len(enc.Annotations) != 0 {
		t.Errorf("annotations = %v, want none", enc.Annotations)
	}
	got, err := r.decrypt(t, enc.Ciphertext, enc.KeyId)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Error("Decrypt did not return the plaintext")
	}

	// The token is as narrow as the brief says: it cannot touch anything
	// beyond its key, not even list the transit keys.
	c := e.root.WithNamespace("")
	c.SetToken(e.c1.token)
	for _, path := range []string{"sys/mounts", e.c1.mount + "/keys", "secret/data/x"} {
		if _, err := c.Logical().Read(path); err == nil || !isStatus(err, 403) {
			t.Errorf("narrow token read %s: err = %v, want 403", path, err)
		}
	}
}

func TestRotationChangesKeyIDAndOldDataStillDecrypts(t *testing.T) {
	e := newEnv(t)
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	pt1 := seed(t)
	enc1, err := r.encrypt(t, pt1)
	if err != nil {
		t.Fatal(err)
	}

	e.d.MustWrite(t, e.c1.mount+"/keys/"+e.c1.key+"/rotate", nil)

	// No cache stands between a rotation and Status.
	st, err := r.probe(t)
	if err != nil {
		t.Fatal(err)
	}
	if want := KeyID(e.c1.mount, e.c1.key, 2); st.KeyID != want {
		t.Errorf("Status key ID after rotation = %q, want %q", st.KeyID, want)
	}
	pt2 := seed(t)
	enc2, err := r.encrypt(t, pt2)
	if err != nil {
		t.Fatal(err)
	}
	if enc2.KeyId != st.KeyID || !bytes.HasPrefix(enc2.Ciphertext, []byte("vault:v2:")) {
		t.Errorf("Encrypt after rotation: key ID %q (ciphertext %.9s), want %q and vault:v2:", enc2.KeyId, enc2.Ciphertext, st.KeyID)
	}
	for _, c := range []struct {
		pt    []byte
		ct    []byte
		keyID string
	}{{pt1, enc1.Ciphertext, enc1.KeyId}, {pt2, enc2.Ciphertext, enc2.KeyId}} {
		got, err := r.decrypt(t, c.ct, c.keyID)
		if err != nil {
			t.Errorf("Decrypt %s: %v", c.keyID, err)
		} else if !bytes.Equal(got, c.pt) {
			t.Errorf("Decrypt %s: wrong plaintext", c.keyID)
		}
	}
	mustContain(t, "log", r.logs.String(), "transit key rotated", `"to":"vault-transit:transit-c1/c1:v2"`)
}

func TestAnotherClustersKeyIsRefused(t *testing.T) {
	e := newEnv(t)
	// c1's token, but configured with c2's key (a copy-paste mistake, or
	// an attempt to read another cluster's data).
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c2.mount, Key: e.c2.key})

	_, err := r.encrypt(t, seed(t))
	if err == nil {
		t.Fatal("Encrypt with another cluster's key succeeded")
	}
	mustContain(t, "Encrypt error", err.Error(), "permission denied", "transit-c2/c2", e.d.Addr, "--transit-key")

	st, err := r.probe(t)
	if err == nil || st.Healthy() {
		t.Fatalf("Status with another cluster's key: %+v, err %v; want unhealthy", st, err)
	}
	mustContain(t, "Healthz", st.Healthz, "permission denied", "transit-c2/c2")

	// Ciphertext c2's own plugin made cannot be decrypted with c1's token
	// either, and data tagged with another key is refused before Vault.
	r2 := serve(t, Options{Vault: e.access(e.c2), Mount: e.c2.mount, Key: e.c2.key})
	enc, err := r2.encrypt(t, seed(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.decrypt(t, enc.Ciphertext, enc.KeyId); err == nil {
		t.Error("c1's token decrypted c2's data")
	} else {
		mustContain(t, "Decrypt error", err.Error(), "permission denied")
	}
	r1 := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	if _, err := r1.decrypt(t, enc.Ciphertext, enc.KeyId); err == nil {
		t.Error("c1's plugin decrypted data tagged with c2's key")
	} else {
		mustContain(t, "Decrypt error", err.Error(), enc.KeyId, "transit-c1/c1")
	}
}

func TestVaultGoneIsUnhealthyNotFatal(t *testing.T) {
	e := newEnv(t)
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key, Timeout: time.Second})
	enc, err := r.encrypt(t, seed(t))
	if err != nil {
		t.Fatal(err)
	}

	e.d.Stop()

	st, err := r.probe(t)
	if err == nil || st.Healthy() {
		t.Fatalf("Status with Vault stopped: %+v, err %v; want unhealthy", st, err)
	}
	mustContain(t, "Healthz", st.Healthz, "vault "+e.d.Addr)
	if st.Version != "v2" || st.KeyID != enc.KeyId {
		t.Errorf("Status with Vault stopped = %+v, want version v2 and the last key ID %s", st, enc.KeyId)
	}
	if _, err := r.encrypt(t, seed(t)); err == nil {
		t.Error("Encrypt with Vault stopped succeeded")
	} else {
		mustContain(t, "Encrypt error", err.Error(), "vault "+e.d.Addr, "encrypt")
	}
	if _, err := r.decrypt(t, enc.Ciphertext, enc.KeyId); err == nil {
		t.Error("Decrypt with Vault stopped succeeded")
	} else {
		mustContain(t, "Decrypt error", err.Error(), "vault "+e.d.Addr, "decrypt")
	}
	// Still serving: the apiserver keeps polling until Vault is back.
	if _, err := r.probe(t); err == nil || !strings.Contains(err.Error(), "unhealthy") {
		t.Errorf("second Probe: %v, want an unhealthy answer", err)
	}
	mustContain(t, "log", r.logs.String(), "unhealthy")
}

func TestTokenIsRenewed(t *testing.T) {
	e := newEnv(t)
	tok, accessor := e.newToken(t, e.c1.mount, "10s")
	writeToken(t, e.c1.tokenFile, tok)
	time.Sleep(2500 * time.Millisecond)
	if ttl := e.tokenTTL(t, accessor); ttl > 8*time.Second {
		t.Fatalf("TTL before the plugin started = %s, want it to have run down", ttl)
	}
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})

	// Renewed at start...
	deadline := time.Now().Add(3 * time.Second)
	for e.tokenTTL(t, accessor) < 9*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("token not renewed at start: TTL %s", e.tokenTTL(t, accessor))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ...and again a third of the period later: without that, 6 s on
	// the TTL would be down to 4 s.
	time.Sleep(6 * time.Second)
	if ttl := e.tokenTTL(t, accessor); ttl < 6*time.Second {
		t.Errorf("TTL 6s after the first renewal = %s: not renewed again", ttl)
	}
	if n := strings.Count(r.logs.String(), "renewed the Vault token"); n < 2 {
		t.Errorf("%d renewals logged, want at least 2", n)
	}
	if _, err := r.encrypt(t, seed(t)); err != nil {
		t.Errorf("Encrypt with the renewed token: %v", err)
	}
}

func TestReplacedTokenFileIsPickedUp(t *testing.T) {
	e := newEnv(t)
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	enc, err := r.encrypt(t, seed(t))
	if err != nil {
		t.Fatal(err)
	}

	// The old token is revoked before the file is replaced: Vault
	// refuses, the file still holds the same token, the error says so.
	e.d.MustWrite(t, "auth/token/revoke-accessor", map[string]any{"accessor": e.c1.accessor})
	if _, err := r.encrypt(t, seed(t)); err == nil {
		t.Fatal("Encrypt with a revoked token succeeded")
	} else {
		mustContain(t, "Encrypt error", err.Error(), "permission denied")
	}

	tok2, _ := e.newToken(t, e.c1.mount, "1h")
	writeToken(t, e.c1.tokenFile, tok2)
	if _, err := r.encrypt(t, seed(t)); err != nil {
		t.Fatalf("Encrypt after the token file was replaced: %v", err)
	}
	if _, err := r.decrypt(t, enc.Ciphertext, enc.KeyId); err != nil {
		t.Errorf("Decrypt of data from before the token change: %v", err)
	}
	if _, err := r.probe(t); err != nil {
		t.Errorf("Probe after the token change: %v", err)
	}
	mustContain(t, "log", r.logs.String(), "switched to the new token")
	for _, tok := range []string{e.c1.token, tok2} {
		if strings.Contains(r.logs.String(), tok) {
			t.Error("log holds a token")
		}
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t)
	r := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	wrong := serve(t, Options{Vault: e.access(e.c1), Mount: e.c2.mount, Key: e.c2.key})

	pt := seed(t)
	enc, err := r.encrypt(t, pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.decrypt(t, enc.Ciphertext, enc.KeyId); err != nil {
		t.Fatal(err)
	}
	// Failures log too; their errors must not carry the data either.
	tampered := bytes.Clone(enc.Ciphertext)
	tampered[len(tampered)-2] ^= 1
	if _, err := r.decrypt(t, tampered, enc.KeyId); err == nil {
		t.Error("Decrypt of a tampered ciphertext succeeded")
	}
	if _, err := wrong.encrypt(t, pt); err == nil {
		t.Error("Encrypt with another cluster's key succeeded")
	}
	e.d.MustWrite(t, e.c1.mount+"/keys/"+e.c1.key+"/rotate", nil)
	if _, err := r.probe(t); err != nil {
		t.Fatal(err)
	}
	if _, err := r.encrypt(t, pt); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := wrong.stop(); err != nil {
		t.Fatal(err)
	}

	logs := r.logs.String() + wrong.logs.String()
	mustContain(t, "log", logs, "KMS plugin serving", "transit key rotated", "encrypt failed", "decrypt failed", "KMS plugin stopped")
	b64ct := strings.SplitN(string(enc.Ciphertext), ":", 3)[2]
	for what, secret := range map[string]string{
		"the token":              e.c1.token,
		"the root token":         e.d.RootToken,
		"the plaintext (base64)": base64.StdEncoding.EncodeToString(pt),
		"the plaintext (raw)":    string(pt),
		"the ciphertext":         b64ct,
		"the tampered one":       strings.SplitN(string(tampered), ":", 3)[2],
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds %s", what)
		}
	}
}

func TestServeStopsCleanlyAndRefusesALiveSocket(t *testing.T) {
	e := newEnv(t)
	o := Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key}
	r := serve(t, o)
	if _, err := r.probe(t); err != nil {
		t.Fatal(err)
	}

	// A second plugin on the same live socket is refused.
	o.Socket = r.socket
	if err := Serve(context.Background(), o); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Serve on a live socket: %v, want 'in use'", err)
	}
	if _, err := r.probe(t); err != nil {
		t.Errorf("the running plugin after a second one was refused: %v", err)
	}

	if err := r.stop(); err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, err := os.Stat(r.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after a clean stop: %v", err)
	}
	if _, err := r.probe(t); err == nil {
		t.Error("Probe succeeded after the plugin stopped")
	}
}

func BenchmarkEncrypt(b *testing.B) {
	e := newEnv(b)
	r := serve(b, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	pt := seed(b)
	for b.Loop() {
		if _, err := r.encrypt(b, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTokensVaultWillNotRenew(t *testing.T) {
	e := newEnv(t)
	s, err := e.root.Logical().Write("auth/token/create", map[string]any{
		"policies": []string{"kms-" + e.c1.mount}, "ttl": "1h", "renewable": false, "no_parent": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeToken(t, e.c1.tokenFile, s.Auth.ClientToken)
	fixed := serve(t, Options{Vault: e.access(e.c1), Mount: e.c1.mount, Key: e.c1.key})
	// The root token never expires: nothing to renew, nothing to warn about.
	root := serve(t, Options{Vault: e.d.Access(), Mount: e.c1.mount, Key: e.c1.key})
	for _, r := range []*running{fixed, root} {
		if _, err := r.encrypt(t, seed(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Renewal runs beside serving: give its first round a moment.
	fixed.waitLog(t, "not renewable; replace the token file before it expires")
	mustContain(t, "log", fixed.logs.String(), `"expiresIn":"`)
	root.waitLog(t, "never expires; not renewing it")
	for _, r := range []*running{fixed, root} {
		if strings.Contains(r.logs.String(), "renewal failed") {
			t.Errorf("renewal reported as failed: %s", r.logs.String())
		}
	}
}
