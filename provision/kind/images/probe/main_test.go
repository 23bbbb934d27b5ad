package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunVerdicts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go accept(ln, Banner+" test 1\n")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	t.Cleanup(func() { ln.Close() })

	plan, _ := json.Marshal(Plan{Timeout: "1s", Flows: []Flow{
		{ID: "open", Kind: "tcp", Addr: ln.Addr().String()},
		{ID: "refused", Kind: "tcp", Addr: closedAddr, Attempts: 2},
		{ID: "dns", Kind: "dns", Name: "localhost"},
		{ID: "odd", Kind: "udp", Addr: "x"},
	}})
	var out bytes.Buffer
	if err := run(&out, string(plan)); err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	sc := bufio.NewScanner(&out)
	var last string
	for sc.Scan() {
		last = sc.Text()
		if last == Done {
			break
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got[r.ID] = r
	}
	if last != Done {
		t.Fatalf("output does not end with %s", Done)
	}
	for id, want := range map[string]string{"open": "open", "refused": "refused", "dns": "resolved", "odd": "error"} {
		if got[id].Verdict != want {
			t.Errorf("%s: verdict %q (%s), want %q", id, got[id].Verdict, got[id].Detail, want)
		}
	}
	if !strings.Contains(got["open"].Detail, Banner+" test 1") {
		t.Errorf("open flow's detail %q does not carry the banner", got["open"].Detail)
	}
	if got["refused"].Attempts != 2 {
		t.Errorf("refused flow tried %d times, want 2", got["refused"].Attempts)
	}
}

func TestRunRejectsBadPlans(t *testing.T) {
	for _, plan := range []string{"", "{", `{"timeout":"-1s"}`, `{"timeout":"soon"}`} {
		if err := run(&bytes.Buffer{}, plan); err == nil {
			t.Errorf("plan %q: no error", plan)
		}
	}
}

// TestVaultFlow: a Vault flow logs in with the token file and reads the
// path as a workload does, and reports keys and a digest, never a value;
// a refused login or read is Vault's answer, not a network verdict.
func TestVaultFlow(t *testing.T) {
	const secretValue = "s3cr3t-value-never-printed"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/auth/kubernetes-c/login":
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["jwt"] != "good-token" || body["role"] != "payments" {
				w.WriteHeader(http.StatusForbidden)
				_, _ = io.WriteString(w, `{"errors":["permission denied"]}`)
				return
			}
			_, _ = io.WriteString(w, `{"auth":{"client_token":"hvs.workload"}}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/kv-c/data/payments/db" && r.Header.Get("X-Vault-Token") == "hvs.workload":
			_, _ = io.WriteString(w, `{"data":{"data":{"password":"`+secretValue+`"}}}`)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	token := func(v string) string {
		p := filepath.Join(dir, v)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_CACERT", ca)
	t.Setenv("VAULT_TLS_SERVER_NAME", "example.com") // httptest's certificate names it, not the address
	t.Setenv("VAULT_AUTH_PATH", "auth/kubernetes-c")
	t.Setenv("VAULT_ROLE", "payments")
	t.Setenv("VAULT_KV_MOUNT", "kv-c")
	for _, tc := range []struct {
		name, token, path, want string
	}{
		{"reads its path", token("good-token"), "payments/db", "read"},
		{"another path", token("good-token"), "storefront/db", "read-denied"},
		{"token refused", token("other-token"), "payments/db", "login-denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := try(Flow{ID: "v", Kind: "vault", TokenFile: tc.token, Path: tc.path}, 2*time.Second)
			if r.Verdict != tc.want {
				t.Errorf("verdict %q (%s), want %s", r.Verdict, r.Detail, tc.want)
			}
			if strings.Contains(r.Detail, secretValue) {
				t.Errorf("the secret's value is in the result: %s", r.Detail)
			}
			if tc.want == "read" && !strings.Contains(r.Detail, "keys [password]") {
				t.Errorf("detail %q does not name the keys read", r.Detail)
			}
		})
	}
	t.Run("wrong CA", func(t *testing.T) {
		t.Setenv("VAULT_TLS_SERVER_NAME", "vault.example.org")
		if r := try(Flow{ID: "v", Kind: "vault", TokenFile: token("good-token"), Path: "payments/db"}, 2*time.Second); r.Verdict == "read" {
			t.Errorf("read through a certificate for another name: %s", r.Detail)
		}
	})
}
