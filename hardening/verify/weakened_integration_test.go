package verify_test

// Every check is proven to fail on a cluster where its control is missing.
// Each row below is a real local cluster (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler from the toolchain, brought up
// through the real Pulumi engine) made from blueprints/examples/prod.yaml
// with exactly one control removed or weakened; the full suite runs on it
// and exactly that check must fail while every other check passes (or
// skips with a reason). The fully hardened prod and test clusters must pass
// everything. The table reaches clusters through a clusterProvider, so
// another provider can run it (weakenedTable); rows that change a
// control-plane file or process by hand use the local layout.
//
//	control        how the cluster is weakened
//	-------------  ----------------------------------------------------------------
//	SP-API-001     kube-apiserver --bind-address=0.0.0.0 on a private endpoint
//	SP-APISRV-001  kube-apiserver --anonymous-auth=true
//	SP-APISRV-002  kube-apiserver --authorization-mode=AlwaysAllow
//	SP-APISRV-003  admission plugins without NodeRestriction and DenyServiceExternalIPs, plus AlwaysAdmit
//	SP-APISRV-004  kube-apiserver --profiling=true
//	SP-APISRV-005  kube-apiserver --service-account-lookup=false
//	SP-APISRV-006  kube-apiserver also offers TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
//	SP-APISRV-007  kube-apiserver talks plaintext to a loopback proxy that forwards to etcd over mTLS
//	SP-APISRV-008  kube-apiserver --token-auth-file=<a static token file>
//	SP-KCM-001     kube-controller-manager --use-service-account-credentials=false
//	SP-SCHED-001   kube-scheduler --bind-address=0.0.0.0
//	SP-ETCD-001    etcd --client-cert-auth=false without --trusted-ca-file
//	SP-ETCD-002    etcd --peer-client-cert-auth=false without --peer-trusted-ca-file
//	SP-ETCD-003    etcd --listen-client-urls=https://0.0.0.0:PORT
//	SP-CERT-001    after up: the API server's kubelet client certificate replaced by an RSA-1024 one (hardened cluster)
//	SP-FILE-001    after up: chmod 0644 pki/sa.key (hardened cluster)
//	SP-ADM-001     after up: a Deployment from quay.io/evil created by the bootstrap identity (hardened cluster)
//	SP-ADM-002     after up: a namespace labelled enforce=privileged by the bootstrap identity (hardened cluster)
//	SP-ADM-003     after up: the secprov-rbac ValidatingAdmissionPolicyBinding deleted (hardened cluster)
//	SP-ADM-004     after up: the secprov-network-policy binding set to [Warn, Audit] without an exception (hardened cluster)
//	SP-ENC-001     blueprint encryptionAtRest.provider: none
//	SP-ENC-002     blueprint encryptionAtRest.provider: aescbc
//	SP-ENC-003     a secret written while encryption was off, then `up` again with secretbox (never rewritten)
//	SP-AUDIT-001   blueprint audit.enabled: false
//	SP-AUDIT-001   an audit policy that logs everything at RequestResponse (secret bodies in the log)
//	SP-AUDIT-002   kube-apiserver --audit-log-maxage=7
//	SP-PSS-001     blueprint podSecurity.enforce: privileged
//	SP-PSS-002     blueprint podSecurity.exemptNamespaces: kube-system, kube-public, kube-node-lease, monitoring
//	SP-PSS-003     blueprint podSecurity.warn: baseline
//	SP-RBAC-001    after up: a ClusterRoleBinding of cluster-admin to group contractors (hardened cluster)
//	SP-RBAC-001    after up: a RoleBinding of a */* Role in payments to user intern (hardened cluster)
//	SP-RBAC-002    after up: automountServiceAccountToken: true on storefront's default SA (hardened cluster)
//	SP-NET-002     after up: payments' default-deny NetworkPolicy deleted (hardened cluster)
//	SP-NET-003     after up: payments' allow policy widened to every peer (hardened cluster)
//	SP-NET-003     after up: an allow-all NetworkPolicy added in storefront (hardened cluster; SP-ADM-004 fails too: the guardrail forbids it)
//	SP-ISO-005     a test-environment cluster created with a copy of the prod cluster's CA
//	SP-KMS-001     after up: the KMS plugin process stopped (hardened cluster; up restarts it)
//	SP-KMS-002     after up: the transit key rotated in Vault, stored data not rewritten (then rotate-keys fixes it)
//	SP-KMS-003     after up: the KMS plugin's policy also reads sys/mounts/* (hardened cluster)
//	SP-VAULT-001   after up: payments' Kubernetes auth role deleted from Vault (hardened cluster)
//	SP-VAULT-002   after up: payments' policy widened to the whole KV mount (hardened cluster)
//	SP-VAULT-003   after up: payments' policy also reads the test cluster's KV mount (hardened cluster)
//
// SP-API-002 needs a public endpoint and so root and nft: provision/local's
// TestAPIFirewallInNetns (table deleted, table wider than allowedCIDRs)
// and TestUpPublicEndpointLoadsFirewall prove it fails and passes.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"

	vaultapi "github.com/hashicorp/vault/api"
	localproc "secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault/kms"
)

