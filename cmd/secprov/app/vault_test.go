package app

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault/vaulttest"
)

// vaultStatus runs `secprov vault status -o json` and decodes it.
func vaultStatus(t *testing.T) vaultserver.Status {
	t.Helper()
	out, errOut, code := run(t, "vault", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("vault status: exit %d: %s", code, errOut)
	}
	var st vaultserver.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("vault status -o json: %v\n%s", err, out)
	}
	return st
}

func TestVaultCommandsWithoutServer(t *testing.T) {
	home := t.TempDir()
	t.Setenv("SECPROV_HOME", home)
	dir := vaultserver.DirIn(home)

	if st := vaultStatus(t); st.Running || st.Dir != dir || st.Address != "" {
		t.Errorf("status of a never-started Vault: %+v", st)
	}
	out, _, code := run(t, "vault", "status")
	if code != 0 || !strings.Contains(out, "not running") || !strings.Contains(out, dir) {
		t.Errorf("vault status: exit %d:\n%s", code, out)
	}
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{args: []string{"vault", "stop"}, code: 0, inStderr: "not running"},
		{args: []string{"vault", "reset"}, code: ExitUsage, inStderr: "--yes"},
		{args: []string{"vault", "reset", "--yes"}, code: 0, inStderr: "no local Vault"},
		{args: []string{"vault", "status", "-o", "yaml"}, code: ExitUsage, inStderr: "unknown output format"},
		{args: []string{"vault", "stop", "extra"}, code: ExitUsage, inStderr: "unknown command"},
	}
	for _, tt := range tests {
		_, errOut, code := run(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.inStderr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.inStderr)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command created %s: %v", dir, err)
	}
}

func TestVaultCommandsLive(t *testing.T) {
	bin := vaulttest.Binary(t)
	home := t.TempDir()
	t.Setenv("SECPROV_HOME", home)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v := &vaultserver.Server{Dir: vaultserver.DirIn(home), Binary: bin}
	t.Cleanup(func() {
		if err := errors.Join(v.Stop(context.Background()), v.Destroy(context.Background())); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	a, err := v.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}

	st := vaultStatus(t)
	if !st.Running || st.Pid == 0 || !st.Initialized || st.Sealed || st.Address != a.Address || st.Version == "" {
		t.Errorf("status of a running Vault: %+v", st)
	}
	out, _, _ := run(t, "vault", "status")
	if !strings.Contains(out, "✓ running (pid") || !strings.Contains(out, "initialized, unsealed, v"+st.Version) || !strings.Contains(out, a.Address) {
		t.Errorf("vault status:\n%s", out)
	}

	// reset without --yes changes nothing.
	if _, _, code := run(t, "vault", "reset"); code != ExitUsage {
		t.Errorf("reset without --yes: exit %d", code)
	}
	if !vaultStatus(t).Running {
		t.Fatal("reset without --yes stopped the Vault")
	}

	if _, errOut, code := run(t, "vault", "stop"); code != 0 || !strings.Contains(errOut, "stopped") {
		t.Errorf("vault stop: exit %d: %s", code, errOut)
	}
	if st := vaultStatus(t); st.Running {
		t.Errorf("running after vault stop: %+v", st)
	}
	if _, err := os.Stat(v.Access().TokenFile); err != nil {
		t.Errorf("vault stop removed data: %v", err)
	}

	if _, err := v.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	pid := vaultStatus(t).Pid
	if _, errOut, code := run(t, "vault", "reset", "--yes"); code != 0 || !strings.Contains(errOut, "deleted") {
		t.Errorf("vault reset --yes: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(v.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s remains after reset: %v", v.Dir, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		if stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(stat), ") Z ") {
			t.Errorf("vault pid %d still runs after reset", pid)
		}
	}
}
