package vaultres_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/vaulttest"
)

func TestMain(m *testing.M) {
	reg, err := provision.PluginRegistry(providers.Registry())
	if err != nil {
		panic(err)
	}
	enginetest.ServeIfPlugin(reg)
	os.Exit(m.Run())
}

// localCluster brings up one real local cluster (etcd, kube-apiserver,
// controller manager, scheduler, bootstrap objects) through the engine and
// returns the engine, the admin kubeconfig and a client; it is destroyed
// when the test ends.
func localCluster(t *testing.T, ctx context.Context) (eng *engine.Engine, stateDir, kubeconfig string, cfg *rest.Config) {
	t.Helper()
	bins := localtest.Binaries(t)
	vaulttest.Binary(t) // skip before spending seconds on a cluster
	eng, stateDir = enginetest.NewEngine(t, slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	bps, err := blueprints.Load("../../blueprints/examples/test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// This test declares the Vault objects itself: the cluster gets no
	// Vault of its own (secretbox, no reviewer in its bootstrap objects).
	off := false
	bps[0].Spec.EncryptionAtRest.Provider = v1alpha1.EncryptionSecretbox
	bps[0].Spec.Vault.Enabled = &off
	c := &local.Cluster{Blueprint: bps[0].Blueprint, Dir: filepath.Join(paths.ClustersDir(stateDir), bps[0].Name()), Binaries: bins}
	prog, err := c.Program()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := eng.Up(ctx, bps[0].Name(), prog, engine.Options{}); err != nil {
		t.Fatalf("cluster up: %v", err)
	}
	t.Logf("local cluster up: %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if _, err := eng.Destroy(context.Background(), bps[0].Name(), engine.Options{}); err != nil {
			t.Errorf("cluster destroy: %v", err)
		}
	})
	kubeconfig = paths.NewLayout(c.Dir).AdminKubeconfig()
	if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		t.Fatal(err)
	}
	return eng, stateDir, kubeconfig, cfg
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// createReviewer creates the token reviewer the cluster bootstrap will
// create: a service account bound to system:auth-delegator.
func createReviewer(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	create := func(what string, err error) {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	_, err := cs.CoreV1().ServiceAccounts(vault.ReviewerNamespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: vault.ReviewerServiceAccount, Namespace: vault.ReviewerNamespace}}, metav1.CreateOptions{})
	create("reviewer service account", err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: vault.ReviewerServiceAccount + "-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: vault.ReviewerServiceAccount, Namespace: vault.ReviewerNamespace}},
	}, metav1.CreateOptions{})
	create("auth-delegator binding", err)
}