func TestMain(m *testing.M) {
	reg, err := provision.PluginRegistry(providers.Registry())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enginetest.ServeIfPlugin(reg)
	os.Exit(m.Run())
}

// clusterSlots is how many clusters the table builds at once: the machine
// has 2 cores and each API server start is CPU bound for seconds.
const clusterSlots = 2

// clusterProvider is what the table needs of a provider: build a cluster
// from a blueprint (a component's flags tweaked before it starts) and open
// it as a verify.Target. The rows weaken clusters through it, the API and
// Vault, so another provider (kind) runs the same table; the few rows that
// change a control-plane file or process by hand use the local provider's
// layout (harness.local).
type clusterProvider interface {
	// Up creates or updates the cluster of bp and registers its teardown
	// on tb. It may run on any goroutine: it returns errors instead of
	// failing tb.
	Up(tb testing.TB, ctx context.Context, bp v1alpha1.Blueprint, tweak func(component string, f hardening.Flags) hardening.Flags) error
	// Target opens the cluster for verify; the harness closes it when it
	// is an io.Closer.
	Target(name string) (verify.Target, error)
}

type harness struct {
	p     clusterProvider
	local *localClusters // nil on other providers
	slots chan struct{}
	vault vault.Access // the local Vault every cluster of the test uses (root)
}

// localClusters is the local provider: clusters made by local.Cluster
// through the real Pulumi engine, in one state directory.
type localClusters struct {
	eng      *engine.Engine
	stateDir string
	bins     local.Binaries
	vault    *vault.Access
}

func (l *localClusters) Up(tb testing.TB, ctx context.Context, bp v1alpha1.Blueprint, tweak func(string, hardening.Flags) hardening.Flags) error {
	name := bp.Metadata.Name
	c := &local.Cluster{Blueprint: bp, Dir: filepath.Join(paths.ClustersDir(l.stateDir), name), Binaries: l.bins, Tweak: tweak, Vault: l.vault}
	prog, err := c.Program()
	if err != nil {
		return fmt.Errorf("%s: program: %w", name, err)
	}
	tb.Cleanup(func() { l.down(tb, name) }) // idempotent; registered before up so a half-made cluster goes too
	if _, err := l.eng.Up(ctx, name, prog, engine.Options{}); err != nil {
		return fmt.Errorf("%s: up: %w", name, err)
	}
	return nil
}

func (l *localClusters) Target(name string) (verify.Target, error) {
	return provision.Target(providers.Registry(), l.stateDir, name)
}

func (l *localClusters) down(tb testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := l.eng.Destroy(ctx, name, engine.Options{}); err != nil {
		tb.Errorf("%s: destroy: %v", name, err)
	}
	// Whatever a failed destroy left running must not outlive the test.
	if err := local.StopAll(ctx, paths.NewLayout(filepath.Join(paths.ClustersDir(l.stateDir), name))); err != nil {
		tb.Errorf("%s: stop: %v", name, err)
	}
}

// newHarness returns the local provider with one engine, state dir and
// Vault shared by every cluster of a test, or skips when the toolchain is
// missing or under -short.
func newHarness(tb testing.TB) *harness {
	tb.Helper()
	bins := localtest.Binaries(tb)
	vaultBin := localtest.VaultBinary(tb)
	eng, stateDir := enginetest.NewEngine(tb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// One local Vault for every cluster of the test, as `secprov up` runs
	// one for every cluster of a machine.
	vs := &vaultserver.Server{Dir: vaultserver.DirIn(stateDir), Binary: vaultBin}
	va, err := vs.Ensure(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = vs.Stop(context.Background()) })
	l := &localClusters{eng: eng, stateDir: stateDir, bins: bins, vault: &va}
	return &harness{p: l, local: l, slots: make(chan struct{}, clusterSlots), vault: va}
}

// blueprint loads an example blueprint, renamed, and applies mutate.
func blueprint(tb testing.TB, example, name string, mutate func(*v1alpha1.Spec)) v1alpha1.Blueprint {
	tb.Helper()
	bps, err := blueprints.Load(filepath.Join("..", "..", "blueprints", "examples", example))
	if err != nil {
		tb.Fatal(err)
	}
	bp := bps[0].Blueprint
	bp.Metadata.Name = name
	// The examples spell out their Vault names; a renamed cluster gets its
	// own, as a blueprint that leaves them empty would.
	bp.Spec.Vault.TransitMount, bp.Spec.Vault.TransitKey, bp.Spec.Vault.KVMount, bp.Spec.Vault.AuthPath = "", "", "", ""
	v1alpha1.SetDefaults(&bp)
	if mutate != nil {
		mutate(&bp.Spec)
	}
	return bp
}

// up creates or updates the cluster of bp (tweak may be nil).
func (h *harness) up(tb testing.TB, ctx context.Context, bp v1alpha1.Blueprint, tweak func(string, hardening.Flags) hardening.Flags) {
	tb.Helper()
	if err := h.tryUp(tb, ctx, bp, tweak); err != nil {
		tb.Fatal(err)
	}
}

