package verify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/vault"
)

// localCaps are what the local provider offers: everything but nodes.
func localCaps() []Capability {
	return slices.DeleteFunc(AllCapabilities(), func(c Capability) bool { return c == Nodes || c == NetworkProbes })
}

func TestRunnerSkipsChecksWhoseNeedsAreMissing(t *testing.T) {
	var ran atomic.Int32
	run := func(context.Context, Target) Outcome {
		ran.Add(1)
		return Pass("looked", Evidence{Object: "o", Field: "f", Want: "w", Got: "g"})
	}
	checks := []Check{
		{ID: "SP-NET-002", Needs: needs(API, NetworkProbes), Run: run},
		{ID: "SP-NET-003", Needs: needs(Nodes, NetworkProbes), Run: run},
		{ID: "SP-RBAC-001", Needs: needs(API), Run: run},
		{ID: "SP-ENC-001", Exclusive: true, Needs: needs(RawEtcd, Nodes), Run: run},
	}
	f := hardenedFake(t)
	f.caps = localCaps()
	rep := Run(context.Background(), f, checks, Options{})
	want := map[string]struct {
		status Status
		reason string
	}{
		"SP-NET-002":  {StatusSkip, "needs network-probes; provider local has none"},
		"SP-NET-003":  {StatusSkip, "needs nodes, network-probes; provider local has none of these"},
		"SP-RBAC-001": {StatusPass, "looked"},
		"SP-ENC-001":  {StatusSkip, "needs nodes; provider local has none"},
	}
	for _, r := range rep.Results {
		if w := want[string(r.ID)]; r.Status != w.status || r.Reason != w.reason {
			t.Errorf("%s = %s (%q), want %s (%q)", r.ID, r.Status, r.Reason, w.status, w.reason)
		}
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("%d checks ran, want only the one whose needs are met", n)
	}
	if s := rep.Summary; s.Total != 4 || s.Skipped != 3 || s.Passed != 1 {
		t.Errorf("summary = %+v, want 3 skipped and 1 passed of 4", s)
	}

	// With the capabilities offered, the same checks run.
	ran.Store(0)
	f.caps = AllCapabilities()
	rep = Run(context.Background(), f, checks, Options{})
	if n := ran.Load(); n != 4 || rep.Summary.Passed != 4 || rep.Summary.Skipped != 0 {
		t.Errorf("with every capability: %d ran, summary %+v; want all 4 to run and pass", n, rep.Summary)
	}
}

// A check that calls a method whose capability it did not declare is a
// bug: the target refuses, and the result is an error naming the
// capability, never a skip or a pass.
func TestUndeclaredCapabilityIsAnError(t *testing.T) {
	f := hardenedFake(t)
	f.caps = needs(API)
	check := Check{ID: "SP-ENC-001", Needs: needs(API), Run: func(ctx context.Context, t Target) Outcome {
		if _, _, err := t.EtcdGet(ctx, "/registry/secrets/default/x"); err != nil {
			return Errorf("read etcd: %v", err)
		}
		return Pass("read")
	}}
	r := Run(context.Background(), f, []Check{check}, Options{}).Results[0]
	var ce *CapabilityError
	if r.Status != StatusError || !strings.Contains(r.Reason, "provider local does not offer raw-etcd") {
		t.Errorf("undeclared use = %s (%s), want an error naming raw-etcd", r.Status, r.Reason)
	}
	if _, err := f.Component(context.Background(), APIServer); !errors.As(err, &ce) || ce.Capability != Processes {
		t.Errorf("Component without processes: %v, want a *CapabilityError for processes", err)
	}
}

// A check that could look at only part of what it proves skips, keeping
// the evidence of what it saw; it never passes.
func TestPartialLookIsASkipNotAPass(t *testing.T) {
	var r findings
	r.ok(Evidence{Object: "kube-apiserver", Field: "--anonymous-auth", Want: "false", Got: "false"})
	r.skip("ServiceAccount default/default does not exist, so no token was issued")
	out := r.outcome("everything is fine")
	if out.Status != StatusSkip || !strings.Contains(out.Reason, "no token was issued") || len(out.Evidence) != 1 {
		t.Errorf("partial look = %s (%s) %v, want a skip with the reason and the evidence seen", out.Status, out.Reason, out.Evidence)
	}
	r.fail(Evidence{Object: "o", Field: "f", Want: "w", Got: "g"}, "broken")
	if out := r.outcome(""); out.Status != StatusFail {
		t.Errorf("a failure next to a skip = %s, want fail", out.Status)
	}
}

func TestCapabilityDeclarations(t *testing.T) {
	all := AllCapabilities()
	for _, c := range Checks() {
		for i, n := range c.Needs {
			if !slices.Contains(all, n) {
				t.Errorf("%s needs %q, which is not a capability", c.ID, n)
			}
			if slices.Contains(c.Needs[:i], n) {
				t.Errorf("%s declares %s twice", c.ID, n)
			}
		}
	}
}