// saToken creates service account name in namespace and requests a
// short-lived token for it, as a workload's projected token would be.
func saToken(t *testing.T, ctx context.Context, cs kubernetes.Interface, namespace, name string) string {
	t.Helper()
	_, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	exp := int64(600)
	var tr *authenticationv1.TokenRequest
	// The service-account admission needs the account in its cache.
	for i := 0; ; i++ {
		tr, err = cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("token request for %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

func login(root *api.Client, authPath, role, jwt string) (*api.Client, error) {
	sec, err := root.Logical().Write("auth/"+authPath+"/login", map[string]any{"role": role, "jwt": jwt})
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, errors.New("login returned no token")
	}
	c, err := root.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(sec.Auth.ClientToken)
	return c, nil
}

func asToken(t *testing.T, root *api.Client, token string) *api.Client {
	t.Helper()
	c, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// testCA is a throw-away CA certificate for a drifted Vault config.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

func namesOf(cluster string) vault.Names {
	return vault.Names{
		Cluster: cluster, TransitMount: "transit-" + cluster, TransitKey: "kms-" + cluster,
		KVMount: "kv-" + cluster, AuthPath: "kubernetes-" + cluster,
		Namespaces: []v1alpha1.VaultNamespace{
			{Namespace: "payments", Paths: []string{"payments/*"}},
			{Namespace: "storefront", Paths: []string{"storefront/*"}},
		},
	}
}

// TestVaultOnALocalCluster runs Vault's Kubernetes auth against a real
// kube-apiserver: workloads of a listed namespace log in and read their
// secrets only; then the vaultres resource types go through the real engine.
func TestVaultOnALocalCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	eng, stateDir, kubeconfig, cfg := localCluster(t, ctx)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	createReviewer(t, ctx, cs)

	t.Run("kubernetes auth login", func(t *testing.T) {
		testLogin(t, ctx, cs, cfg)
	})
	t.Run("resource types through the engine", func(t *testing.T) {
		testResourceTypes(t, ctx, eng, stateDir, kubeconfig, cs)
	})
	t.Logf("whole test before teardown: %v", time.Since(start).Round(time.Millisecond))
}

func testLogin(t *testing.T, ctx context.Context, cs kubernetes.Interface, cfg *rest.Config) {
	start := time.Now()
	d := vaulttest.StartDev(t)
	root, err := d.Access().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := vault.NewSetupWithClient(root, nil)
	n := namesOf("shop")

	// The reviewer's JWT as KubernetesAuth gets it: from the TokenRequest
	// API, issued at once.
	jwt := saToken(t, ctx, cs, vault.ReviewerNamespace, vault.ReviewerServiceAccount)
	t.Logf("reviewer token issued after %v", time.Since(start).Round(time.Millisecond))
	if err := s.EnsureKubernetesAuth(ctx, n.AuthPath, vault.KubernetesAuthConfig{Host: cfg.Host, CACert: string(cfg.CAData), ReviewerJWT: jwt}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureKV(ctx, n.KVMount); err != nil {
		t.Fatal(err)
	}
	for _, ns := range n.Namespaces {
		if err := s.EnsureNamespaceRole(ctx, n, ns, vault.RoleOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.KVv2(n.KVMount).Put(ctx, ns.Namespace+"/db", map[string]any{"owner": ns.Namespace}); err != nil {
			t.Fatal(err)
		}
	}

	app := saToken(t, ctx, cs, "payments", "app")
	w, err := login(root, n.AuthPath, "payments", app)
	if err != nil {
		t.Fatalf("payments workload login: %v", err)
	}
	if sec, err := w.KVv2(n.KVMount).Get(ctx, "payments/db"); err != nil || sec.Data["owner"] != "payments" {
		t.Errorf("payments workload reading payments/db: %v %v", sec, err)
	}
	if _, err := w.KVv2(n.KVMount).Get(ctx, "storefront/db"); !isForbidden(err) {
		t.Errorf("payments workload reading storefront/db: %v, want 403", err)
	}
	if _, err := w.KVv2(n.KVMount).Put(ctx, "payments/db", map[string]any{"owner": "me"}); !isForbidden(err) {
		t.Errorf("payments workload writing payments/db: %v, want 403", err)
	}
	self, err := w.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := self.TokenTTL(); ttl > vault.DefaultNamespaceTokenTTL || ttl < vault.DefaultNamespaceTokenTTL-time.Minute {
		t.Errorf("workload token TTL %v, want %v", ttl, vault.DefaultNamespaceTokenTTL)
	}

	denied := []struct{ name, namespace, role string }{
		{"unlisted namespace with a listed role", "default", "payments"},
		{"unlisted namespace with its own name as role", "default", "default"},
		{"listed namespace with another namespace's role", "payments", "storefront"},
		{"the token reviewer itself", vault.ReviewerNamespace, "payments"},
	}
	for _, tt := range denied {
		var jwt string
		if tt.namespace == vault.ReviewerNamespace {
			jwt = saToken(t, ctx, cs, tt.namespace, vault.ReviewerServiceAccount)
		} else {
			jwt = saToken(t, ctx, cs, tt.namespace, "app")
		}
		if _, err := login(root, n.AuthPath, tt.role, jwt); err == nil {
			t.Errorf("%s: logged in as role %s, want refused", tt.name, tt.role)
		}
	}
	// A token Kubernetes never issued is refused by the TokenReview.
	forged := strings.Join(strings.Split(app, ".")[:2], ".") + ".c2lnbmF0dXJl"
	if _, err := login(root, n.AuthPath, "payments", forged); err == nil {
		t.Error("login with a forged token succeeded")
	}
	t.Logf("kubernetes auth login checks: %v", time.Since(start).Round(time.Millisecond))
}

// engineFiles returns every file of the engine below stateDir (backend,
// workspaces, Pulumi home), concatenated; the clusters' own directories
// (PKI, etcd data) are left out.
// jwtPattern matches a JWT: base64url header and claims, both JSON
// objects ("eyJ" is the encoding of `{"`), and a signature.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+`)

// stateOf returns the recorded outputs of the stack's one resource of
// type typ.
func stateOf(t *testing.T, eng *engine.Engine, stack, typ string) map[string]any {
	t.Helper()
	st, err := eng.State(context.Background(), stack)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Resources {
		if r.Type == typ {
			return r.Outputs
		}
	}
	t.Fatalf("no %s in the state of %s", typ, stack)
	return nil
}

func engineFiles(t *testing.T, stateDir string) string {
	var b strings.Builder
	err := filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == filepath.Join(stateDir, "clusters") {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func find(rs []engine.ResourceChange, typ string) (engine.ResourceChange, bool) {
	for _, r := range rs {
		if r.Type == typ {
			return r, true
		}
	}
	return engine.ResourceChange{}, false
}

func testResourceTypes(t *testing.T, ctx context.Context, eng *engine.Engine, stateDir, kubeconfig string, cs kubernetes.Interface) {
	d := vaulttest.StartDev(t)
	root, err := d.Access().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := vault.NewSetupWithClient(root, nil)
	n := namesOf("shop")
	tokenFile := filepath.Join(t.TempDir(), "kms", "token")
	prog := func(c *pulumi.Context) error {
		_, err := vaultres.Declare(c, vaultres.Cluster{Access: d.Access(), Names: n, Kubeconfig: kubeconfig, TokenFile: tokenFile})
		return err
	}
	const stack = "shop-vault"
	timed := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	}
	noChanges := func(when string) {
		t.Helper()
		plan, err := eng.Preview(ctx, stack, prog, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if plan.HasChanges() {
			t.Errorf("%s: preview has changes: %+v", when, plan.Resources)
		}
	}
	wantPlan := func(when, typ string, op engine.Op) {
		t.Helper()
		plan, err := eng.Preview(ctx, stack, prog, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r, ok := find(plan.Resources, typ)
		if !ok || r.Op != op {
			t.Errorf("%s: plan for %s is %+v, want %s", when, typ, r, op)
		}
		for _, o := range plan.Resources {
			if o.Type != typ && o.Op != engine.OpSame {
				t.Errorf("%s: plan also changes %s (%s)", when, o.Type, o.Op)
			}
		}
	}
	check := func(when string) string {
		t.Helper()
		if _, ok, err := s.ReadTransit(ctx, n.TransitMount, n.TransitKey); err != nil || !ok {
			t.Errorf("%s: transit key: %v %v", when, ok, err)
		}
		if ok, err := s.ReadKV(ctx, n.KVMount); err != nil || !ok {
			t.Errorf("%s: kv: %v %v", when, ok, err)
		}
		if st, ok, err := s.ReadKubernetesAuth(ctx, n.AuthPath); err != nil || !ok || !st.ReviewerJWTSet || !strings.HasPrefix(st.Host, "https://127.0.0.1:") {
			t.Errorf("%s: kubernetes auth %+v: %v %v", when, st, ok, err)
		}
		for _, ns := range n.Namespaces {
			if st, err := s.ReadNamespaceRole(ctx, n, ns, vault.RoleOptions{}); err != nil || !st.Current() {
				t.Errorf("%s: role %s: %+v %v", when, ns.Namespace, st, err)
			}
		}
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if fi, _ := os.Stat(tokenFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: token file mode %o", when, fi.Mode().Perm())
		}
		return strings.TrimSpace(string(tok))
	}

	var res *engine.Result
	timed("vault up (6 resources)", func() (err error) { res, err = eng.Up(ctx, stack, prog, engine.Options{}); return })
	if res.Counts[engine.OpCreate] != 6 {
		t.Errorf("up created %v, want 6 resources", res.Counts)
	}
	kmsToken := check("after up")
	noChanges("right after up")

	// Pulumi state (and anything else the engine keeps) must never hold a
	// secret: not the KMS token, the reviewer JWT or the token secprov
	// acts with. The reviewer JWT written to Vault cannot be read back, so
	// no JWT at all may be there (the pattern is proven on a real one).
	files := engineFiles(t, stateDir)
	if !strings.Contains(files, vaultres.KMSTokenType) {
		t.Fatalf("the engine files under %s do not mention %s: wrong directory?", stateDir, vaultres.KMSTokenType)
	}
	for what, secret := range map[string]string{"KMS token": kmsToken, "root token": d.RootToken} {
		if len(secret) < 20 {
			t.Errorf("no %s to look for", what)
		} else if strings.Contains(files, secret) {
			t.Errorf("the %s is in the engine's files", what)
		}
	}
	if !jwtPattern.MatchString(saToken(t, ctx, cs, vault.ReviewerNamespace, vault.ReviewerServiceAccount)) {
		t.Errorf("%v does not match a service-account token: the check below proves nothing", jwtPattern)
	}
	if m := jwtPattern.FindString(files); m != "" {
		t.Errorf("a JWT is in the engine's files (%d characters)", len(m))
	}
	st := stateOf(t, eng, stack, vaultres.KubernetesAuthType)
	if exp, err := time.Parse(time.RFC3339, st["reviewerTokenExpires"].(string)); err != nil || time.Until(exp) < 360*24*time.Hour {
		t.Errorf("reviewer token expires %v (%v), want about a year from now", st["reviewerTokenExpires"], err)
	}
	sa, err := cs.CoreV1().ServiceAccounts(vault.ReviewerNamespace).Get(ctx, vault.ReviewerServiceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st["reviewerServiceAccountUID"] != string(sa.UID) {
		t.Errorf("state records reviewer uid %v, the account's is %s", st["reviewerServiceAccountUID"], sa.UID)
	}

	// Drift: the transit key deleted out of band shows as a replacement.
	d.MustWrite(t, n.TransitMount+"/keys/"+n.TransitKey+"/config", map[string]any{"deletion_allowed": true})
	if _, err := root.Logical().Delete(n.TransitMount + "/keys/" + n.TransitKey); err != nil {
		t.Fatal(err)
	}
	wantPlan("transit key deleted", vaultres.TransitType, engine.OpReplace)
	timed("up recreating the key", func() error { _, err := eng.Up(ctx, stack, prog, engine.Options{}); return err })
	check("after the key was recreated")
	noChanges("after the key was recreated")

	// Drift: the API server address in Vault changed: updated in place.
	d.MustWrite(t, "auth/"+n.AuthPath+"/config", map[string]any{"kubernetes_host": "https://10.0.0.1:6443", "kubernetes_ca_cert": testCA(t)})
	wantPlan("kubernetes host changed", vaultres.KubernetesAuthType, engine.OpUpdate)
	timed("up rewriting the Kubernetes auth config", func() error { _, err := eng.Up(ctx, stack, prog, engine.Options{}); return err })
	check("after the config was rewritten")

	// Drift: the reviewer service account recreated (a new uid; the old
	// JWT dies with the old account): the config is rewritten with a new
	// token, logins work again.
	if err := cs.CoreV1().ServiceAccounts(vault.ReviewerNamespace).Delete(ctx, vault.ReviewerServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	createReviewer(t, ctx, cs)
	// (The old token keeps working for up to 10 s, the API server's token
	// cache; not worth waiting for here.)
	wantPlan("reviewer ServiceAccount recreated (new uid)", vaultres.KubernetesAuthType, engine.OpUpdate)
	timed("up writing the new reviewer token", func() error { _, err := eng.Up(ctx, stack, prog, engine.Options{}); return err })
	if _, err := login(root, n.AuthPath, "payments", saToken(t, ctx, cs, "payments", "app")); err != nil {
		t.Errorf("login after the reviewer token was replaced: %v", err)
	}
	noChanges("after the reviewer token was replaced")

	// Drift: the auth mount disabled (its roles go with it): the mount is
	// replaced and the roles written again.
	if err := root.Sys().DisableAuth(n.AuthPath); err != nil {
		t.Fatal(err)
	}
	plan, err := eng.Preview(ctx, stack, prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range plan.Resources {
		want := engine.OpSame
		switch r.Type {
		case vaultres.KubernetesAuthType:
			want = engine.OpReplace
		case vaultres.NamespaceRoleType:
			want = engine.OpUpdate
		}
		if r.Op != want {
			t.Errorf("auth mount disabled: plan for %s %s is %s, want %s", r.Type, r.Name, r.Op, want)
		}
	}
	timed("up re-enabling the auth mount", func() error { _, err := eng.Up(ctx, stack, prog, engine.Options{}); return err })
	check("after the auth mount was re-enabled")
	noChanges("after the auth mount was re-enabled")

	// Drift: the KMS token revoked: replaced, the file holds a new token.
	self, err := asToken(t, root, kmsToken).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Auth().Token().RevokeAccessor(self.Data["accessor"].(string)); err != nil {
		t.Fatal(err)
	}
	wantPlan("KMS token revoked", vaultres.KMSTokenType, engine.OpReplace)
	timed("up minting a new KMS token", func() error { _, err := eng.Up(ctx, stack, prog, engine.Options{}); return err })
	if tok := check("after the token was replaced"); tok == kmsToken {
		t.Error("the token file still holds the revoked token")
	}
	noChanges("after the token was replaced")

	// Drift seen by refresh (Read): the token file lost while the token
	// lives. The replacement must revoke the live token, not orphan it.
	tok := check("before the token file is lost")
	self, err = asToken(t, root, tok).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	lost := self.Data["accessor"].(string)
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	timed("up --refresh replacing a token whose file was lost", func() error {
		_, err := eng.Up(ctx, stack, prog, engine.Options{Refresh: true})
		return err
	})
	if tok := check("after the lost token file"); tok == kmsToken {
		t.Error("the token file holds an old token")
	}
	if _, ok, err := s.LookupAccessor(ctx, lost); err != nil || ok {
		t.Errorf("the token whose file was lost is still valid (%v, %v): orphaned", ok, err)
	}
	noChanges("after the lost token file")

	// Drift seen by refresh (Read): the KV mount disabled.
	if err := root.Sys().Unmount(n.KVMount); err != nil {
		t.Fatal(err)
	}
	timed("up --refresh re-enabling the KV mount", func() error {
		_, err := eng.Up(ctx, stack, prog, engine.Options{Refresh: true})
		return err
	})
	check("after refresh")
	noChanges("after refresh")

	timed("vault destroy", func() error { _, err := eng.Destroy(ctx, stack, engine.Options{}); return err })
	if left := vaulttest.Leftovers(t, root, n); len(left) > 0 {
		t.Errorf("left in Vault after destroy: %v", left)
	}
	if _, err := os.Stat(tokenFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("KMS token file after destroy: %v", err)
	}

	// Vault down: the engine's error names it and says what to do.
	d.Stop()
	_, err = eng.Up(ctx, "shop-vault-down", func(c *pulumi.Context) error {
		_, err := engine.Resource(c, vaultres.TransitType, "vault-transit", vaultres.TransitInputs{Access: d.Access(), Mount: n.TransitMount, Key: n.TransitKey})
		return err
	}, engine.Options{})
	if err == nil {
		t.Fatal("up against a stopped Vault succeeded")
	}
	t.Logf("up against a stopped Vault: %v", err)
	for _, want := range []string{"vault " + d.Addr + " is unreachable", "start it", "spec.vault.address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("up against a stopped Vault: %q does not say %q", err, want)
		}
	}
	if _, err := eng.Destroy(ctx, "shop-vault-down", engine.Options{}); err != nil {
		t.Errorf("destroy of the failed stack: %v", err)
	}
}
