//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// TestExternalVault runs the test example against "the operator's own
// Vault" (spec.vault.address): a separate, TLS, file-backed Vault the test
// starts, reached with a non-root token that has exactly the documented
// setup policy. It proves that a token lacking one permission gets a clear
// error; that with Vault stopped the API server still serves stored
// secrets (cached data key) while up fails naming Vault and leaves the
// cluster as it was; and that up converges once Vault is back.
func TestExternalVault(t *testing.T) {
	ctx := context.Background()
	// Started before the home so that its cleanup (down) runs while this
	// Vault still answers.
	vs := &vaultserver.Server{Dir: filepath.Join(t.TempDir(), "ext-vault"), Binary: localtest.VaultBinary(t)}
	root, err := vs.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vs.Destroy(context.Background()) })
	rc, err := root.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The blueprint: the test example pointed at this Vault.
	src, err := os.ReadFile(repoPath("blueprints", "examples", "test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), `address: ""`, `address: "`+root.Address+`"`, 1)
	bpFile := filepath.Join(t.TempDir(), "ext.yaml")
	if err := os.WriteFile(bpFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	bps, err := blueprints.Load(bpFile)
	if err != nil {
		t.Fatal(err)
	}
	names := vault.NamesFor(bps[0].Name(), bps[0].Spec)
	policy := vault.SetupPolicy(names)
	token := func(policyText string) string {
		if err := rc.Sys().PutPolicy("secprov-setup", policyText); err != nil {
			t.Fatal(err)
		}
		s, err := rc.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"secprov-setup"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return s.Auth.ClientToken
	}

	h := newHome(t)
	h.env = []string{"VAULT_CACERT=" + root.CAFile}

	t.Run("a token lacking a permission gets a clear error", func(t *testing.T) {
		// Without the right to enable the KV mount.
		weak := strings.Replace(policy, `path "sys/mounts/`+names.KVMount+`"`, `path "sys/mounts/not-`+names.KVMount+`"`, 1)
		if weak == policy {
			t.Fatal("setup policy has no KV mount rule to remove")
		}
		h.env = []string{"VAULT_CACERT=" + root.CAFile, "VAULT_TOKEN=" + token(weak)}
		r := h.exec("up", "-f", bpFile, "--no-verify")
		for _, want := range []string{"permission denied on sys/mounts/" + names.KVMount, "setup policy", root.Address} {
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("up with a token lacking sys/mounts/%s: want exit 1 and %q:\n%s", names.KVMount, want, r)
			}
		}
		if strings.Contains(r.stdout+r.stderr, strings.TrimPrefix(h.env[1], "VAULT_TOKEN=")) {
			t.Error("the token appears in secprov's output")
		}
	})

	h.env = []string{"VAULT_CACERT=" + root.CAFile, "VAULT_TOKEN=" + token(policy)}
	t.Run("the setup policy is enough: up converges and verify passes", func(t *testing.T) {
		u := h.up("-f", bpFile)
		if len(u.Clusters) != 1 || u.Clusters[0].Error != "" {
			t.Fatalf("up: %+v", u)
		}
		if r := h.exec("verify", "--all"); r.code != 0 {
			t.Errorf("verify:\n%s", r)
		}
	})

	dir := h.clusterDir(bps[0].Name())
	cs, _ := adminClient(t, paths.NewLayout(dir).AdminKubeconfig())
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "before-outage"},
		StringData: map[string]string{"v": "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiPid := func() int {
		rec, err := proc.ReadPidFile(paths.NewLayout(dir).PidFile(local.APIServer))
		if err != nil {
			t.Fatal(err)
		}
		return rec.Pid
	}
	pidBefore := apiPid()

	t.Run("Vault down: secrets still served, up fails naming Vault and changes nothing", func(t *testing.T) {
		if err := vs.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := cs.CoreV1().Secrets("default").Get(ctx, "before-outage", metav1.GetOptions{})
		if err != nil || string(s.Data["v"]) != "kept" {
			t.Errorf("stored secret with Vault down: %v %q", err, s.Data["v"])
		}
		r := h.exec("up", "-f", bpFile, "--no-verify")
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "vault "+root.Address) || !strings.Contains(r.stdout+r.stderr, "unreachable") {
			t.Errorf("up with Vault down: want exit 1 naming vault %s as unreachable:\n%s", root.Address, r)
		}
		if pid := apiPid(); pid != pidBefore || !alive(pid) {
			t.Errorf("API server pid %d -> %d (alive %v): a failed up must leave the running cluster alone", pidBefore, pid, alive(pid))
		}
	})

	t.Run("Vault back: up converges", func(t *testing.T) {
		if _, err := vs.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		u := h.up("-f", bpFile)
		if len(u.Clusters) != 1 || u.Clusters[0].Error != "" {
			t.Fatalf("up after Vault came back: %+v", u)
		}
		s, err := cs.CoreV1().Secrets("default").Get(ctx, "before-outage", metav1.GetOptions{})
		if err != nil || string(s.Data["v"]) != "kept" {
			t.Errorf("stored secret after the outage: %v %q", err, s.Data["v"])
		}
	})

	t.Run("down removes the cluster's Vault objects", func(t *testing.T) {
		h.must("down", "--all")
		if left := vaulttest.Leftovers(t, rc, names); len(left) > 0 {
			t.Errorf("left in Vault after down: %v", left)
		}
	})
}
