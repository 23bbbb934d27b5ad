package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

// namesOf are a cluster's names as defaulting derives them, with the
// payments namespace allowed to read payments/*.
func namesOf(cluster string) vault.Names {
	return vault.Names{
		Cluster: cluster, TransitMount: "transit-" + cluster, TransitKey: "kms-" + cluster,
		KVMount: "kv-" + cluster, AuthPath: "kubernetes-" + cluster,
		Namespaces: []v1alpha1.VaultNamespace{
			{Namespace: "payments", Paths: []string{"payments/*"}},
			{Namespace: "storefront", Paths: []string{"storefront/config"}},
		},
	}
}

// testCA is a throw-away CA certificate: Vault insists the Kubernetes CA
// is PEM of a certificate, and these tests never talk to the API server.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func rootClient(t *testing.T, d *vaulttest.Dev) *api.Client {
	t.Helper()
	c, err := d.Access().Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// asToken is a client of the same Vault acting as token.
func asToken(t *testing.T, root *api.Client, token string) *api.Client {
	t.Helper()
	c, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// mintToken creates a token with exactly policies (not even default).
func mintToken(t *testing.T, root *api.Client, policies ...string) string {
	t.Helper()
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: policies, NoDefaultPolicy: true, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

// cluster runs one cluster's whole setup through a Setup.
type cluster struct {
	n         vault.Names
	tokenFile string
	kube      vault.KubernetesAuthConfig
}

func newCluster(t *testing.T, name string) *cluster {
	return &cluster{n: namesOf(name), tokenFile: filepath.Join(t.TempDir(), "kms", "token"),
		kube: vault.KubernetesAuthConfig{Host: "https://127.0.0.1:6443", CACert: testCA(t), ReviewerJWT: "reviewer.jwt.placeholder"}}
}

func (c *cluster) ensure(ctx context.Context, s *vault.Setup, accessor string) (string, error) {
	if _, err := s.EnsureTransit(ctx, c.n.TransitMount, c.n.TransitKey); err != nil {
		return "", err
	}
	if err := s.EnsureKV(ctx, c.n.KVMount); err != nil {
		return "", err
	}
	if err := s.EnsureKubernetesAuth(ctx, c.n.AuthPath, c.kube); err != nil {
		return "", err
	}
	for _, ns := range c.n.Namespaces {
		if err := s.EnsureNamespaceRole(ctx, c.n, ns, vault.RoleOptions{}); err != nil {
			return "", err
		}
	}
	return s.EnsureKMSToken(ctx, c.n, vault.KMSTokenOptions{TokenFile: c.tokenFile, Accessor: accessor})
}

// read checks every object and reports what is not as Ensure left it.
func (c *cluster) read(ctx context.Context, s *vault.Setup, accessor string) ([]string, error) {
	var bad []string
	if _, ok, err := s.ReadTransit(ctx, c.n.TransitMount, c.n.TransitKey); err != nil {
		return nil, err
	} else if !ok {
		bad = append(bad, "transit key")
	}
	if ok, err := s.ReadKV(ctx, c.n.KVMount); err != nil {
		return nil, err
	} else if !ok {
		bad = append(bad, "kv mount")
	}
	if st, ok, err := s.ReadKubernetesAuth(ctx, c.n.AuthPath); err != nil {
		return nil, err
	} else if !ok || st.Host != c.kube.Host || st.CACert != c.kube.CACert || !st.ReviewerJWTSet {
		bad = append(bad, "kubernetes auth")
	}
	for _, ns := range c.n.Namespaces {
		if st, err := s.ReadNamespaceRole(ctx, c.n, ns, vault.RoleOptions{}); err != nil {
			return nil, err
		} else if !st.Current() {
			bad = append(bad, "namespace role "+ns.Namespace)
		}
	}
	st, err := s.ReadKMSToken(ctx, c.n, vault.KMSTokenOptions{TokenFile: c.tokenFile, Accessor: accessor})
	if err != nil {
		return nil, err
	}
	if st != (vault.KMSTokenState{PolicyCurrent: true, RoleCurrent: true, TokenLive: true, FileCurrent: true}) {
		bad = append(bad, "kms token")
	}
	return bad, nil
}

func (c *cluster) delete(ctx context.Context, s *vault.Setup, accessor string) error {
	if err := s.DeleteKMSToken(ctx, c.n, vault.KMSTokenOptions{TokenFile: c.tokenFile, Accessor: accessor}); err != nil {
		return err
	}
	for _, ns := range c.n.Namespaces {
		if err := s.DeleteNamespaceRole(ctx, c.n, ns.Namespace); err != nil {
			return err
		}
	}
	if err := s.DeleteKubernetesAuth(ctx, c.n.AuthPath); err != nil {
		return err
	}
	if err := s.DeleteKV(ctx, c.n.KVMount); err != nil {
		return err
	}
	return s.DeleteTransit(ctx, c.n.TransitMount, c.n.TransitKey)
}

func newSetup(t *testing.T, c *api.Client) *vault.Setup {
	return vault.NewSetupWithClient(c, nil)
}

func TestSetupIdempotentReadDelete(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	c := newCluster(t, "shop")

	start := time.Now()
	acc1, err := c.ensure(ctx, s, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first setup of one cluster: %v", time.Since(start))
	// Workload data written between runs must survive a second Ensure.
	if _, err := root.KVv2(c.n.KVMount).Put(ctx, "payments/db", map[string]any{"password": "p1"}); err != nil {
		t.Fatalf("write to a fresh kv-v2 mount right after EnsureKV: %v", err)
	}
	start = time.Now()
	acc2, err := c.ensure(ctx, s, acc1)
	if err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	t.Logf("second (no-op) setup: %v", time.Since(start))
	if acc2 != acc1 {
		t.Errorf("second ensure minted a new KMS token (%s, was %s)", acc2, acc1)
	}
	if k, _, _ := s.ReadTransit(ctx, c.n.TransitMount, c.n.TransitKey); k.LatestVersion != 1 || k.Type != vault.KMSKeyType || k.Exportable || k.DeletionAllowed {
		t.Errorf("transit key after two ensures = %+v, want version 1, %s, not exportable, not deletable", k, vault.KMSKeyType)
	}
	if sec, err := root.KVv2(c.n.KVMount).Get(ctx, "payments/db"); err != nil || sec.Data["password"] != "p1" {
		t.Errorf("secret after second ensure: %v, %v", sec, err)
	}
	if bad, err := c.read(ctx, s, acc2); err != nil || len(bad) > 0 {
		t.Errorf("read after ensure: drifted %v, err %v", bad, err)
	}
	fi, err := os.Stat(c.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %o, want 600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(c.tokenFile)); di.Mode().Perm() != 0o700 {
		t.Errorf("token dir mode %o, want 700", di.Mode().Perm())
	}
	ti, ok, err := s.LookupAccessor(ctx, acc2)
	if err != nil || !ok {
		t.Fatalf("lookup accessor: %v %v", ok, err)
	}
	// The period comes from the role (Vault reports it only for tokens
	// created with an explicit period): the TTL starts at one period.
	if !ti.Orphan || ti.TTL <= vault.DefaultKMSTokenPeriod-time.Minute || ti.TTL > vault.DefaultKMSTokenPeriod ||
		ti.Role != c.n.KMSTokenRole() || !slices.Contains(ti.Policies, c.n.KMSPolicy()) {
		t.Errorf("KMS token = %+v, want an orphan token of role %s with policy %s and a TTL of one period (%v)", ti, c.n.KMSTokenRole(), c.n.KMSPolicy(), vault.DefaultKMSTokenPeriod)
	}
	role, err := root.Logical().Read("auth/token/roles/" + c.n.KMSTokenRole())
	if err != nil || role == nil {
		t.Fatal(err)
	}
	if p, _ := role.Data["token_period"].(json.Number).Int64(); time.Duration(p)*time.Second != vault.DefaultKMSTokenPeriod || role.Data["orphan"] != true || role.Data["renewable"] != true {
		t.Errorf("token role = %v, want orphan, renewable, period %v", role.Data, vault.DefaultKMSTokenPeriod)
	}

	start = time.Now()
	if err := c.delete(ctx, s, acc2); err != nil {
		t.Fatal(err)
	}
	t.Logf("teardown: %v", time.Since(start))
	if err := c.delete(ctx, s, acc2); err != nil {
		t.Errorf("second delete (everything already gone): %v", err)
	}
	if left := vaulttest.Leftovers(t, root, c.n); len(left) > 0 {
		t.Errorf("left in Vault after delete: %v", left)
	}
	if _, err := os.Stat(c.tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file still there after delete: %v", err)
	}
	if _, ok, _ := s.LookupAccessor(ctx, acc2); ok {
		t.Error("KMS token still valid after delete")
	}
}

func TestDriftIsSeenAndRepaired(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	c := newCluster(t, "shop")
	acc, err := c.ensure(ctx, s, "")
	if err != nil {
		t.Fatal(err)
	}
	ns := c.n.Namespaces[0]
	tests := []struct {
		name   string
		breakf func()
		want   string
	}{
		{"transit key deleted", func() {
			d.MustWrite(t, c.n.TransitMount+"/keys/"+c.n.TransitKey+"/config", map[string]any{"deletion_allowed": true})
			if _, err := root.Logical().Delete(c.n.TransitMount + "/keys/" + c.n.TransitKey); err != nil {
				t.Fatal(err)
			}
		}, "transit key"},
		{"kv mount disabled", func() {
			if err := root.Sys().Unmount(c.n.KVMount); err != nil {
				t.Fatal(err)
			}
		}, "kv mount"},
		{"kubernetes host changed", func() {
			d.MustWrite(t, "auth/"+c.n.AuthPath+"/config", map[string]any{"kubernetes_host": "https://10.0.0.1", "kubernetes_ca_cert": c.kube.CACert})
		}, "kubernetes auth"},
		{"namespace policy widened", func() {
			if err := root.Sys().PutPolicy(c.n.NamespacePolicy(ns.Namespace), `path "`+c.n.KVMount+`/*" { capabilities = ["read"] }`); err != nil {
				t.Fatal(err)
			}
		}, "namespace role payments"},
		{"namespace role rebound", func() {
			d.MustWrite(t, "auth/"+c.n.AuthPath+"/role/payments", map[string]any{"bound_service_account_names": "*",
				"bound_service_account_namespaces": "payments,storefront", "token_policies": c.n.NamespacePolicy("payments")})
		}, "namespace role payments"},
		{"kms policy widened", func() {
			if err := root.Sys().PutPolicy(c.n.KMSPolicy(), `path "sys/*" { capabilities = ["read"] }`); err != nil {
				t.Fatal(err)
			}
		}, "kms token"},
		{"kms token revoked", func() {
			if err := root.Auth().Token().RevokeAccessor(acc); err != nil {
				t.Fatal(err)
			}
		}, "kms token"},
		{"kms token file deleted", func() {
			if err := os.Remove(c.tokenFile); err != nil {
				t.Fatal(err)
			}
		}, "kms token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breakf()
			bad, err := c.read(ctx, s, acc)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bad, []string{tt.want}) {
				t.Errorf("read after %s reports %v, want [%s]", tt.name, bad, tt.want)
			}
			prev := acc
			if acc, err = c.ensure(ctx, s, acc); err != nil {
				t.Fatal(err)
			}
			if bad, err := c.read(ctx, s, acc); err != nil || len(bad) > 0 {
				t.Errorf("after ensure still drifted: %v %v", bad, err)
			}
			if acc != prev {
				// A replaced token: the old one must be dead.
				if _, ok, _ := s.LookupAccessor(ctx, prev); ok {
					t.Errorf("old KMS token %s still valid after a new one was minted", prev)
				}
			}
		})
	}
}

func TestTwoClustersAreDisjoint(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	prod, test := newCluster(t, "shop-prod"), newCluster(t, "shop-test")
	accProd, err := prod.ensure(ctx, s, "")
	if err != nil {
		t.Fatal(err)
	}
	accTest, err := test.ensure(ctx, s, "")
	if err != nil {
		t.Fatal(err)
	}
	if accProd == accTest {
		t.Fatal("both clusters share one KMS token")
	}
	objects := func(n vault.Names) []string {
		o := []string{n.TransitMount, n.TransitMount + "/" + n.TransitKey, n.KVMount, n.AuthPath, n.KMSPolicy(), n.KMSTokenRole()}
		for _, ns := range n.Namespaces {
			o = append(o, n.NamespacePolicy(ns.Namespace), n.AuthPath+"/role/"+n.NamespaceRole(ns.Namespace))
		}
		return o
	}
	for _, o := range objects(prod.n) {
		if slices.Contains(objects(test.n), o) {
			t.Errorf("prod and test share %s", o)
		}
	}
	for _, c := range []*cluster{prod, test} {
		if _, err := root.KVv2(c.n.KVMount).Put(ctx, "payments/db", map[string]any{"cluster": c.n.Cluster}); err != nil {
			t.Fatal(err)
		}
	}
	// A payments workload of prod (the token its login would get) reads
	// prod's secret and nothing of test's.
	w := asToken(t, root, mintToken(t, root, prod.n.NamespacePolicy("payments")))
	if sec, err := w.KVv2(prod.n.KVMount).Get(ctx, "payments/db"); err != nil || sec.Data["cluster"] != "shop-prod" {
		t.Errorf("prod payments token reading prod's payments/db: %v %v", sec, err)
	}
	if _, err := w.KVv2(test.n.KVMount).Get(ctx, "payments/db"); !isForbidden(err) {
		t.Errorf("prod payments token reading test's payments/db: %v, want 403", err)
	}
	if _, err := w.KVv2(prod.n.KVMount).Put(ctx, "payments/db", map[string]any{"x": "y"}); !isForbidden(err) {
		t.Errorf("prod payments token writing: %v, want 403", err)
	}
	if _, err := w.KVv2(prod.n.KVMount).Get(ctx, "storefront/config"); !isForbidden(err) {
		t.Errorf("prod payments token reading storefront's secret: %v, want 403", err)
	}
	if l, err := w.Logical().List(prod.n.KVMount + "/metadata/payments/"); err != nil || l == nil {
		t.Errorf("prod payments token listing payments/: %v %v", l, err)
	}

	// Deleting prod leaves test whole.
	if err := prod.delete(ctx, s, accProd); err != nil {
		t.Fatal(err)
	}
	if left := vaulttest.Leftovers(t, root, prod.n); len(left) > 0 {
		t.Errorf("prod left %v", left)
	}
	if bad, err := test.read(ctx, s, accTest); err != nil || len(bad) > 0 {
		t.Errorf("test after deleting prod: %v %v", bad, err)
	}
}

func TestSharedTransitMountKeepsOtherKeys(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	for _, k := range []string{"kms-a", "kms-b"} {
		if _, err := s.EnsureTransit(ctx, "transit-shared", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTransit(ctx, "transit-shared", "kms-a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ReadTransit(ctx, "transit-shared", "kms-b"); err != nil || !ok {
		t.Fatalf("the other cluster's key is gone: %v %v", ok, err)
	}
	if err := s.DeleteTransit(ctx, "transit-shared", "kms-b"); err != nil {
		t.Fatal(err)
	}
	if m, _ := root.Sys().ListMounts(); m["transit-shared/"] != nil {
		t.Error("mount left after its last key was deleted")
	}
}

func TestEnsureRefusesForeignObjects(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	d.MustWrite(t, "sys/mounts/kv-one", map[string]any{"type": "kv", "options": map[string]any{"version": "1"}})
	d.MustWrite(t, "sys/mounts/transit-x", map[string]any{"type": "transit"})
	d.MustWrite(t, "transit-x/keys/exportable", map[string]any{"type": "aes256-gcm96", "exportable": true})
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"kv v1 mount", func() error { return s.EnsureKV(ctx, "kv-one") }, "option version"},
		{"transit mount of another type", func() error { _, err := s.EnsureTransit(ctx, "kv-one", "k"); return err }, `is a "kv" mount, not "transit"`},
		{"exportable key", func() error { _, err := s.EnsureTransit(ctx, "transit-x", "exportable"); return err }, "exportable=true"},
		{"kubernetes auth on the token mount", func() error {
			return s.EnsureKubernetesAuth(ctx, "token", vault.KubernetesAuthConfig{Host: "https://x", CACert: testCA(t), ReviewerJWT: "j"})
		}, `is a "token" mount`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

func TestKMSTokenIsNarrow(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	s := newSetup(t, root)
	ctx := context.Background()
	a, b := newCluster(t, "a"), newCluster(t, "b")
	for _, c := range []*cluster{a, b} {
		if _, err := c.ensure(ctx, s, ""); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := os.ReadFile(a.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	kms := asToken(t, root, strings.TrimSpace(string(tok)))
	plain := base64.StdEncoding.EncodeToString([]byte("a DEK"))
	sec, err := kms.Logical().Write(a.n.TransitMount+"/encrypt/"+a.n.TransitKey, map[string]any{"plaintext": plain})
	if err != nil {
		t.Fatalf("encrypt with its own key: %v", err)
	}
	ct := sec.Data["ciphertext"].(string)
	sec, err = kms.Logical().Write(a.n.TransitMount+"/decrypt/"+a.n.TransitKey, map[string]any{"ciphertext": ct})
	if err != nil || sec.Data["plaintext"] != plain {
		t.Fatalf("decrypt with its own key: %v %v", sec, err)
	}
	if sec, err := kms.Logical().Read(a.n.TransitMount + "/keys/" + a.n.TransitKey); err != nil || sec == nil {
		t.Errorf("read its key's metadata: %v %v", sec, err)
	}
	if _, err := kms.Auth().Token().RenewSelf(0); err != nil {
		t.Errorf("the plugin must be able to renew its periodic token: %v", err)
	}
	denied := []struct {
		name string
		do   func() error
	}{
		{"encrypt with the other cluster's key", func() error {
			_, err := kms.Logical().Write(b.n.TransitMount+"/encrypt/"+b.n.TransitKey, map[string]any{"plaintext": plain})
			return err
		}},
		{"another key in its own mount", func() error {
			_, err := kms.Logical().Write(a.n.TransitMount+"/encrypt/other", map[string]any{"plaintext": plain})
			return err
		}},
		{"rotate its key", func() error {
			_, err := kms.Logical().Write(a.n.TransitMount+"/keys/"+a.n.TransitKey+"/rotate", nil)
			return err
		}},
		{"export or reconfigure its key", func() error {
			_, err := kms.Logical().Write(a.n.TransitMount+"/keys/"+a.n.TransitKey+"/config", map[string]any{"deletion_allowed": true})
			return err
		}},
		{"read kv", func() error { _, err := kms.KVv2(a.n.KVMount).Get(ctx, "payments/db"); return err }},
		{"list sys/mounts", func() error { _, err := kms.Sys().ListMounts(); return err }},
		{"write a policy", func() error { return kms.Sys().PutPolicy("x", `path "*" { capabilities = ["sudo"] }`) }},
		{"mint a sibling token", func() error {
			_, err := kms.Auth().Token().CreateWithRole(&api.TokenCreateRequest{}, a.n.KMSTokenRole())
			return err
		}},
	}
	for _, tt := range denied {
		if err := tt.do(); !isForbidden(err) {
			t.Errorf("KMS token may %s: err = %v, want 403", tt.name, err)
		}
	}
}

func TestUnreachableVaultSaysWhatToDo(t *testing.T) {
	d := vaulttest.StartDev(t)
	s := newSetup(t, rootClient(t, d))
	d.Stop()
	_, err := s.EnsureTransit(context.Background(), "transit-x", "kms-x")
	if !errors.Is(err, vault.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	for _, want := range []string{d.Addr, "start it", "spec.vault.address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// capability is one capability of one stanza of the setup policy.
type capability struct{ path, cap string }

var stanzaRE = regexp.MustCompile(`(?m)^path "([^"]+)" \{\n  capabilities = \[([^\]]*)\]\n\}\n`)

// without returns policy with one capability removed (and its stanza,
// if that was the last).
func without(policy string, drop capability) string {
	return stanzaRE.ReplaceAllStringFunc(policy, func(st string) string {
		m := stanzaRE.FindStringSubmatch(st)
		if m[1] != drop.path {
			return st
		}
		var keep []string
		for _, c := range strings.Split(m[2], ", ") {
			if c != `"`+drop.cap+`"` {
				keep = append(keep, c)
			}
		}
		if len(keep) == 0 {
			return ""
		}
		return `path "` + m[1] + "\" {\n  capabilities = [" + strings.Join(keep, ", ") + "]\n}\n"
	})
}

// TestSetupPolicyIsEnoughAndMinimal runs the whole lifecycle (ensure twice,
// read, delete) with a token that has exactly SetupPolicy, then once per
// capability with that one capability removed: every run must fail with a
// 403 that names the stanza's path and the setup policy, so the policy is
// both sufficient and free of unused grants.
func TestSetupPolicyIsEnoughAndMinimal(t *testing.T) {
	d := vaulttest.StartDev(t)
	root := rootClient(t, d)
	rootSetup := newSetup(t, root)
	ctx := context.Background()
	c := newCluster(t, "shop-prod")
	policy := vault.SetupPolicy(c.n)

	lifecycle := func(policy string) error {
		if err := root.Sys().PutPolicy("secprov-setup-test", policy); err != nil {
			t.Fatal(err)
		}
		s := newSetup(t, asToken(t, root, mintToken(t, root, "secprov-setup-test")))
		acc, err := c.ensure(ctx, s, "")
		if err == nil {
			acc, err = c.ensure(ctx, s, acc)
		}
		if err == nil { // what secprov rotate-keys does with the same token
			_, err = s.RotateTransit(ctx, c.n.TransitMount, c.n.TransitKey)
		}
		if err == nil {
			var bad []string
			if bad, err = c.read(ctx, s, acc); err == nil && len(bad) > 0 {
				t.Fatalf("read after ensure reports drift: %v", bad)
			}
		}
		if err == nil {
			err = c.delete(ctx, s, acc)
		}
		// Whatever a failed run left, root removes it for the next one.
		if cerr := c.delete(ctx, rootSetup, acc); cerr != nil {
			t.Fatalf("cleanup as root: %v", cerr)
		}
		return err
	}

	start := time.Now()
	if err := lifecycle(policy); err != nil {
		t.Fatalf("lifecycle with exactly the setup policy: %v", err)
	}
	t.Logf("lifecycle with the setup policy: %v", time.Since(start))
	if left := vaulttest.Leftovers(t, root, c.n); len(left) > 0 {
		t.Fatalf("left after the lifecycle: %v", left)
	}

	var caps []capability
	for _, m := range stanzaRE.FindAllStringSubmatch(policy, -1) {
		for _, cp := range strings.Split(m[2], ", ") {
			caps = append(caps, capability{m[1], strings.Trim(cp, `"`)})
		}
	}
	if len(caps) < 20 {
		t.Fatalf("parsed only %d capabilities from the setup policy", len(caps))
	}
	for _, drop := range caps {
		t.Run(drop.path+"#"+drop.cap, func(t *testing.T) {
			err := lifecycle(without(policy, drop))
			if !errors.Is(err, vault.ErrPermissionDenied) {
				t.Fatalf("without %q on %s: err = %v, want permission denied (the capability is unused or the error unclear)", drop.cap, drop.path, err)
			}
			msg := err.Error()
			for _, want := range []string{d.Addr, "permission denied on " + strings.TrimSuffix(drop.path, "*"), vault.SetupPolicyHint} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}
