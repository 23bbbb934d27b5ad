//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify/evidence"
	"secprov.dev/secprov/internal/sarif/sariftest"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/kms"
	"secprov.dev/secprov/vault/vaulttest"
)

func adminClient(t *testing.T, kubeconfig string) (kubernetes.Interface, *rest.Config) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, cfg
}

func readMeta(t *testing.T, dir string) *cluster.Record {
	t.Helper()
	m, err := cluster.ReadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func etcdGet(t *testing.T, dir, key string) []byte {
	t.Helper()
	b := pki.Paths(paths.NewLayout(dir).PKIDir())
	cert, err := tls.LoadX509KeyPair(b.APIServerEtcdClientCert, b.APIServerEtcdClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(b.EtcdCACert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", readMeta(t, dir).Ports.EtcdClient)},
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("etcd get %s: %v (%d kvs)", key, err, len(resp.Kvs))
	}
	return resp.Kvs[0].Value
}

// httpsGet makes a request to an API server with an optional client cert
// and returns the status code.
func httpsGet(t *testing.T, url, caFile, certFile, keyFile string) int {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		// Send the certificate even when the server's CA list does not
		// name its issuer: that is exactly the foreign-credential case.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := client.Get(url)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			t.Fatalf("server certificate not trusted: %v", err)
		}
		return -1 // handshake refused
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestLocalProdAndTest is the main job: up prod and test from the
// examples, then prove each hardening property against the live clusters.
func TestLocalProdAndTest(t *testing.T) {
	h := newHome(t)
	u := h.up("-f", "blueprints/examples")
	if len(u.Clusters) != 2 {
		t.Fatalf("up created %d clusters, want prod and test", len(u.Clusters))
	}
	prodDir, testDir := h.clusterDir("shop-prod"), h.clusterDir("shop-test")
	prodMeta, testMeta := readMeta(t, prodDir), readMeta(t, testDir)
	prodPKI, testPKI := pki.Paths(paths.NewLayout(prodDir).PKIDir()), pki.Paths(paths.NewLayout(testDir).PKIDir())
	cs, _ := adminClient(t, paths.NewLayout(prodDir).AdminKubeconfig())
	ctx := context.Background()

	t.Run("separate clusters", func(t *testing.T) {
		if prodMeta.Ports == testMeta.Ports || prodMeta.Ports.APIServer == testMeta.Ports.APIServer {
			t.Errorf("prod and test share ports: %+v %+v", prodMeta.Ports, testMeta.Ports)
		}
		a, _ := os.ReadFile(prodPKI.CACert)
		b, _ := os.ReadFile(testPKI.CACert)
		if string(a) == string(b) {
			t.Error("prod and test share a CA")
		}
		// vault-kms: no data key on disk, and each cluster its own Vault
		// transit key and KMS token.
		for _, d := range []string{prodDir, testDir} {
			if _, err := os.Stat(filepath.Join(d, "config", "encryption-keys.json")); !os.IsNotExist(err) {
				t.Errorf("%s has a local encryption key file (%v); vault-kms keeps none on disk", d, err)
			}
		}
		if prodMeta.Vault == nil || testMeta.Vault == nil {
			t.Fatalf("cluster.json names no Vault: %+v %+v", prodMeta.Vault, testMeta.Vault)
		}
		if prodMeta.Vault.KMSSocket == testMeta.Vault.KMSSocket {
			t.Errorf("prod and test share a KMS plugin socket %s", prodMeta.Vault.KMSSocket)
		}
		ta, _ := os.ReadFile(paths.NewLayout(prodDir).KMSToken())
		tb, _ := os.ReadFile(paths.NewLayout(testDir).KMSToken())
		if len(ta) == 0 || string(ta) == string(tb) {
			t.Error("prod and test share a KMS token (or have none)")
		}
	})

	t.Run("secrets encrypted in etcd", func(t *testing.T) {
		_, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-canary"}, StringData: map[string]string{"password": "e2e-top-secret-value"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw := etcdGet(t, prodDir, "/registry/secrets/default/e2e-canary")
		if want := "k8s:enc:kms:v2:vault-shop-prod:"; !strings.HasPrefix(string(raw), want) {
			t.Errorf("raw etcd value starts %q, want %s", raw[:min(len(raw), 32)], want)
		}
		st, err := kms.ParseStored(raw)
		if err != nil {
			t.Fatal(err)
		}
		if want := kms.KeyID("transit-shop-prod", "kms-shop-prod", 1); st.KeyID != want {
			t.Errorf("stored key ID %s, want %s", st.KeyID, want)
		}
		if strings.Contains(string(raw), "e2e-top-secret-value") {
			t.Error("secret value in plaintext in etcd")
		}
	})

	// rotate-keys: a new transit key version, the API server switches to
	// it, the stored secret is rewritten under it and still reads back.
	t.Run("rotate-keys re-encrypts stored secrets", func(t *testing.T) {
		var res struct {
			FromKeyID string `json:"fromKeyID"`
			ToKeyID   string `json:"toKeyID"`
			Rewritten int    `json:"rewritten"`
			Current   int    `json:"current"`
			Stale     int    `json:"stale"`
		}
		out := h.must("rotate-keys", "--cluster", "shop-prod", "-o", "json")
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("rotate-keys -o json: %v\n%s", err, out)
		}
		want := kms.KeyID("transit-shop-prod", "kms-shop-prod", 2)
		if res.ToKeyID != want || res.Rewritten < 1 || res.Stale != 0 {
			t.Errorf("rotate-keys: %s", out)
		}
		st, err := kms.ParseStored(etcdGet(t, prodDir, "/registry/secrets/default/e2e-canary"))
		if err != nil || st.KeyID != want {
			t.Errorf("after rotate-keys the canary is under %q (%v), want %s", st.KeyID, err, want)
		}
		s, err := cs.CoreV1().Secrets("default").Get(ctx, "e2e-canary", metav1.GetOptions{})
		if err != nil || string(s.Data["password"]) != "e2e-top-secret-value" {
			t.Errorf("canary after rotation: %v %q", err, s.Data["password"])
		}
		// The other environment's key did not move.
		tcs, _ := adminClient(t, paths.NewLayout(testDir).AdminKubeconfig())
		if _, err := tcs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "e2e-test-canary"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if st, err := kms.ParseStored(etcdGet(t, testDir, "/registry/secrets/default/e2e-test-canary")); err != nil || st.KeyID != kms.KeyID("transit-shop-test", "kms-shop-test", 1) {
			t.Errorf("test's secret under %q (%v), want test's own key v1", st.KeyID, err)
		}
	})

	t.Run("audit log has the canary and no secret data", func(t *testing.T) {
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "e2e-audit-canary", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("canary get: %v", err)
		}
		logPath := paths.NewLayout(prodDir).AuditLog()
		var data []byte
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			data, _ = os.ReadFile(logPath)
			if strings.Contains(string(data), "e2e-audit-canary") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(string(data), "e2e-audit-canary") {
			t.Fatalf("canary request not in %s", logPath)
		}
		if strings.Contains(string(data), "e2e-top-secret-value") || strings.Contains(string(data), "ZTJlLXRvcC1zZWNyZXQtdmFsdWU") {
			t.Error("secret data found in the audit log")
		}
		if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("audit log mode %v, %v", fi.Mode(), err)
		}
	})

	t.Run("anonymous request refused", func(t *testing.T) {
		if code := httpsGet(t, prodMeta.APIServerURL+"/version", prodPKI.CACert, "", ""); code != http.StatusUnauthorized {
			t.Errorf("anonymous GET /version = %d, want 401", code)
		}
	})

	t.Run("privileged pod rejected in restricted namespace", func(t *testing.T) {
		priv := true
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "e2e-priv"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}}}
		_, err := cs.CoreV1().Pods("payments").Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) {
			t.Errorf("privileged pod: err = %v; want it refused", err)
		}
		// A pod that is merely not restricted (runs as root, no seccomp
		// profile) is refused by Pod Security admission itself.
		plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "e2e-root"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		_, err = cs.CoreV1().Pods("payments").Create(ctx, plain, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
			t.Errorf("non-restricted pod: err = %v; want forbidden by PodSecurity restricted", err)
		}
	})

	t.Run("prod admin rejected by test", func(t *testing.T) {
		if code := httpsGet(t, testMeta.APIServerURL+"/api", testPKI.CACert, prodPKI.AdminCert, prodPKI.AdminKey); code != http.StatusUnauthorized && code != -1 {
			t.Errorf("prod admin on test = %d, want 401 or a refused handshake", code)
		}
		if code := httpsGet(t, testMeta.APIServerURL+"/api", testPKI.CACert, testPKI.AdminCert, testPKI.AdminKey); code != http.StatusOK {
			t.Errorf("test admin on test = %d, want 200", code)
		}
	})

	t.Run("admin is not system:masters", func(t *testing.T) {
		c, err := loadCert(prodPKI.AdminCert)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range c.Subject.Organization {
			if o == "system:masters" {
				t.Error("daily admin certificate is in system:masters")
			}
		}
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		again := h.up("-f", "blueprints/examples", "--no-verify")
		for _, c := range again.Clusters {
			for op, n := range c.Changes {
				if op != "same" && n > 0 {
					t.Errorf("%s: second up did %d %s", c.Name, n, op)
				}
			}
		}
	})

	t.Run("plan shows exactly the edited field", func(t *testing.T) {
		dir := t.TempDir()
		data, _ := os.ReadFile(repoPath("blueprints", "examples", "test.yaml"))
		edited := strings.Replace(string(data), "maxAgeDays: 30", "maxAgeDays: 45", 1)
		os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(edited), 0o644)
		out := h.must("plan", "-f", dir, "-o", "json")
		var plans []struct {
			Cluster   string `json:"cluster"`
			Resources []struct {
				Name    string `json:"Name"`
				Op      string `json:"Op"`
				Changes []struct{ Path string }
			} `json:"resources"`
		}
		if err := json.Unmarshal([]byte(out), &plans); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var changed []string
		for _, r := range plans[0].Resources {
			if r.Op == "same" {
				continue
			}
			for _, c := range r.Changes {
				changed = append(changed, r.Op+" "+r.Name+" "+c.Path)
			}
		}
		// The audit retention flag changes the API server's arguments and
		// the cluster's recorded spec; nothing else.
		want := map[string]bool{}
		for _, c := range changed {
			want[c] = true
		}
		if len(changed) == 0 || !containsPrefix(changed, "update kube-apiserver args[") || !containsPrefix(changed, "update shop-test spec") {
			t.Errorf("plan changes = %v; want the apiserver args and the cluster spec", changed)
		}
		for _, c := range changed {
			if !strings.HasPrefix(c, "update kube-apiserver args[") && !strings.HasPrefix(c, "update shop-test spec") {
				t.Errorf("unexpected change %q", c)
			}
		}
	})

	t.Run("dead component restarted with its data", func(t *testing.T) {
		l := paths.NewLayout(testDir)
		if err := proc.Stop(ctx, l.PidFile(local.APIServer), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		out := h.must("status", "-o", "json")
		if !strings.Contains(out, `"healthy": false`) {
			t.Errorf("status does not show the dead apiserver:\n%s", out)
		}
		u := h.up("-f", "blueprints/examples", "--only", "test", "--no-verify")
		ch := u.Clusters[0].Changes
		// The API server restarts; the controller manager and scheduler,
		// which exit when they lose it, restart after it.
		if ch["update"] < 1 || ch["create"]+ch["replace"]+ch["delete"] > 0 {
			t.Errorf("up after a crash: changes = %v, want updates only", ch)
		}
		if out := h.must("status", "-o", "json"); strings.Contains(out, `"healthy": false`) {
			t.Errorf("not healthy after up:\n%s", out)
		}
		tcs, _ := adminClient(t, l.AdminKubeconfig())
		if _, err := tcs.CoreV1().Namespaces().Get(ctx, "payments", metav1.GetOptions{}); err != nil {
			t.Errorf("data lost across the restart: %v", err)
		}
	})

	t.Run("up repairs drift", func(t *testing.T) {
		if err := cs.NetworkingV1().NetworkPolicies("payments").Delete(ctx, "secprov-default-deny", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(prodPKI.ServiceAccountKey, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := h.exec("verify", "--cluster", "shop-prod", "--check", "SP-NET-002|SP-FILE-001"); r.code != 1 {
			t.Fatalf("verify does not see the drift:\n%s", r)
		}
		// The same failures as SARIF for code scanning: schema-valid, at
		// the blueprint line of each control's field, fingerprinted.
		r := h.exec("verify", "--cluster", "shop-prod", "--check", "SP-NET-002|SP-FILE-001", "-o", "sarif", "-f", "blueprints/examples")
		if r.code != 1 {
			t.Fatalf("verify -o sarif:\n%s", r)
		}
		log := sariftest.Check(t, []byte(r.stdout))
		located := map[string]string{}
		for _, run := range log.Runs {
			for _, res := range run.Results {
				if len(res.Locations) > 0 && res.Locations[0].PhysicalLocation != nil {
					located[res.RuleID] = res.Locations[0].PhysicalLocation.ArtifactLocation.URI
				}
			}
		}
		if !strings.HasSuffix(located["SP-NET-002"], "blueprints/examples/prod.yaml") || located["SP-FILE-001"] == "" {
			t.Errorf("verify SARIF results are not located at prod.yaml: %v\n%s", located, r.stdout)
		}
		u := h.up("-f", "blueprints/examples", "--only", "prod")
		if u.Clusters[0].Changes["update"] != 2 {
			t.Errorf("up repaired %v, want the PKI modes and the bootstrap objects updated", u.Clusters[0].Changes)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, "secprov-default-deny", metav1.GetOptions{}); err != nil {
			t.Errorf("default deny not restored: %v", err)
		}
		if fi, _ := os.Stat(prodPKI.ServiceAccountKey); fi.Mode().Perm() != 0o600 {
			t.Errorf("sa.key mode %v after up", fi.Mode().Perm())
		}
	})

	t.Run("verify passes on both", func(t *testing.T) {
		r := h.exec("verify", "--all", "-o", "json")
		if r.code != 0 {
			t.Errorf("verify --all failed:\n%s", r)
		}
	})

	// Signed evidence: each environment's run signed with its own Vault
	// Transit key, checked by secprov and exported for auditors.
	t.Run("signed evidence", func(t *testing.T) {
		dir := t.TempDir()
		env := map[string]string{"shop-prod": filepath.Join(dir, "shop-prod.dsse.json"), "shop-test": filepath.Join(dir, "shop-test.dsse.json")}
		// The overhead of signing: plain and attested runs alternate (ABAB…),
		// medians compared (BENCHMARKS.md quotes this line).
		var plain, attested []time.Duration
		for range 3 {
			start := time.Now()
			if r := h.exec("verify", "--cluster", "shop-prod"); r.code != 0 {
				t.Fatalf("verify:\n%s", r)
			}
			plain = append(plain, time.Since(start))
			start = time.Now()
			if r := h.exec("verify", "--cluster", "shop-prod", "-f", "blueprints/examples", "--attest", env["shop-prod"]); r.code != 0 {
				t.Fatalf("verify --attest:\n%s", r)
			}
			attested = append(attested, time.Since(start))
		}
		slices.Sort(plain)
		slices.Sort(attested)
		t.Logf("verify --attest %s vs verify %s on shop-prod (medians of 3, alternating): %.2fx", attested[1].Round(time.Millisecond), plain[1].Round(time.Millisecond), float64(attested[1])/float64(plain[1]))
		if r := h.exec("verify", "--cluster", "shop-test", "-f", "blueprints/examples", "--attest", env["shop-test"]); r.code != 0 {
			t.Fatalf("verify --attest (test):\n%s", r)
		}
		for name, f := range env {
			r := h.exec("evidence", "verify", f, "--vault", "--blueprints", "blueprints/examples")
			if r.code != 0 || !strings.Contains(r.stdout, "holds") || !strings.Contains(r.stdout, "cluster    "+name) {
				t.Errorf("evidence verify %s:\n%s", name, r)
			}
		}
		// The exported public keys check it offline, as an auditor would.
		keys := h.exec("evidence", "keys", "-o", "pem")
		if keys.code != 0 || !strings.Contains(keys.stdout, "PUBLIC KEY") {
			t.Fatalf("evidence keys:\n%s", keys)
		}
		pem := filepath.Join(dir, "keys.pem")
		if err := os.WriteFile(pem, []byte(keys.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := h.exec("evidence", "verify", env["shop-prod"], "--key", pem); r.code != 0 {
			t.Errorf("evidence verify with the exported keys:\n%s", r)
		}
		// And any DSSE implementation given those keys accepts the real
		// envelopes: the library's own verifier, none of secprov's code.
		for name, f := range env {
			if !dsseAccepts(t, f, []byte(keys.stdout)) {
				t.Errorf("the DSSE library's verifier accepts %s's envelope with none of the exported keys", name)
			}
		}
		// Tampering: a blueprint edited by one byte, the envelope edited.
		bps := filepath.Join(dir, "blueprints")
		must(t, exec.Command("cp", "-r", repoPath("blueprints", "examples"), bps))
		b, err := os.ReadFile(filepath.Join(bps, "prod.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bps, "prod.yaml"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := h.exec("evidence", "verify", env["shop-prod"], "--vault", "--blueprints", bps); r.code != 1 || !strings.Contains(r.stderr+r.stdout, "prod.yaml") {
			t.Errorf("evidence verify accepts a blueprint edited by one byte:\n%s", r)
		}
		raw, err := os.ReadFile(env["shop-prod"])
		if err != nil {
			t.Fatal(err)
		}
		tampered := filepath.Join(dir, "tampered.json")
		i := bytes.Index(raw, []byte(`"payload":"`)) + len(`"payload":"`) + 40
		raw[i] ^= 1
		if err := os.WriteFile(tampered, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := h.exec("evidence", "verify", tampered, "--vault"); r.code != 1 {
			t.Errorf("evidence verify accepts an edited envelope:\n%s", r)
		}
		// Exports: OSCAL with what the model requires, and the ClusterReport
		// stored in the cluster for policy dashboards.
		oscal := h.exec("evidence", "export", env["shop-prod"], "--vault", "--format", "oscal")
		if oscal.code != 0 {
			t.Fatalf("evidence export oscal:\n%s", oscal)
		}
		if err := evidence.CheckOSCAL([]byte(oscal.stdout)); err != nil {
			t.Errorf("OSCAL export: %v", err)
		}
		if r := h.exec("evidence", "export", env["shop-prod"], "--vault", "--format", "policyreport", "--apply"); r.code != 0 {
			t.Fatalf("evidence export policyreport --apply:\n%s", r)
		}
		_, cfg := adminClient(t, paths.NewLayout(prodDir).AdminKubeconfig())
		got, err := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "openreports.io", Version: "v1alpha1", Resource: "clusterreports"}).
			Get(ctx, "secprov-verify-shop-prod", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the ClusterReport is not in the cluster: %v", err)
		}
		digest := evidence.EnvelopeDigest(func() []byte { b, _ := os.ReadFile(env["shop-prod"]); return b }())
		if got.GetAnnotations()[evidence.EnvelopeDigestKey] != digest {
			t.Errorf("ClusterReport names envelope %q, want %s", got.GetAnnotations()[evidence.EnvelopeDigestKey], digest)
		}
		if pass, _, _ := unstructured.NestedInt64(got.Object, "summary", "pass"); pass == 0 {
			t.Errorf("ClusterReport summary counts no pass: %v", got.Object["summary"])
		}
		// A rotated signing key: new evidence is signed with version 2, and
		// the evidence signed before still verifies with version 1.
		if r := h.exec("rotate-keys", "--cluster", "shop-prod", "--evidence-key"); r.code != 0 || !strings.Contains(r.stdout, "now at version 2") {
			t.Fatalf("rotate-keys --evidence-key:\n%s", r)
		}
		after := filepath.Join(dir, "after.dsse.json")
		if r := h.exec("verify", "--cluster", "shop-prod", "-f", "blueprints/examples", "--attest", after); r.code != 0 {
			t.Fatalf("verify --attest after the rotation:\n%s", r)
		}
		for f, version := range map[string]string{env["shop-prod"]: ":v1", after: ":v2"} {
			if r := h.exec("evidence", "verify", f, "--vault"); r.code != 0 || !strings.Contains(r.stdout, version) {
				t.Errorf("evidence verify %s after the rotation (want signed by %s):\n%s", filepath.Base(f), version, r)
			}
		}
	})

	t.Run("down leaves nothing behind", func(t *testing.T) {
		var pids []int
		for _, d := range []string{prodDir, testDir} {
			for _, c := range append([]string{local.KMSPlugin}, local.Components...) {
				if rec, err := proc.ReadPidFile(paths.NewLayout(d).PidFile(c)); err == nil {
					pids = append(pids, rec.Pid)
				}
			}
		}
		ports := []int{prodMeta.Ports.APIServer, prodMeta.Ports.EtcdClient, testMeta.Ports.APIServer, testMeta.Ports.EtcdClient}
		h.must("down", "--cluster", "shop-prod", "--cluster", "shop-test")
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("process %d still running after down", pid)
			}
		}
		for _, p := range ports {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d still open after down", p)
			}
		}
		for _, d := range []string{prodDir, testDir} {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("%s still exists after down (%v)", d, err)
			}
		}
		if out := h.must("status"); !strings.Contains(out, "no clusters") {
			t.Errorf("status after down:\n%s", out)
		}
		// down removed the clusters' Vault objects, then stopped the idle
		// local Vault; start it again to look.
		vs := &vaultserver.Server{Dir: vaultserver.DirIn(h.dir), Binary: localtest.VaultBinary(t)}
		if st, _ := vs.Status(ctx); st.Running {
			t.Error("the local Vault still runs after the last cluster went down")
		}
		va, err := vs.Ensure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer vs.Stop(ctx)
		vc, err := va.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"prod.yaml", "test.yaml"} {
			bps, err := blueprints.Load(repoPath("blueprints", "examples", f))
			if err != nil {
				t.Fatal(err)
			}
			if left := vaulttest.Leftovers(t, vc, vault.NamesFor(bps[0].Name(), bps[0].Spec)); len(left) > 0 {
				t.Errorf("left in Vault after down: %v", left)
			}
		}
	})
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func loadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parsePEMCerts(data)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("no certificate in %s: %v", path, err)
	}
	return certs[0], nil
}