// upAll brings hardened clusters up concurrently, as `secprov up` does.
func (h *harness) upAll(tb testing.TB, ctx context.Context, bps ...v1alpha1.Blueprint) {
	tb.Helper()
	errs := make([]error, len(bps))
	var wg sync.WaitGroup
	for i, bp := range bps {
		wg.Go(func() { errs[i] = h.tryUp(tb, ctx, bp, nil) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// tryUp may run on any goroutine: it reports instead of failing the test.
func (h *harness) tryUp(tb testing.TB, ctx context.Context, bp v1alpha1.Blueprint, tweak func(string, hardening.Flags) hardening.Flags) error {
	start := time.Now()
	if err := h.p.Up(tb, ctx, bp, tweak); err != nil {
		return err
	}
	tb.Logf("%s: up in %v", bp.Metadata.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

// target opens a cluster; done closes it.
func (h *harness) target(tb testing.TB, name string) (t verify.Target, done func()) {
	tb.Helper()
	t, err := h.p.Target(name)
	if err != nil {
		tb.Fatal(err)
	}
	return t, func() {
		if c, ok := t.(io.Closer); ok {
			c.Close()
		}
	}
}

// suite runs the full check suite on a cluster.
func (h *harness) suite(tb testing.TB, ctx context.Context, name string) *verify.Report {
	tb.Helper()
	t, done := h.target(tb, name)
	defer done()
	return verify.Run(ctx, t, verify.Checks(), verify.Options{})
}

// superAdmin is the cluster's bootstrap identity (system:masters), which
// the admission guardrails exempt.
func (h *harness) superAdmin(tb testing.TB, name string) kubernetes.Interface {
	tb.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", h.layout(name).SuperAdminKubeconfig())
	if err != nil {
		tb.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

func (h *harness) admin(tb testing.TB, name string) kubernetes.Interface {
	tb.Helper()
	t, _ := h.target(tb, name) // the clientset outlives the target; nothing to close for it
	cs, err := t.Client()
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// pki and layout are the local provider's files of a cluster, for the rows
// that weaken them by hand.
func (h *harness) pki(name string) *pki.Bundle { return pki.Paths(h.layout(name).PKIDir()) }

func (h *harness) layout(name string) paths.Layout {
	return paths.NewLayout(filepath.Join(paths.ClustersDir(h.local.stateDir), name))
}

// expectOnly asserts that check id fails with evidence mentioning want,
// and that every other check passes or skips with a reason.
func expectOnly(tb testing.TB, rep *verify.Report, id, want string, also ...string) {
	tb.Helper()
	sawID := false
	for _, r := range rep.Results {
		if slices.Contains(also, string(r.ID)) {
			if r.Status != verify.StatusFail {
				tb.Errorf("%s on %s: %s (%s), want fail as well", r.ID, rep.Cluster, r.Status, r.Reason)
			}
			continue
		}
		if string(r.ID) == id {
			sawID = true
			expectEvidence(tb, rep.Cluster, r)
			all := r.Reason + " | " + fmt.Sprint(r.Evidence)
			if r.Status != verify.StatusFail {
				tb.Errorf("%s on %s: %s (%s), want fail", id, rep.Cluster, r.Status, r.Reason)
			} else if !strings.Contains(all, want) {
				tb.Errorf("%s on %s failed, but not for the weakened aspect (%q): %s", id, rep.Cluster, want, all)
			} else {
				tb.Logf("%s on %s: fail — %s", id, rep.Cluster, r.Reason)
			}
			continue
		}
		expectFine(tb, rep.Cluster, r)
	}
	if !sawID {
		tb.Errorf("no %s in the report", id)
	}
}

func expectFine(tb testing.TB, cluster string, r verify.Result) {
	tb.Helper()
	expectEvidence(tb, cluster, r)
	switch {
	case r.Status == verify.StatusPass:
	case r.Status == verify.StatusSkip && r.Reason != "":
	default:
		tb.Errorf("%s on %s: %s (%s) %v, want pass (or a skip with a reason)", r.ID, cluster, r.Status, r.Reason, r.Evidence)
	}
}

// expectEvidence: every piece of evidence names object, field, want and
// got, whatever the status.
func expectEvidence(tb testing.TB, cluster string, r verify.Result) {
	tb.Helper()
	if r.Status != verify.StatusSkip && len(r.Evidence) == 0 {
		tb.Errorf("%s on %s: %s without evidence", r.ID, cluster, r.Status)
	}
	for _, e := range r.Evidence {
		if e.Object == "" || e.Field == "" || e.Want == "" || e.Got == "" {
			tb.Errorf("%s on %s: incomplete evidence %+v", r.ID, cluster, e)
		}
	}
}

// row is one weakened cluster: blueprint and flag changes before up, or a
// kubectl-like change after up.
type row struct {
	id, name  string
	want      string // in the failing check's reason or evidence
	spec      func(*v1alpha1.Spec)
	tweak     func(t *testing.T, component string, f hardening.Flags) hardening.Flags
	run       func(t *testing.T, h *harness, ctx context.Context, r row) // whole custom row
	component string                                                     // tweak applies to this component only
}

func set(name, value string) func(*testing.T, string, hardening.Flags) hardening.Flags {
	return func(_ *testing.T, _ string, f hardening.Flags) hardening.Flags { return f.With(name, value) }
}

// weakenedRows are the rows that need a cluster of their own; rows that
// weaken a running cluster share the hardened one (hardenedRows).
func weakenedRows() []row {
	return []row{
		{id: "SP-API-001", want: "kube-apiserver listening socket", component: verify.APIServer, tweak: set("bind-address", "0.0.0.0")},
		{id: "SP-APISRV-001", want: "anonymous GET: want 401, got 200", component: verify.APIServer, tweak: set("anonymous-auth", "true")},
		{id: "SP-APISRV-002", want: "got allowed", component: verify.APIServer, tweak: set("authorization-mode", "AlwaysAllow")},
		{id: "SP-APISRV-003", want: "spec.externalIPs: want rejected by DenyServiceExternalIPs, got admitted", component: verify.APIServer, tweak: func(_ *testing.T, _ string, f hardening.Flags) hardening.Flags {
			var plugins []string
			for _, p := range hardening.AdmissionPlugins {
				if p != "NodeRestriction" && p != "DenyServiceExternalIPs" {
					plugins = append(plugins, p)
				}
			}
			return f.With("enable-admission-plugins", strings.Join(append(plugins, "AlwaysAdmit"), ","))
		}},
		{id: "SP-APISRV-004", want: "admin GET /debug/pprof/: want 404, got 200", component: verify.APIServer, tweak: set("profiling", "true")},
		{id: "SP-APISRV-005", want: "--service-account-lookup", component: verify.APIServer, tweak: set("service-account-lookup", "false")},
		{id: "SP-APISRV-006", want: "suites: want refused, got accepted", component: verify.APIServer,
			tweak: set("tls-cipher-suites", strings.Join(slices.Concat(hardening.StrongCipherSuites, []string{"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}), ","))},
		{id: "SP-APISRV-007", want: "--etcd-servers", component: verify.APIServer, tweak: plaintextEtcd},
		{id: "SP-APISRV-008", want: "--token-auth-file", component: verify.APIServer, tweak: func(t *testing.T, _ string, f hardening.Flags) hardening.Flags {
			// A private directory: the file is a credential, and SP-FILE-001
			// (rightly) fails a readable directory holding one.
			dir := t.TempDir()
			file := filepath.Join(dir, "tokens.csv")
			must(t, os.Chmod(dir, 0o700))
			must(t, os.WriteFile(file, []byte(randomToken()+",ops,1001,system:masters\n"), 0o600))
			return f.With("token-auth-file", file)
		}},
		{id: "SP-KCM-001", want: "--use-service-account-credentials", component: verify.ControllerManager, tweak: set("use-service-account-credentials", "false")},
		{id: "SP-SCHED-001", want: "kube-scheduler listening socket", component: verify.Scheduler, tweak: set("bind-address", "0.0.0.0")},
		{id: "SP-ETCD-001", want: "client connection without a client certificate: want refused, got accepted", component: verify.Etcd, tweak: func(_ *testing.T, _ string, f hardening.Flags) hardening.Flags {
			// With a trusted CA etcd requires client certificates whatever
			// --client-cert-auth says, so both go.
			return f.With("client-cert-auth", "false").Without("trusted-ca-file")
		}},
		{id: "SP-ETCD-002", want: "peer connection without a client certificate: want refused, got accepted", component: verify.Etcd, tweak: func(_ *testing.T, _ string, f hardening.Flags) hardening.Flags {
			return f.With("peer-client-cert-auth", "false").Without("peer-trusted-ca-file")
		}},
		{id: "SP-ETCD-003", want: "etcd listening socket", component: verify.Etcd, tweak: func(_ *testing.T, _ string, f hardening.Flags) hardening.Flags {
			u, _ := f.Get("listen-client-urls")
			return f.With("listen-client-urls", strings.Replace(u, "127.0.0.1", "0.0.0.0", 1))
		}},
		{id: "SP-ENC-002", want: "written with aescbc", spec: func(s *v1alpha1.Spec) { s.EncryptionAtRest.Provider = v1alpha1.EncryptionAESCBC }},
		{id: "SP-ENC-001", run: encryptionLater}, // then SP-ENC-003 on the same cluster
		{id: "SP-AUDIT-001", name: "off", want: "--audit-log-path", spec: func(s *v1alpha1.Spec) { off := false; s.Audit.Enabled = &off }},
		{id: "SP-AUDIT-001", name: "body", want: "the canary secret's value is in the log", component: verify.APIServer, tweak: func(t *testing.T, _ string, f hardening.Flags) hardening.Flags {
			file := filepath.Join(t.TempDir(), "log-everything.yaml")
			policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n"
			if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
				t.Fatal(err)
			}
			return f.With("audit-policy-file", file)
		}},
		{id: "SP-AUDIT-002", want: "--audit-log-maxage is 7", component: verify.APIServer, tweak: set("audit-log-maxage", "7")},
		{id: "SP-PSS-001", want: "want rejected by PodSecurity restricted, got admitted", spec: func(s *v1alpha1.Spec) { s.PodSecurity.Enforce = v1alpha1.PSSPrivileged }},
		{id: "SP-PSS-002", want: "4 namespaces are exempt", spec: func(s *v1alpha1.Spec) {
			s.PodSecurity.ExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "monitoring"}
		}},
		{id: "SP-PSS-003", want: "warn is baseline", spec: func(s *v1alpha1.Spec) { s.PodSecurity.Warn = v1alpha1.PSSBaseline }},
		{id: "SP-ISO-005", run: sharedCA},
	}
}

func (r row) clusterName() string {
	n := "w-" + strings.ToLower(strings.TrimPrefix(r.id, "SP-"))
	if r.name != "" {
		n += "-" + r.name
	}
	return n
}

func TestWeakenedClusters(t *testing.T) { weakenedTable(t, newHarness(t)) }

// weakenedTable runs the hardened and weakened rows on h's provider.
func weakenedTable(t *testing.T, h *harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	t.Run("hardened", func(t *testing.T) { hardenedRows(t, h, ctx) })
	t.Run("weakened", func(t *testing.T) {
		for _, r := range weakenedRows() {
			t.Run(r.clusterName(), func(t *testing.T) {
				t.Parallel()
				h.slots <- struct{}{}
				defer func() { <-h.slots }()
				if r.run != nil {
					r.run(t, h, ctx, r)
					return
				}
				bp := blueprint(t, "prod.yaml", r.clusterName(), r.spec)
				var tweak func(string, hardening.Flags) hardening.Flags
				if r.tweak != nil {
					tweak = func(component string, f hardening.Flags) hardening.Flags {
						if component != r.component {
							return f
						}
						return r.tweak(t, component, f)
					}
				}
				h.up(t, ctx, bp, tweak)
				expectOnly(t, h.suite(t, ctx, r.clusterName()), r.id, r.want)
			})
		}
	})
	t.Logf("hardened and %d weakened clusters in %v", len(weakenedRows()), time.Since(start).Round(time.Second))
}

// hardenedRows: the prod and test examples, fully hardened, pass every
// check (no fail, error or warning; skips only with reasons). Then the
// runtime weakenings are applied to the prod cluster one at a time, each
// reverted before the next, and each must fail exactly its check.
func hardenedRows(t *testing.T, h *harness, ctx context.Context) {
	prod, test := "shop-prod", "shop-test"
	h.upAll(t, ctx, blueprint(t, "prod.yaml", prod, nil), blueprint(t, "test.yaml", test, nil))
	for _, name := range []string{prod, test} {
		rep := h.suite(t, ctx, name)
		for _, r := range rep.Results {
			expectFine(t, name, r)
		}
		t.Logf("%s: %d passed, %d skipped in %v", name, rep.Summary.Passed, rep.Summary.Skipped, rep.Duration.Round(time.Millisecond))
	}
	cs := h.admin(t, prod)
	// Changes the admission guardrails refuse are made as the exempt
	// bootstrap identity (system:masters): what predates a guardrail or
	// slipped past it must still fail its check.
	super := h.superAdmin(t, prod)
	b := h.pki(prod)
	va, err := h.vault.Client(ctx)
	must(t, err)
	outer := t
	names := vault.NamesFor(prod, blueprint(t, "prod.yaml", prod, nil).Spec)
	runtime := []struct {
		id, name, want string
		weaken         func(t *testing.T) (revert func())
	}{
		{"SP-RBAC-001", "cluster-admin for an unlisted group", "Group contractors", func(t *testing.T) func() {
			crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "contractors-admin"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "contractors"}}}
			must(t, ignore(super.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})))
			return func() { must(t, super.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{})) }
		}},
		{"SP-RBAC-001", "a */* role in payments for a user", "RoleBinding/payments/intern-admin", func(t *testing.T) func() {
			role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "everything", Namespace: "payments"},
				Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}}
			rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "intern-admin", Namespace: "payments"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "intern"}}}
			must(t, ignore(super.RbacV1().Roles("payments").Create(ctx, role, metav1.CreateOptions{})))
			must(t, ignore(super.RbacV1().RoleBindings("payments").Create(ctx, rb, metav1.CreateOptions{})))
			return func() {
				must(t, cs.RbacV1().RoleBindings("payments").Delete(ctx, rb.Name, metav1.DeleteOptions{}))
				must(t, cs.RbacV1().Roles("payments").Delete(ctx, role.Name, metav1.DeleteOptions{}))
			}
		}},
		{"SP-RBAC-002", "default SA automount re-enabled", "storefront", func(t *testing.T) func() {
			patch := func(v bool) error {
				_, err := cs.CoreV1().ServiceAccounts("storefront").Patch(ctx, "default", types.MergePatchType,
					fmt.Appendf(nil, `{"automountServiceAccountToken":%v}`, v), metav1.PatchOptions{})
				return err
			}
			must(t, patch(true))
			return func() { must(t, patch(false)) }
		}},
		{"SP-NET-002", "default deny deleted", "namespace payments has no default-deny", func(t *testing.T) func() {
			np, err := cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, hardening.DefaultDenyPolicy, metav1.GetOptions{})
			must(t, err)
			must(t, cs.NetworkingV1().NetworkPolicies("payments").Delete(ctx, np.Name, metav1.DeleteOptions{}))
			return func() {
				restored := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace, Labels: np.Labels}, Spec: np.Spec}
				must(t, ignore(cs.NetworkingV1().NetworkPolicies("payments").Create(ctx, restored, metav1.CreateOptions{})))
			}
		}},
		{"SP-NET-003", "allow rule widened to every peer", "differs from the blueprint", func(t *testing.T) func() {
			np, err := cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, "secprov-allow-0-ingress", metav1.GetOptions{})
			must(t, err)
			orig := np.Spec.Ingress[0].From
			np.Spec.Ingress[0].From = nil
			must(t, ignore(super.NetworkingV1().NetworkPolicies("payments").Update(ctx, np, metav1.UpdateOptions{})))
			return func() {
				np, err := cs.NetworkingV1().NetworkPolicies("payments").Get(ctx, "secprov-allow-0-ingress", metav1.GetOptions{})
				must(t, err)
				np.Spec.Ingress[0].From = orig
				must(t, ignore(super.NetworkingV1().NetworkPolicies("payments").Update(ctx, np, metav1.UpdateOptions{})))
			}
		}},
		{"SP-NET-003", "an allow-all policy added", "allows ingress from every peer", func(t *testing.T) func() {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: "storefront"},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
			must(t, ignore(super.NetworkingV1().NetworkPolicies("storefront").Create(ctx, np, metav1.CreateOptions{})))
			return func() {
				must(t, cs.NetworkingV1().NetworkPolicies("storefront").Delete(ctx, np.Name, metav1.DeleteOptions{}))
			}
		}},
		{"SP-ADM-001", "a foreign-registry deployment created out of band", "Deployment/storefront/foreign", func(t *testing.T) func() {
			no, yes := false, true
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: "storefront"}, Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "foreign"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "foreign"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "miner", Image: "quay.io/evil/miner@sha256:" + strings.Repeat("ab", 32), SecurityContext: &corev1.SecurityContext{
						AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}}}}}}}
			must(t, ignore(super.AppsV1().Deployments("storefront").Create(ctx, d, metav1.CreateOptions{})))
			return func() { must(t, super.AppsV1().Deployments("storefront").Delete(ctx, d.Name, metav1.DeleteOptions{})) }
		}},
		{"SP-ADM-002", "a namespace labelled privileged out of band", "namespace legacy-priv: label pod-security.kubernetes.io/enforce=privileged", func(t *testing.T) func() {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy-priv", Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
			must(t, ignore(super.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})))
			return func() {
				// Unlabel first: a deleted namespace keeps its labels while it
				// terminates.
				must(t, ignore(super.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType,
					[]byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":null}}}`), metav1.PatchOptions{})))
				must(t, super.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}))
			}
		}},
		{"SP-ADM-003", "the RBAC guardrail's binding deleted", "binding secprov-rbac is missing", func(t *testing.T) func() {
			vb := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
			b, err := vb.Get(ctx, hardening.RBACGuardrail, metav1.GetOptions{})
			must(t, err)
			must(t, vb.Delete(ctx, b.Name, metav1.DeleteOptions{}))
			return func() {
				restored := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: b.Name, Labels: b.Labels, Annotations: b.Annotations}, Spec: b.Spec}
				must(t, ignore(vb.Create(ctx, restored, metav1.CreateOptions{})))
			}
		}},
		{"SP-ADM-004", "the network guardrail set to warn without an exception", "only warns", func(t *testing.T) func() {
			patch := func(actions string) error {
				_, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Patch(ctx, hardening.NetworkGuardrail, types.MergePatchType,
					[]byte(`{"spec":{"validationActions":`+actions+`}}`), metav1.PatchOptions{})
				return err
			}
			must(t, patch(`["Warn","Audit"]`))
			return func() { must(t, patch(`["Deny"]`)) }
		}},
		{"SP-FILE-001", "a key made world-readable", "sa.key is 0644", func(t *testing.T) func() {
			must(t, os.Chmod(b.ServiceAccountKey, 0o644))
			return func() { must(t, os.Chmod(b.ServiceAccountKey, 0o600)) }
		}},
		{"SP-CERT-001", "an RSA-1024 kubelet client certificate", "RSA 1024", func(t *testing.T) func() {
			return replaceWithWeakCert(t, b.CACert, b.CAKey, b.APIServerKubeletClientCert, b.APIServerKubeletClientKey)
		}},
		{"SP-KMS-001", "the KMS plugin stopped", "the KMS plugin does not answer", func(t *testing.T) func() {
			must(t, localproc.Stop(ctx, h.layout(prod).PidFile(local.KMSPlugin), 5*time.Second))
			// up restarts a dead plugin, as it would after a crash. (The
			// outer test owns the cluster: an up registers its teardown.)
			return func() { h.up(outer, ctx, blueprint(t, "prod.yaml", prod, nil), nil) }
		}},
		{"SP-KMS-002", "the transit key rotated in Vault, data not rewritten", "KMS key IDs of stored objects: want all " + kmsKeyID(names, 2), func(t *testing.T) func() {
			// A secret stored before the rotation is what stays under the
			// old key version.
			stored := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "before-rotation", Namespace: "payments"}, StringData: map[string]string{"k": "v"}}
			must(t, ignore(cs.CoreV1().Secrets("payments").Create(ctx, stored, metav1.CreateOptions{})))
			_, err := va.Logical().WriteWithContext(ctx, names.TransitMount+"/keys/"+names.TransitKey+"/rotate", nil)
			must(t, err)
			// rotate-keys is the remedy: afterwards the check passes again
			// (the final suite below proves it).
			return func() {
				target, done := h.target(t, prod)
				defer done()
				res, err := provision.RotateKeys(ctx, target, nil)
				must(t, err)
				t.Logf("rotate-keys: %s -> %s after %s; rewrote %d, %d current, %d stale", res.FromKeyID, res.ToKeyID, res.Observed, res.Rewritten, res.Current, res.Stale)
				if res.Rewritten == 0 || res.Stale != 0 || res.Current < res.Rewritten {
					t.Errorf("rotate-keys: %+v, want rewritten objects and none stale", res)
				}
				s, err := cs.CoreV1().Secrets("payments").Get(ctx, stored.Name, metav1.GetOptions{})
				if err != nil || string(s.Data["k"]) != "v" {
					t.Errorf("secret after rotate-keys: %v %q", err, s.Data["k"])
				}
				must(t, cs.CoreV1().Secrets("payments").Delete(ctx, stored.Name, metav1.DeleteOptions{}))
			}
		}},
		{"SP-KMS-003", "the KMS policy widened", "sys/mounts/" + names.TransitMount, func(t *testing.T) func() {
			return writePolicy(t, ctx, va, names.KMSPolicy(), vault.KMSPolicy(names)+"\npath \"sys/mounts/*\" {\n  capabilities = [\"read\"]\n}\n")
		}},
		{"SP-VAULT-001", "the payments role deleted from Vault", "cannot log in to Vault", func(t *testing.T) func() {
			path := "auth/" + names.AuthPath + "/role/" + names.NamespaceRole("payments")
			role, err := va.Logical().ReadWithContext(ctx, path)
			must(t, err)
			_, err = va.Logical().DeleteWithContext(ctx, path)
			must(t, err)
			return func() { must(t, ignore(va.Logical().WriteWithContext(ctx, path, role.Data))) }
		}},
		{"SP-VAULT-002", "the payments policy widened to the whole KV mount", "it is not among payments's paths", func(t *testing.T) func() {
			ns := names.Namespaces[0]
			return writePolicy(t, ctx, va, names.NamespacePolicy(ns.Namespace),
				vault.NamespacePolicy(names, ns)+"\npath \""+names.KVMount+"/data/*\" {\n  capabilities = [\"read\"]\n}\n")
		}},
		{"SP-VAULT-003", "the payments policy granted test's KV mount", "belongs to another environment", func(t *testing.T) func() {
			ns := names.Namespaces[0]
			return writePolicy(t, ctx, va, names.NamespacePolicy(ns.Namespace),
				vault.NamespacePolicy(names, ns)+"\npath \"kv-shop-test/data/*\" {\n  capabilities = [\"read\"]\n}\n")
		}},
	}
	// An allow-all NetworkPolicy undoes default deny (SP-NET-003) and is
	// one the network guardrail forbids (SP-ADM-004): both controls are
	// broken, so both checks fail.
	alsoFails := map[string][]string{"an allow-all policy added": {"SP-ADM-004"}}
	for _, rt := range runtime {
		t.Run(rt.id+" "+rt.name, func(t *testing.T) {
			revert := rt.weaken(t)
			rep := h.suite(t, ctx, prod)
			revert()
			expectOnly(t, rep, rt.id, rt.want, alsoFails[rt.name]...)
		})
	}
	// Reverted: the cluster is whole again.
	for _, r := range h.suite(t, ctx, prod).Results {
		expectFine(t, prod, r)
	}
}