// richFake is a hardened cluster with everything the checks read: the
// objects hardening renders, certificates, admission and encryption
// configs, file modes, stored values in etcd, a foreign credential and
// (with vaultKMS) a Vault that refuses connections, so that as many code
// paths as possible call the target.
func richFake(t *testing.T, vaultKMS bool) *fakeTarget {
	t.Helper()
	f := objectsFake(t)
	ctx := context.Background()
	good := newCert(t, "good", certOpts{})
	for path, kind := range controlPlaneFiles(ctx, f, &findings{}) {
		switch kind {
		case kindCert:
			f.files[path], f.modes[path] = good, 0o644
		case kindKubeconfig:
			f.files[path], f.modes[path] = kubeconfigWith(t, good), 0o600
		default:
			f.modes[path] = 0o600
		}
	}
	for _, d := range []string{"/c", "/c/pki", "/c/config", "/c/logs", "/c/etcd"} {
		f.modes[d] = 0o700 | os.ModeDir
	}
	adm, err := hardening.AdmissionConfig(f.info.Spec)
	if err != nil {
		t.Fatal(err)
	}
	f.files[f.info.Files.AdmissionConfig] = adm
	f.files[f.info.Files.EncryptionConfig] = encConfig(t, "secretbox", "secrets")
	f.files[f.info.Files.AuditLog] = []byte("{}\n")
	f.etcd["/registry/secrets/default/a"] = []byte("k8s:enc:secretbox:v1:k1:\x01")
	f.foreign = []Credential{{Cluster: "other", Environment: "test", CertPEM: good, KeyPEM: hardening.Secret("x")}}
	if _, err := f.client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	if vaultKMS {
		token := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(token, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		closed := vault.Access{Address: "http://127.0.0.1:1", TokenFile: token} // nothing listens on port 1
		f.info.EncryptionProvider = v1alpha1.EncryptionVaultKMS
		f.vault = &Vault{Admin: closed, KMSToken: closed, KMSSocket: filepath.Join(t.TempDir(), "kms.sock"),
			Names: vault.NamesFor(f.info.Name, f.info.Spec), Peers: []VaultPeer{{Cluster: "other", Environment: "test", Names: vault.NamesFor("other", f.info.Spec)}}}
	}
	f.used = nil
	return f
}

// TestChecksDeclareWhatTheyUse proves the declarations against the code:
// offered no capability at all, every check is skipped by the runner
// before it touches the target; offered exactly what it declares, no
// check calls a method of any other capability.
func TestChecksDeclareWhatTheyUse(t *testing.T) {
	ctx := context.Background()
	t.Run("no capabilities", func(t *testing.T) {
		f := richFake(t, true)
		f.caps = nil
		rep := Run(ctx, f, Checks(), Options{})
		for _, r := range rep.Results {
			if r.Status != StatusSkip || !strings.HasPrefix(r.Reason, "needs ") || !strings.Contains(r.Reason, "provider local has none") {
				t.Errorf("%s on a target offering nothing = %s (%s), want a skip naming what it needs", r.ID, r.Status, r.Reason)
			}
		}
		if used := f.usedCapabilities(); len(used) > 0 {
			t.Errorf("checks called the target for %v although it offers nothing: a check touches the target without declaring it", used)
		}
		if rep.Summary.Skipped != len(Checks()) {
			t.Errorf("summary %+v, want every check skipped", rep.Summary)
		}
	})
	for _, vaultKMS := range []bool{false, true} {
		name := "exactly the declared needs"
		if vaultKMS {
			name += ", vault-kms"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, c := range Checks() {
				t.Run(string(c.ID), func(t *testing.T) {
					t.Parallel() // SP-AUDIT-001 waits AuditWait for its canary
					f := richFake(t, vaultKMS)
					f.caps = c.Needs
					r := Run(ctx, f, []Check{c}, Options{}).Results[0]
					for _, u := range f.usedCapabilities() {
						if !slices.Contains(c.Needs, u) {
							t.Errorf("%s calls the target for %s but declares only %v (result %s: %s)", c.ID, u, c.Needs, r.Status, r.Reason)
						}
					}
					if strings.Contains(r.Reason, "does not offer") {
						t.Errorf("%s: %s", c.ID, r.Reason)
					}
				})
			}
		})
	}
}

func TestNormalizedPolicyComparison(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p53 := intstr.FromInt32(53)
	dns := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}
	web := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	base := networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{web}}},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{dns, web}, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &p53}, {Port: &p53}}},
			{To: []networkingv1.NetworkPolicyPeer{web}},
		},
	}
	same := []func(*networkingv1.NetworkPolicySpec){
		func(s *networkingv1.NetworkPolicySpec) { slices.Reverse(s.PolicyTypes) },
		func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = nil }, // Ingress, and Egress because of the egress rules
		func(s *networkingv1.NetworkPolicySpec) { slices.Reverse(s.Egress) },
		func(s *networkingv1.NetworkPolicySpec) { slices.Reverse(s.Egress[0].To) },
		func(s *networkingv1.NetworkPolicySpec) {
			s.Egress[0].Ports = []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p53}, {Protocol: &udp, Port: &p53}}
		},
	}
	for i, m := range same {
		s := *base.DeepCopy()
		m(&s)
		if !equality.Semantic.DeepEqual(normalized(s), normalized(base)) {
			t.Errorf("variant %d means the same but compares different", i)
		}
	}
	differ := []func(*networkingv1.NetworkPolicySpec){
		func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = s.PolicyTypes[:1] },
		func(s *networkingv1.NetworkPolicySpec) { s.Egress = s.Egress[:1] },
		func(s *networkingv1.NetworkPolicySpec) { s.Egress[0].To = s.Egress[0].To[:1] },
		func(s *networkingv1.NetworkPolicySpec) { s.Ingress[0].From = nil },
		func(s *networkingv1.NetworkPolicySpec) { s.Egress[0].Ports[1].Protocol = &udp },
		func(s *networkingv1.NetworkPolicySpec) {
			s.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		},
	}
	for i, m := range differ {
		s := *base.DeepCopy()
		m(&s)
		if equality.Semantic.DeepEqual(normalized(s), normalized(base)) {
			t.Errorf("variant %d means something else but compares equal", i)
		}
	}
	// The allowance hardening renders survives an API server round trip.
	for _, np := range hardening.DefaultDenyPolicies("x") {
		if !equality.Semantic.DeepEqual(normalized(*np.Spec.DeepCopy()), normalized(np.Spec)) {
			t.Errorf("%s does not equal itself", np.Name)
		}
	}
}