// TestBlueprintErrorCreatesNothing: a broken blueprint stops up before any
// state or process exists.
func TestBlueprintErrorCreatesNothing(t *testing.T) {
	h := newHome(t)
	dir := t.TempDir()
	data, _ := os.ReadFile(repoPath("blueprints", "examples", "prod.yaml"))
	os.WriteFile(filepath.Join(dir, "prod.yaml"), []byte(strings.Replace(string(data), "cni: cilium", "cni: cilium\n    cnii: x", 1)), 0o644)
	r := h.exec("up", "-f", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "prod.yaml:") || !strings.Contains(r.stderr, `unknown field "cnii"`) {
		t.Fatalf("up with a bad blueprint:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "clusters")); !os.IsNotExist(err) {
		t.Errorf("a cluster directory was created: %v", err)
	}
	for _, args := range [][]string{{"down", "--cluster", "nope"}, {"verify", "--cluster", "nope"}, {"kubeconfig", "--cluster", "nope"}} {
		if r := h.exec(args...); r.code != 2 || !strings.Contains(r.stderr, `no cluster "nope"`) {
			t.Errorf("secprov %s on an unknown cluster:\n%s", strings.Join(args, " "), r)
		}
	}
}

// TestKilledUpConverges kills `up` (and its engine and provider) while
// the control plane starts. The next up reports the dead run's lock and
// changes nothing; `state unlock` clears it; up then converges.
func TestKilledUpConverges(t *testing.T) {
	h := newHome(t)
	ctx := context.Background()
	c := h.cmd(ctx, "up", "-f", "blueprints/examples/test.yaml", "--no-verify")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	etcdPid := paths.NewLayout(h.clusterDir("shop-test")).PidFile(local.Etcd)
	deadline := time.Now().Add(3 * time.Minute)
	for !proc.Alive(etcdPid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !proc.Alive(etcdPid) {
		killGroup(c)
		t.Fatal("etcd never started")
	}
	killGroup(c) // mid-flight: etcd up, the API server starting
	c.Wait()

	r := h.exec("up", "-f", "blueprints/examples/test.yaml", "--no-verify")
	t.Logf("up after the kill:\n%s", r)
	for _, want := range []string{"locked by another run", "no longer running", "secprov state unlock --cluster shop-test"} {
		if r.code == 0 || !strings.Contains(r.stderr+r.stdout, want) {
			t.Errorf("up with the killed run's lock left: exit %d, output lacks %q", r.code, want)
		}
	}
	r = h.exec("state", "unlock", "--cluster", "shop-test")
	if r.code != 0 || !strings.Contains(r.stdout, "removed the lock of shop-test") {
		t.Fatalf("state unlock:\n%s", r)
	}
	t.Logf("state unlock:\n%s", r.stdout)
	if r := h.exec("state", "unlock", "--cluster", "shop-test"); r.code != 0 || !strings.Contains(r.stdout, "is not locked") {
		t.Errorf("a second state unlock:\n%s", r)
	}

	u := h.up("-f", "blueprints/examples/test.yaml")
	if u.Clusters[0].Error != "" {
		t.Fatalf("rerun failed: %s", u.Clusters[0].Error)
	}
	again := h.up("-f", "blueprints/examples/test.yaml", "--no-verify")
	for op, n := range again.Clusters[0].Changes {
		if op != "same" && n > 0 {
			t.Errorf("after convergence, up still does %d %s", n, op)
		}
	}
}

// dsseAccepts verifies the envelope in file with go-securesystemslib's DSSE
// verifier and each ECDSA public key of keysPEM (keyed by the PEM block's
// Secprov-Key-Id header, as the envelope names its signer).
func dsseAccepts(t *testing.T, file string, keysPEM []byte) bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var e dsse.Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	for rest := keysPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return false
		}
		one := pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: blk.Bytes})
		sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(&signerverifier.SSLibKey{
			KeyID: blk.Headers["Secprov-Key-Id"], KeyType: signerverifier.ECDSAKeyType, Scheme: signerverifier.ECDSAKeyScheme,
			KeyVal: signerverifier.KeyVal{Public: string(one)}})
		if err != nil {
			continue // another key type
		}
		ev, err := dsse.NewEnvelopeVerifier(sv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ev.Verify(context.Background(), &e); err == nil {
			return true
		}
	}
}