func kmsKeyID(n vault.Names, version int) string {
	return kms.KeyID(n.TransitMount, n.TransitKey, version)
}

// writePolicy replaces a Vault ACL policy and returns the revert.
func writePolicy(t *testing.T, ctx context.Context, c *vaultapi.Client, name, policy string) func() {
	old, err := c.Sys().GetPolicyWithContext(ctx, name)
	must(t, err)
	must(t, c.Sys().PutPolicyWithContext(ctx, name, policy))
	return func() { must(t, c.Sys().PutPolicyWithContext(ctx, name, old)) }
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ignore[T any](_ T, err error) error { return err }

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// replaceWithWeakCert issues an RSA-1024 certificate for the same
// identity from the cluster CA and puts it in place of cert/key; revert
// restores the originals.
func replaceWithWeakCert(t *testing.T, caCertFile, caKeyFile, certFile, keyFile string) func() {
	oldCert, err1 := os.ReadFile(certFile)
	oldKey, err2 := os.ReadFile(keyFile)
	caPEM, err3 := os.ReadFile(caCertFile)
	caKeyPEM, err4 := os.ReadFile(caKeyFile)
	for _, err := range []error{err1, err2, err3, err4} {
		must(t, err)
	}
	cb, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(cb.Bytes)
	must(t, err)
	kb, _ := pem.Decode(caKeyPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	must(t, err)
	ob, _ := pem.Decode(oldCert)
	old, err := x509.ParseCertificate(ob.Bytes)
	must(t, err)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: old.Subject.CommonName, Organization: old.Subject.Organization},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, weak.Public(), caKey.(crypto.Signer))
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(weak)
	must(t, err)
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return func() {
		must(t, os.WriteFile(keyFile, oldKey, 0o600))
		must(t, os.WriteFile(certFile, oldCert, 0o644))
	}
}

