package engine_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// TestNoNetworkAccess routes every HTTP(S) request the engine and the
// provider could make through a recording proxy and runs a full
// preview/up/destroy: nothing may go out (no plugin download, no update
// check, no telemetry). The engine's debug log is searched as well.
func TestNoNetworkAccess(t *testing.T) {
	var mu sync.Mutex
	var requests []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.Host+r.URL.Path)
		mu.Unlock()
		http.Error(w, "this test machine is offline", http.StatusBadGateway)
	}))
	defer proxy.Close()
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(v, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	e, _ := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	var log bytes.Buffer
	opts := engine.Options{EngineLog: &log, EngineLogLevel: 9}
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f"), Content: "x"}})
	if _, err := e.Preview(ctx, "offline", prog, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Up(ctx, "offline", prog, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Destroy(ctx, "offline", opts); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) > 0 {
		t.Errorf("the engine tried to reach the network: %q", requests)
	}
	if log.Len() < 1000 {
		t.Fatalf("engine debug log is %d bytes; the log check is not working", log.Len())
	}
	low := strings.ToLower(log.String())
	for _, bad := range []string{"get.pulumi.com", "api.github.com", "api.pulumi.com", "downloading plugin", "installing plugin"} {
		if i := strings.Index(low, bad); i >= 0 {
			lo, hi := max(0, i-200), min(len(low), i+200)
			t.Errorf("engine log mentions %q:\n...%s...", bad, log.String()[lo:hi])
		}
	}
	t.Logf("engine debug log: %d bytes, no network use", log.Len())
	if path := os.Getenv("SECPROV_TEST_DUMP_ENGINE_LOG"); path != "" {
		_ = os.WriteFile(path, log.Bytes(), 0o600)
	}
}
