package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/provision/toolchain"
)

// fakeEtcd installs shell scripts answering etcd's version commands into
// the cache layout, as a hand-built cache would hold them.
func fakeEtcd(t *testing.T, cache string) string {
	t.Helper()
	dir := filepath.Join(cache, "tools", "etcd", "v3.7.3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"etcd": "etcd Version: 3.7.3", "etcdctl": "etcdctl version: 3.7.3"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// isolate points secprov at an empty cache and an empty PATH.
func isolate(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	t.Setenv("SECPROV_CACHE", cache)
	t.Setenv("PATH", t.TempDir())
	t.Setenv(toolchain.EnvNoDownload, "")
	t.Setenv(toolchain.EnvMirror, "")
	return cache
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return out.String(), errb.String(), err
}

func TestToolsList(t *testing.T) {
	cache := isolate(t)
	etcdDir := fakeEtcd(t, cache)

	stdout, _, err := runCLI(t, "tools", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list []toolchain.Status
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("tools list -o json: %v\n%s", err, stdout)
	}
	states := map[string]toolchain.Status{}
	for _, st := range list {
		states[st.Name] = st
	}
	if st := states["etcd"]; st.State != "installed" || st.Source != "cache" || st.Dir != etcdDir {
		t.Errorf("etcd: %+v", st)
	}
	for _, n := range []string{"kubernetes", "pulumi", "vault"} {
		if st := states[n]; st.State != "missing" || st.Problem == "" {
			t.Errorf("%s: %+v", n, st)
		}
	}

	stdout, _, err = runCLI(t, "tools", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "NAME") || !strings.Contains(stdout, "etcd        v3.7.3    installed  cache   "+etcdDir) {
		t.Errorf("tools list:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(etcdDir, ".secprov-tool.json")); !os.IsNotExist(err) {
		t.Error("tools list wrote into the cache")
	}
}

func TestToolsUsageErrors(t *testing.T) {
	isolate(t)
	tests := [][]string{
		{"tools", "install", "kubectl"},
		{"tools", "install", "--all", "etcd"},
		{"tools", "install", "--mirror", "http://plain.example", "etcd"},
		{"tools", "list", "-o", "yaml"},
		{"tools", "list", "extra"},
	}
	for _, args := range tests {
		_, _, err := runCLI(t, args...)
		if ExitCode(err) != ExitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, ExitCode(err), err, ExitUsage)
		}
	}
}

func TestToolsInstall(t *testing.T) {
	cache := isolate(t)
	fakeEtcd(t, cache)

	_, stderr, err := runCLI(t, "tools", "install", "etcd", "--no-download", "--no-build")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.HasPrefix(stderr, "✓ etcd v3.7.3 (cache) ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one ✓ line", stderr)
	}

	// Default set (everything up needs, Vault included): kubernetes,
	// pulumi and vault are missing, etcd is there.
	_, stderr, err = runCLI(t, "tools", "install", "--no-download", "--no-build")
	if err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "3 of 4 tools are not ready") {
		t.Errorf("err = %v (exit %d)", err, ExitCode(err))
	}
	for _, want := range []string{"✗ kubernetes v1.37.2: not available", "✓ etcd v3.7.3 (cache)", "✗ pulumi v3.259.0: not available", "✗ vault v1.17.6: not available", "download: disabled"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestToolProgressRendering(t *testing.T) {
	ins := &toolchain.Installed{Source: toolchain.SourceBuild}
	events := []toolchain.Event{
		{Kind: toolchain.EventDone, Tool: "etcd", Version: "v3.7.3", Installed: &toolchain.Installed{Source: toolchain.SourceCache}, Elapsed: 20 * time.Millisecond},
		{Kind: toolchain.EventStart, Tool: "kubernetes", Version: "v1.37.2", Phase: toolchain.PhaseBuild},
		{Kind: toolchain.EventStep, Tool: "kubernetes", Version: "v1.37.2", Phase: toolchain.PhaseBuild, Step: "go mod tidy [3/4]", Elapsed: 5 * time.Second},
		{Kind: toolchain.EventDone, Tool: "kubernetes", Version: "v1.37.2", Installed: ins, Elapsed: 4*time.Minute + 12*time.Second + 300*time.Millisecond},
		{Kind: toolchain.EventFailed, Tool: "vault", Version: "v1.17.6", Err: errors.New("vault v1.17.6: it broke")},
	}
	tests := []struct {
		name       string
		tty, quiet bool
		want       []string
		wantNot    []string
	}{
		{"log", false, false, []string{
			"✓ etcd v3.7.3 (cache) 0.0s\n",
			"• kubernetes v1.37.2: building from the Go module proxy (go mod tidy [3/4])… 5.0s\n",
			"✓ kubernetes v1.37.2 (build) 4m12s\n",
			"✗ vault v1.17.6: it broke\n",
		}, []string{"\r"}},
		{"terminal", true, false, []string{"\r\033[K• kubernetes v1.37.2: building", "\r\033[K✓ kubernetes v1.37.2 (build) 4m12s\n"}, nil},
		{"quiet hits", false, true, []string{"✓ kubernetes v1.37.2 (build)", "✗ vault"}, []string{"etcd"}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		p := newToolProgress(&buf, tt.tty, tt.quiet)
		for _, e := range events {
			p.Event(e)
		}
		p.stop()
		for _, w := range tt.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: output lacks %q:\n%q", tt.name, w, buf.String())
			}
		}
		for _, w := range tt.wantNot {
			if strings.Contains(buf.String(), w) {
				t.Errorf("%s: output has %q:\n%q", tt.name, w, buf.String())
			}
		}
	}
}

func TestResourceLabel(t *testing.T) {
	tests := []struct{ typ, name, want string }{
		{"secprov:local:Process", "kube-apiserver", "kube-apiserver"},
		{"secprov:local:Pki", "pki", "PKI and kubeconfigs"},
		{"secprov:vault:Transit", "vault-transit", "Vault transit key"},
		{"secprov:vault:KmsToken", "vault-kms-token", "Vault KMS token"},
		{"secprov:vault:NamespaceRole", "vault-role-payments", "Vault role payments"},
		{"secprov:other:Thing", "x", "thing x"},
	}
	for _, tt := range tests {
		if got := resourceLabel(tt.typ, tt.name); got != tt.want {
			t.Errorf("resourceLabel(%q, %q) = %q, want %q", tt.typ, tt.name, got, tt.want)
		}
	}
}