// encryptionLater is the SP-ENC-001 row and then the SP-ENC-003 row on the
// same cluster: created without encryption (only SP-ENC-001 fails), a
// secret is stored, then `up` again with secretbox. New secrets are
// encrypted now, but the old one stays plaintext until rewritten: only
// SP-ENC-003 fails.
func encryptionLater(t *testing.T, h *harness, ctx context.Context, r row) {
	name := r.clusterName()
	bp := blueprint(t, "prod.yaml", name, func(s *v1alpha1.Spec) { s.EncryptionAtRest.Provider = v1alpha1.EncryptionNone })
	h.up(t, ctx, bp, nil)
	expectOnly(t, h.suite(t, ctx, name), "SP-ENC-001", "canary value readable")
	legacy := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "legacy-plain", Namespace: "payments"}, StringData: map[string]string{"k": "v"}}
	must(t, ignore(h.admin(t, name).CoreV1().Secrets("payments").Create(ctx, legacy, metav1.CreateOptions{})))
	bp = blueprint(t, "prod.yaml", name, func(s *v1alpha1.Spec) { s.EncryptionAtRest.Provider = v1alpha1.EncryptionSecretbox })
	h.up(t, ctx, bp, nil)
	expectOnly(t, h.suite(t, ctx, name), "SP-ENC-003", "etcd /registry/secrets/payments/legacy-plain stored value: want k8s:enc:secretbox:v1:, got plaintext")
}

// sharedCA is the SP-ISO-005 row: a test cluster whose PKI starts from a
// copy of the prod cluster's CA (what "copying PKI between clusters"
// does). Its admin certificate is then a valid client certificate of the
// prod cluster, in secprov's admin group.
func sharedCA(t *testing.T, h *harness, ctx context.Context, r row) {
	prodName := r.clusterName()
	testName := prodName + "-test"
	h.up(t, ctx, blueprint(t, "prod.yaml", prodName, nil), nil)
	src, dst := h.pki(prodName), h.pki(testName)
	must(t, os.MkdirAll(dst.Dir, 0o700))
	for _, f := range [][2]string{{src.CACert, dst.CACert}, {src.CAKey, dst.CAKey}} {
		data, err := os.ReadFile(f[0])
		must(t, err)
		must(t, os.WriteFile(f[1], data, 0o600))
	}
	h.up(t, ctx, blueprint(t, "test.yaml", testName, nil), nil)
	expectOnly(t, h.suite(t, ctx, prodName), "SP-ISO-005", "accepted here")
}

// plaintextEtcd points the API server at a loopback proxy without TLS
// that forwards each connection to etcd over mutual TLS with the API
// server's own etcd client certificate. The API server then talks to etcd
// in plaintext while etcd itself stays fully hardened, so only
// SP-APISRV-007 is weakened.
func plaintextEtcd(t *testing.T, _ string, f hardening.Flags) hardening.Flags {
	servers, _ := f.Get("etcd-servers")
	ca, _ := f.Get("etcd-cafile")
	cert, _ := f.Get("etcd-certfile")
	key, _ := f.Get("etcd-keyfile")
	u, err := url.Parse(servers)
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() }) // after the cluster's teardown (cleanups run last-in first-out)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go forwardTLS(conn, u.Host, ca, cert, key)
		}
	}()
	return f.Without("etcd-cafile", "etcd-certfile", "etcd-keyfile").With("etcd-servers", "http://"+ln.Addr().String())
}

// forwardTLS pipes a plaintext gRPC (h2c) connection to etcd's TLS port.
// The certificate files exist by the time the API server first connects
// (the PKI is made before it starts), so they are read per connection.
func forwardTLS(in net.Conn, target, caFile, certFile, keyFile string) {
	defer in.Close()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	host, _, _ := net.SplitHostPort(target)
	out, err := tls.Dial("tcp", target, &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host,
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

// BenchmarkSuite runs the full suite against one hardened local cluster
// (prod example, with the test example up too so SP-ISO-005 has a foreign
// credential to try), opening the cluster the way `secprov verify` does
// on every run; ns/op is the wall time of one suite run.
func BenchmarkSuite(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	const name = "bench"
	h.upAll(b, ctx, blueprint(b, "prod.yaml", name, nil), blueprint(b, "test.yaml", name+"-test", nil))
	checks := verify.Checks()
	passed := 0
	for b.Loop() {
		t, done := h.target(b, name)
		rep := verify.Run(ctx, t, checks, verify.Options{})
		done()
		// Checks of nodes skip on local, which has none.
		if s := rep.Summary; s.Failed+s.Errored+s.Warned > 0 || s.Passed+s.Skipped != len(checks) {
			b.Fatalf("hardened cluster: %+v", s)
		}
		passed = rep.Summary.Passed
	}
	b.ReportMetric(float64(passed), "checks/op")
}
