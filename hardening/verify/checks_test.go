package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

func TestEveryVerifyControlHasOneCheck(t *testing.T) {
	seen := map[string]int{}
	for _, c := range Checks() {
		seen[string(c.ID)]++
		ctl, ok := blueprints.ControlByID(c.ID)
		if !ok {
			t.Errorf("check %s has no control in the catalog", c.ID)
			continue
		}
		if ctl.Where&blueprints.ByVerify == 0 {
			t.Errorf("check %s proves a control the catalog does not mark ByVerify", c.ID)
		}
		if c.Run == nil {
			t.Errorf("check %s has no Run", c.ID)
		}
	}
	for _, ctl := range blueprints.Controls {
		if ctl.Where&blueprints.ByVerify != 0 && seen[string(ctl.ID)] != 1 {
			t.Errorf("control %s (ByVerify) has %d checks, want 1", ctl.ID, seen[string(ctl.ID)])
		}
	}
	// Only checks that create objects and look for them (canaries) may
	// hold the cluster alone; everything else runs concurrently.
	for _, c := range Checks() {
		if want := c.ID == "SP-ENC-001" || c.ID == "SP-AUDIT-001"; c.Exclusive != want {
			t.Errorf("%s Exclusive = %v, want %v", c.ID, c.Exclusive, want)
		}
	}
}

func TestRuleFor(t *testing.T) {
	tests := []struct {
		component, flag, want, got string
		ok                         bool
	}{
		{APIServer, "enable-admission-plugins", "NodeRestriction,PodSecurity", "PodSecurity,NodeRestriction,Priority", true},
		{APIServer, "enable-admission-plugins", "NodeRestriction,PodSecurity", "PodSecurity", false},
		{APIServer, "enable-admission-plugins", "NodeRestriction,PodSecurity", "NodeRestriction,PodSecurity,AlwaysAdmit", false},
		{APIServer, "authorization-mode", "Node,RBAC", "Node,RBAC,Webhook", true},
		{APIServer, "authorization-mode", "Node,RBAC", "RBAC", false},
		{APIServer, "authorization-mode", "Node,RBAC", "AlwaysAllow,Node,RBAC", false},
		{APIServer, "tls-cipher-suites", "x", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", true},
		{APIServer, "tls-cipher-suites", "x", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false},
		{Etcd, "cipher-suites", "x", "", false},
		{APIServer, "tls-min-version", "VersionTLS12", "VersionTLS13", true},
		{APIServer, "tls-min-version", "VersionTLS12", "VersionTLS11", false},
		{Etcd, "tls-min-version", "TLS1.2", "TLS1.3", true},
		{APIServer, "bind-address", "127.0.0.1", "10.1.2.3", true},
		{APIServer, "bind-address", "127.0.0.1", "0.0.0.0", false},
		{APIServer, "bind-address", "127.0.0.1", "::", false},
		{APIServer, "bind-address", "127.0.0.1", "203.0.113.5", false},
		{APIServer, "bind-address", "0.0.0.0", "0.0.0.0", true}, // public endpoint
		{ControllerManager, "bind-address", "127.0.0.1", "10.1.2.3", false},
		{Scheduler, "bind-address", "127.0.0.1", "::1", true},
		{Etcd, "listen-client-urls", "https://127.0.0.1:1", "https://127.0.0.1:2379,https://[::1]:2379", true},
		{Etcd, "listen-client-urls", "https://127.0.0.1:1", "https://0.0.0.0:2379", false},
		{Etcd, "listen-peer-urls", "https://127.0.0.1:1", "http://127.0.0.1:2380", false},
		{APIServer, "etcd-servers", "https://127.0.0.1:1", "http://127.0.0.1:2379", false},
		{APIServer, "audit-log-maxage", "30", "30", true},
		{APIServer, "audit-log-maxage", "30", "7", false},
		{APIServer, "audit-log-maxage", "90", "30", false}, // the blueprint asks for more
		{APIServer, "audit-log-maxage", "5", "29", false},  // the floor applies even below it
		{APIServer, "audit-log-maxsize", "100", "200", true},
		{APIServer, "audit-log-maxbackup", "10", "x", false},
		{APIServer, "request-timeout", "60s", "1m0s", true},
		{APIServer, "request-timeout", "60s", "30s", true},
		{APIServer, "request-timeout", "60s", "10m", false},
		{ControllerManager, "terminated-pod-gc-threshold", "1000", "50", true},
		{ControllerManager, "terminated-pod-gc-threshold", "1000", "0", false},
		{APIServer, "anonymous-auth", "false", "FALSE", true},
		{APIServer, "anonymous-auth", "false", "true", false},
		{APIServer, "client-ca-file", "/c/pki/ca.crt", "/c/pki/other.crt", false},
	}
	for _, tt := range tests {
		r := ruleFor(tt.component, hardening.Flag{Name: tt.flag, Value: tt.want})
		if got := r.ok(tt.got); got != tt.ok {
			t.Errorf("%s --%s want %q: ok(%q) = %v, want %v", tt.component, tt.flag, tt.want, tt.got, got, tt.ok)
		}
		if r.want == "" {
			t.Errorf("--%s: rule has no description for evidence", tt.flag)
		}
	}
}

func TestCompareFlagsMissingAndDefaults(t *testing.T) {
	want := hardening.Flags{{Name: "service-account-lookup", Value: "true"}, {Name: "anonymous-auth", Value: "false"}, {Name: "auto-tls", Value: "false"}}
	bad, good := compareFlags(APIServer, map[string]string{}, want)
	if len(good) != 2 || len(bad) != 1 || bad[0].Field != "--anonymous-auth" || bad[0].Got != "(not set)" {
		t.Errorf("missing flags: bad=%v good=%v; want only --anonymous-auth missing (others have secure defaults)", bad, good)
	}
	bad, _ = compareFlags(APIServer, map[string]string{"service-account-lookup": "false"}, want[:1])
	if len(bad) != 1 || bad[0].Got != "false" || bad[0].Want != "true" || bad[0].Object != APIServer {
		t.Errorf("explicit weak value: %v", bad)
	}
}

// fakeCase runs one check against a weakened fake cluster.
type fakeCase struct {
	name   string
	id     string
	weaken func(*fakeTarget)
	want   Status
	reason string // substring of the reason
}

func runFakeCases(t *testing.T, base func(*testing.T) *fakeTarget, cases []fakeCase) {
	t.Helper()
	checks := map[string]Check{}
	for _, c := range Checks() {
		checks[string(c.ID)] = c
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ft := base(t)
			if tc.weaken != nil {
				tc.weaken(ft)
			}
			rep := Run(context.Background(), ft, []Check{checks[tc.id]}, Options{})
			res := rep.Results[0]
			if res.Status != tc.want || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("%s = %s (%s), want %s containing %q; evidence %v", tc.id, res.Status, res.Reason, tc.want, tc.reason, res.Evidence)
			}
			if res.Status == StatusFail || res.Status == StatusWarn {
				if len(res.Evidence) == 0 {
					t.Fatal("a failure without evidence")
				}
				for _, e := range res.Evidence {
					if e.Object == "" || e.Want == "" || e.Got == "" {
						t.Errorf("incomplete evidence %+v", e)
					}
				}
			}
		})
	}
}

func without(names ...string) func(hardening.Flags) hardening.Flags {
	return func(f hardening.Flags) hardening.Flags { return f.Without(names...) }
}

func with(name, value string) func(hardening.Flags) hardening.Flags {
	return func(f hardening.Flags) hardening.Flags { return f.With(name, value) }
}

func TestFlagAndSocketChecks(t *testing.T) {
	runFakeCases(t, hardenedFake, []fakeCase{
		{name: "kcm hardened", id: "SP-KCM-001", want: StatusPass},
		{name: "kcm without per-controller credentials", id: "SP-KCM-001", want: StatusFail, reason: "--use-service-account-credentials",
			weaken: func(f *fakeTarget) { f.tweak(ControllerManager, with("use-service-account-credentials", "false")) }},
		{name: "kcm listening everywhere", id: "SP-KCM-001", want: StatusFail, reason: "listens on 0.0.0.0:10257",
			weaken: func(f *fakeTarget) { f.listen(ControllerManager, "0.0.0.0:10257") }},
		{name: "kcm not running", id: "SP-KCM-001", want: StatusError, reason: "not running",
			weaken: func(f *fakeTarget) { delete(f.comps, ControllerManager) }},
		{name: "scheduler hardened", id: "SP-SCHED-001", want: StatusPass},
		{name: "scheduler bind-address", id: "SP-SCHED-001", want: StatusFail, reason: "--bind-address",
			weaken: func(f *fakeTarget) { f.tweak(Scheduler, with("bind-address", "0.0.0.0")) }},
		{name: "scheduler on a private address", id: "SP-SCHED-001", want: StatusFail, reason: "10.0.0.9",
			weaken: func(f *fakeTarget) { f.listen(Scheduler, "127.0.0.1:10259", "10.0.0.9:10259") }},
		{name: "etcd listen hardened", id: "SP-ETCD-003", want: StatusPass},
		{name: "etcd client URL on all interfaces", id: "SP-ETCD-003", want: StatusFail, reason: "--listen-client-urls",
			weaken: func(f *fakeTarget) { f.tweak(Etcd, with("listen-client-urls", "https://0.0.0.0:2379")) }},
		{name: "etcd socket on ::", id: "SP-ETCD-003", want: StatusFail, reason: "[::]:2380",
			weaken: func(f *fakeTarget) { f.listen(Etcd, "127.0.0.1:2379", "[::]:2380") }},
		{name: "kubelet and limits hardened", id: "SP-APISRV-008", want: StatusPass},
		{name: "static token file", id: "SP-APISRV-008", want: StatusFail, reason: "--token-auth-file",
			weaken: func(f *fakeTarget) { f.tweak(APIServer, with("token-auth-file", "/c/tokens.csv")) }},
		{name: "no kubelet CA", id: "SP-APISRV-008", want: StatusFail, reason: "--kubelet-certificate-authority is (not set)",
			weaken: func(f *fakeTarget) { f.tweak(APIServer, without("kubelet-certificate-authority")) }},
		{name: "audit retention hardened", id: "SP-AUDIT-002", want: StatusPass},
		{name: "audit retention short", id: "SP-AUDIT-002", want: StatusFail, reason: "--audit-log-maxage is 7, want at least 30",
			weaken: func(f *fakeTarget) { f.tweak(APIServer, with("audit-log-maxage", "7")) }},
		{name: "audit retention below the blueprint", id: "SP-AUDIT-002", want: StatusFail, reason: "want at least 60",
			weaken: func(f *fakeTarget) { n := 60; f.info.Spec.Audit.MaxBackups = &n }},
		{name: "audit off", id: "SP-AUDIT-002", want: StatusSkip, reason: "SP-AUDIT-001 reports it",
			weaken: func(f *fakeTarget) { f.tweak(APIServer, without("audit-log-path")) }},
	})
}

// encConfig renders an EncryptionConfiguration with the given provider
// through hardening, so the parser reads what `up` writes.
func encConfig(t *testing.T, provider string, resources ...string) []byte {
	t.Helper()
	var spec = hardenedFake(t).info.Spec
	spec.EncryptionAtRest.Resources = resources
	data, err := hardening.EncryptionConfig(spec, provider, []hardening.EncryptionKey{{Name: "k1", Secret: make(hardening.Secret, 32)}},
		&hardening.KMS{Name: "vault", Endpoint: "unix:///x.sock"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func withEncryption(t *testing.T, provider string, resources ...string) func(*fakeTarget) {
	return func(f *fakeTarget) { f.files[f.info.Files.EncryptionConfig] = encConfig(t, provider, resources...) }
}

func TestEncryptionChecks(t *testing.T) {
	const sb = "k8s:enc:secretbox:v1:k1:"
	base := func(t *testing.T) *fakeTarget {
		f := hardenedFake(t)
		f.files[f.info.Files.EncryptionConfig] = encConfig(t, "secretbox", "secrets")
		f.etcd["/registry/secrets/default/a"] = []byte(sb + "\x01\x02")
		f.etcd["/registry/secrets/kube-system/b"] = []byte(sb + "\x03")
		f.etcd["/registry/configmaps/default/c"] = []byte("k8s\x00plain")
		return f
	}
	runFakeCases(t, base, []fakeCase{
		{name: "provider secretbox", id: "SP-ENC-002", want: StatusPass, reason: "secretbox"},
		{name: "provider kms v2", id: "SP-ENC-002", want: StatusPass, reason: "kms v2 (vault)", weaken: withEncryption(t, "vault-kms", "secrets")},
		{name: "provider aesgcm", id: "SP-ENC-002", want: StatusWarn, reason: "aesgcm", weaken: withEncryption(t, "aesgcm", "secrets")},
		{name: "provider aescbc", id: "SP-ENC-002", want: StatusFail, reason: "written with aescbc", weaken: withEncryption(t, "aescbc", "secrets")},
		{name: "identity first", id: "SP-ENC-002", want: StatusFail, reason: "written with identity", weaken: func(f *fakeTarget) {
			f.files[f.info.Files.EncryptionConfig] = []byte("resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n  - secretbox: {keys: [{name: k, secret: c2VjcmV0}]}\n")
		}},
		{name: "encryption off", id: "SP-ENC-002", want: StatusSkip, reason: "SP-ENC-001 reports it",
			weaken: func(f *fakeTarget) { f.tweak(APIServer, without("encryption-provider-config")) }},
		{name: "stored secrets encrypted", id: "SP-ENC-003", want: StatusPass, reason: "all 2 stored objects"},
		{name: "a legacy plaintext secret", id: "SP-ENC-003", want: StatusFail, reason: "/registry/secrets/default/old is stored unencrypted",
			weaken: func(f *fakeTarget) { f.etcd["/registry/secrets/default/old"] = []byte("k8s\x00\x0a\x0fplain") }},
		{name: "a secret under an old provider", id: "SP-ENC-003", want: StatusWarn, reason: "another provider",
			weaken: func(f *fakeTarget) { f.etcd["/registry/secrets/default/old"] = []byte("k8s:enc:aescbc:v1:k0:xx") }},
		{name: "blueprint resource not configured", id: "SP-ENC-003", want: StatusFail, reason: "configmaps are not in the EncryptionConfiguration",
			weaken: func(f *fakeTarget) { f.info.Spec.EncryptionAtRest.Resources = []string{"secrets", "configmaps"} }},
		{name: "configmaps configured, stored plaintext", id: "SP-ENC-003", want: StatusFail, reason: "/registry/configmaps/default/c",
			weaken: func(f *fakeTarget) {
				f.info.Spec.EncryptionAtRest.Resources = []string{"secrets", "configmaps"}
				withEncryption(t, "secretbox", "secrets", "configmaps")(f)
			}},
		{name: "secrets not listed", id: "SP-ENC-003", want: StatusFail, reason: "secrets are not in",
			weaken: withEncryption(t, "secretbox", "configmaps")},
	})
}

func TestCoveredByAndEtcdPath(t *testing.T) {
	cover := []struct {
		pattern, res string
		want         bool
	}{
		{"secrets", "secrets", true}, {"*.*", "deployments.apps", true}, {"*.", "secrets", true},
		{"*.", "deployments.apps", false}, {"*.apps", "deployments.apps", true}, {"*.apps", "secrets", false},
		{"configmaps", "secrets", false},
	}
	for _, c := range cover {
		if got := coveredBy(c.pattern, c.res); got != c.want {
			t.Errorf("coveredBy(%q, %q) = %v", c.pattern, c.res, got)
		}
	}
	paths := map[string]string{
		"secrets": "/registry/secrets/", "services": "/registry/services/specs/", "deployments.apps": "/registry/deployments/",
		"ingresses.networking.k8s.io": "/registry/ingresses/", "widgets.example.com": "/registry/example.com/widgets/",
	}
	for res, want := range paths {
		if got, ok := etcdPath("/registry", res); !ok || got != want {
			t.Errorf("etcdPath(%q) = %q, %v; want %q", res, got, ok, want)
		}
	}
	if _, ok := etcdPath("/registry", "*.*"); ok {
		t.Error("a wildcard has an etcd path")
	}
	raws := map[string]string{
		"k8s:enc:kms:v2:vault:\x00\x01secret": "k8s:enc:kms:v2:vault:",
		"k8s:enc:secretbox:v1:key-1:\xff":     "k8s:enc:secretbox:v1:key-1:",
		"k8s\x00\x0a\x02v1":                   `plaintext protobuf (k8s\x00…)`,
		`{"kind":"Secret"}`:                   "plaintext JSON",
	}
	for raw, want := range raws {
		if got := describeRaw([]byte(raw)); got != want {
			t.Errorf("describeRaw(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestScanAudit(t *testing.T) {
	value := []byte("secprov-canary-0123")
	leaks := [][]byte{value, []byte(base64.StdEncoding.EncodeToString(value))}
	event := func(verb, res, name, body string) string {
		e := map[string]any{"verb": verb, "stage": "ResponseComplete", "objectRef": map[string]string{"resource": res, "namespace": "default", "name": name}}
		if body != "" {
			e["requestObject"] = json.RawMessage(body)
		}
		b, _ := json.Marshal(e)
		return string(b)
	}
	tests := []struct {
		name       string
		log        string
		found, bad bool
	}{
		{"logged", event("get", "configmaps", "x", "") + "\n" + event("create", "secrets", "canary", ""), true, false},
		{"not logged", event("create", "secrets", "other", ""), false, false},
		{"body logged", event("create", "secrets", "canary", `{"data":{"canary":"`+string(leaks[1])+`"}}`), true, true},
		{"other secret's body", event("update", "secrets", "x", `{"kind":"Secret"}`) + "\n" + event("create", "secrets", "canary", ""), true, true},
		{"value in any line", `{"weird":"` + string(value) + `"}` + "\n" + event("create", "secrets", "canary", ""), true, true},
		{"garbage lines", "not json\n\n" + event("create", "secrets", "canary", ""), true, false},
	}
	for _, tt := range tests {
		var r findings
		found, _ := scanAudit([]byte(tt.log), "default", "canary", leaks, "/audit.log", &r)
		if found != tt.found || r.failed() != tt.bad {
			t.Errorf("%s: found=%v failed=%v (%v), want %v %v", tt.name, found, r.failed(), r.fails, tt.found, tt.bad)
		}
		for _, e := range r.bad {
			if strings.Contains(e.String(), string(value)) || strings.Contains(e.String(), string(leaks[1])) {
				t.Errorf("%s: evidence repeats the secret value: %v", tt.name, e)
			}
		}
	}
}

// objectsFake is the hardened fake plus the in-cluster objects hardening
// renders and Kubernetes' own cluster-admin binding.
func objectsFake(t *testing.T) *fakeTarget {
	f := hardenedFake(t)
	objs, err := hardening.Objects(f.info.Spec, f.info.Rendering)
	if err != nil {
		t.Fatal(err)
	}
	var rt []runtime.Object
	for _, o := range objs {
		rt = append(rt, o.Object)
	}
	rt = append(rt,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"*"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects: []rbacv1.Subject{{Kind: "Group", Name: MastersGroup}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "system:public-info-viewer"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:unauthenticated"}}},
	)
	f.client = fake.NewClientset(rt...)
	return f
}

func create(t *testing.T, f *fakeTarget, objs ...runtime.Object) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			_, err = f.client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = f.client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = f.client.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = f.client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func crb(name, role string, s ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: role}, Subjects: s}
}

func TestRBACChecks(t *testing.T) {
	group := func(n string) rbacv1.Subject { return rbacv1.Subject{Kind: "Group", Name: n} }
	runFakeCases(t, objectsFake, []fakeCase{
		{name: "hardened", id: "SP-RBAC-001", want: StatusPass, reason: "2 bindings"},
		{name: "unlisted group", id: "SP-RBAC-001", want: StatusFail, reason: "Group contractors",
			weaken: func(f *fakeTarget) { create(t, f, crb("extra", "cluster-admin", group("contractors"))) }},
		{name: "all authenticated users", id: "SP-RBAC-001", want: StatusFail, reason: "Group system:authenticated",
			weaken: func(f *fakeTarget) { create(t, f, crb("oops", "cluster-admin", group("system:authenticated"))) }},
		{name: "a user named like the admin group", id: "SP-RBAC-001", want: StatusFail, reason: "User platform-admins",
			weaken: func(f *fakeTarget) {
				create(t, f, crb("u", "cluster-admin", rbacv1.Subject{Kind: "User", Name: "platform-admins"}))
			}},
		{name: "the blueprint's admin group again", id: "SP-RBAC-001", want: StatusPass, reason: "3 bindings",
			weaken: func(f *fakeTarget) { create(t, f, crb("dup", "cluster-admin", group("platform-admins"))) }},
		{name: "a custom wildcard role", id: "SP-RBAC-001", want: StatusFail, reason: "god-mode",
			weaken: func(f *fakeTarget) {
				create(t, f, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "god-mode"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"*"}}}},
					crb("g", "god-mode", rbacv1.Subject{Kind: "ServiceAccount", Namespace: "storefront", Name: "ci"}))
			}},
		{name: "a namespaced wildcard role", id: "SP-RBAC-001", want: StatusFail, reason: "RoleBinding/payments/ns-admin gives all",
			weaken: func(f *fakeTarget) {
				create(t, f, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: "payments"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}},
					&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ns-admin", Namespace: "payments"}, RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "all"},
						Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default"}}})
			}},
		{name: "a listed service account admin", id: "SP-RBAC-001", want: StatusPass, weaken: func(f *fakeTarget) {
			f.info.Spec.RBAC.Admins = append(f.info.Spec.RBAC.Admins, "serviceaccount:payments:deployer")
			create(t, f, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "payments"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer"}}})
		}},
		{name: "the same service account name elsewhere", id: "SP-RBAC-001", want: StatusFail, reason: "ServiceAccount storefront/deployer", weaken: func(f *fakeTarget) {
			f.info.Spec.RBAC.Admins = append(f.info.Spec.RBAC.Admins, "serviceaccount:payments:deployer")
			create(t, f, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "storefront"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer"}}})
		}},
		{name: "automount hardened", id: "SP-RBAC-002", want: StatusPass},
		{name: "automount re-enabled", id: "SP-RBAC-002", want: StatusFail, reason: "pods in storefront get a token", weaken: func(f *fakeTarget) {
			yes := true
			_, err := f.client.CoreV1().ServiceAccounts("storefront").Update(context.Background(),
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "storefront"}, AutomountServiceAccountToken: &yes}, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{name: "automount unset", id: "SP-RBAC-002", want: StatusFail, reason: "payments", weaken: func(f *fakeTarget) {
			_, err := f.client.CoreV1().ServiceAccounts("payments").Update(context.Background(),
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "payments"}}, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}},
	})
}

func TestNetworkPolicyCheck(t *testing.T) {
	ctx := context.Background()
	update := func(ns, name string, mutate func(*networkingv1.NetworkPolicySpec)) func(*fakeTarget) {
		return func(f *fakeTarget) {
			np, err := f.client.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			mutate(&np.Spec)
			if _, err := f.client.NetworkingV1().NetworkPolicies(ns).Update(ctx, np, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	remove := func(ns, name string) func(*fakeTarget) {
		return func(f *fakeTarget) {
			if err := f.client.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	runFakeCases(t, objectsFake, []fakeCase{
		{name: "hardened", id: "SP-NET-002", want: StatusPass, reason: "in place as rendered in default, storefront, payments"},
		{name: "default deny deleted", id: "SP-NET-002", want: StatusFail, reason: "namespace payments has no default-deny",
			weaken: remove("payments", hardening.DefaultDenyPolicy)},
		{name: "default deny under another name", id: "SP-NET-002", want: StatusPass, weaken: func(f *fakeTarget) {
			remove("payments", hardening.DefaultDenyPolicy)(f)
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-all", Namespace: "payments"},
				Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}}}
			if _, err := f.client.NetworkingV1().NetworkPolicies("payments").Create(ctx, np, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "default deny narrowed to some pods", id: "SP-NET-002", want: StatusFail, reason: "default/secprov-default-deny differs from what hardening renders: selects app=x",
			weaken: update("default", hardening.DefaultDenyPolicy, func(s *networkingv1.NetworkPolicySpec) {
				s.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
			})},
		{name: "default deny ingress only", id: "SP-NET-002", want: StatusFail, reason: "storefront/secprov-default-deny differs",
			weaken: update("storefront", hardening.DefaultDenyPolicy, func(s *networkingv1.NetworkPolicySpec) {
				s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			})},
		{name: "default deny with an allow rule", id: "SP-NET-002", want: StatusFail, reason: "allows ingress from every peer",
			weaken: update("storefront", hardening.DefaultDenyPolicy, func(s *networkingv1.NetworkPolicySpec) {
				s.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			})},
		{name: "dns allowance widened", id: "SP-NET-002", want: StatusFail, reason: "allows egress to every peer",
			weaken: update("payments", hardening.AllowDNSPolicy, func(s *networkingv1.NetworkPolicySpec) {
				s.Egress[0].To = nil
				s.Egress = append(s.Egress, networkingv1.NetworkPolicyEgressRule{})
			})},
		{name: "dns allowance on another port", id: "SP-NET-002", want: StatusFail, reason: "payments/secprov-allow-dns differs",
			weaken: update("payments", hardening.AllowDNSPolicy, func(s *networkingv1.NetworkPolicySpec) {
				p := intstr.FromInt32(5353)
				s.Egress[0].Ports[1].Port = &p
			})},
		{name: "dns allowance reordered", id: "SP-NET-002", want: StatusPass,
			weaken: update("payments", hardening.AllowDNSPolicy, func(s *networkingv1.NetworkPolicySpec) { slices.Reverse(s.Egress[0].Ports) })},
		{name: "dns allowance without policy types", id: "SP-NET-002", want: StatusFail, reason: "types [Ingress Egress]",
			// No types with an egress rule means Ingress and Egress: the
			// policy now also isolates ingress, which is not what is rendered.
			weaken: update("payments", hardening.AllowDNSPolicy, func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = nil })},
		{name: "dns allowance missing", id: "SP-NET-002", want: StatusWarn, reason: "may not send egress to namespace kube-system pods k8s-app=kube-dns on UDP/53, TCP/53",
			weaken: remove("default", hardening.AllowDNSPolicy)},
		{name: "blueprint turns default deny off", id: "SP-NET-002", want: StatusFail, reason: "has no default-deny", weaken: func(f *fakeTarget) {
			off := false
			f.info.Spec.Network.DefaultDeny = &off
			for _, ns := range hardening.WorkloadNamespaces(f.info.Spec) {
				remove(ns, hardening.DefaultDenyPolicy)(f)
				remove(ns, hardening.AllowDNSPolicy)(f)
			}
		}},
	})
}

func TestAdmissionConfigJudgement(t *testing.T) {
	spec := hardenedFake(t).info.Spec
	workload := hardening.WorkloadNamespaces(spec)
	tests := []struct {
		name   string
		mutate func(*v1alpha1.Spec)
		fail   bool
	}{
		{"hardened", func(*v1alpha1.Spec) {}, false},
		{"baseline default", func(s *v1alpha1.Spec) { s.PodSecurity.Enforce = "baseline" }, true},
		{"workload namespace exempt", func(s *v1alpha1.Spec) { s.PodSecurity.ExemptNamespaces = []string{"kube-system", "payments"} }, true},
	}
	for _, tt := range tests {
		s := spec
		tt.mutate(&s)
		data, err := hardening.AdmissionConfig(s)
		if err != nil {
			t.Fatal(err)
		}
		f := hardenedFake(t)
		f.files["/adm.yaml"] = data
		var r findings
		judgeAdmissionConfig(context.Background(), f, &r, "/adm.yaml", workload)
		if r.failed() != tt.fail {
			t.Errorf("%s: failed = %v (%v), want %v", tt.name, r.failed(), r.fails, tt.fail)
		}
	}
	var r findings
	f := hardenedFake(t)
	f.files["/adm.yaml"] = []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins: []\n")
	judgeAdmissionConfig(context.Background(), f, &r, "/adm.yaml", workload)
	if !r.failed() {
		t.Error("an admission config without PodSecurity passes")
	}
}

// --- certificates and file modes ------------------------------------------

type certOpts struct {
	key       crypto.Signer
	notBefore time.Time
	notAfter  time.Time
}

func newCert(t *testing.T, cn string, o certOpts) []byte {
	t.Helper()
	if o.key == nil {
		o.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: o.notBefore, NotAfter: o.notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, o.key.Public(), o.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func publicPEM(t *testing.T, k crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func kubeconfigWith(t *testing.T, cert []byte) []byte {
	data, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:  map[string]*clientcmdapi.Cluster{"c": {Server: "https://127.0.0.1:6443", CertificateAuthorityData: cert}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{"u": {ClientCertificateData: cert, ClientKeyData: []byte("unused")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pkiFake fills every certificate the hardened flags name with a valid
// P-256 certificate, the service-account key with RSA-2048.
func pkiFake(t *testing.T) *fakeTarget {
	f := hardenedFake(t)
	good := newCert(t, "good", certOpts{})
	for path, kind := range controlPlaneFiles(context.Background(), f, &findings{}) {
		switch kind {
		case kindCert:
			f.files[path] = good
		case kindKubeconfig:
			f.files[path] = kubeconfigWith(t, good)
		}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.files[f.info.Files.ServiceAccountPub] = publicPEM(t, rsaKey.Public())
	return f
}

func TestCertificateCheck(t *testing.T) {
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	now := time.Now()
	set := func(path func(*fakeTarget) string, data func() []byte) func(*fakeTarget) {
		return func(f *fakeTarget) { f.files[path(f)] = data() }
	}
	kubelet := func(f *fakeTarget) string { return f.info.Files.KubeletClientCert }
	runFakeCases(t, pkiFake, []fakeCase{
		{name: "all good", id: "SP-CERT-001", want: StatusPass},
		{name: "RSA-1024 leaf", id: "SP-CERT-001", want: StatusFail, reason: "weak key (RSA 1024)",
			weaken: set(kubelet, func() []byte { return newCert(t, "weak", certOpts{key: rsa1024}) })},
		{name: "P-224 leaf", id: "SP-CERT-001", want: StatusFail, reason: "P-224",
			weaken: set(kubelet, func() []byte { return newCert(t, "small", certOpts{key: p224}) })},
		{name: "expired", id: "SP-CERT-001", want: StatusFail, reason: "expired on",
			weaken: set(kubelet, func() []byte {
				return newCert(t, "old", certOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)})
			})},
		{name: "not yet valid", id: "SP-CERT-001", want: StatusFail, reason: "not valid yet",
			weaken: set(kubelet, func() []byte { return newCert(t, "future", certOpts{notBefore: now.Add(time.Hour)}) })},
		{name: "expiring in 10 days", id: "SP-CERT-001", want: StatusWarn, reason: "run secprov up to renew",
			weaken: set(kubelet, func() []byte { return newCert(t, "soon", certOpts{notAfter: now.Add(10 * 24 * time.Hour)}) })},
		{name: "weak cert inside a kubeconfig", id: "SP-CERT-001", want: StatusFail, reason: "kube-scheduler.kubeconfig",
			weaken: set(func(f *fakeTarget) string { return f.info.Files.SchedulerKubeconfig },
				func() []byte { return kubeconfigWith(t, newCert(t, "weak", certOpts{key: rsa1024})) })},
		{name: "weak service-account key", id: "SP-CERT-001", want: StatusFail, reason: "sa.pub holds a weak key (RSA 1024)",
			weaken: set(func(f *fakeTarget) string { return f.info.Files.ServiceAccountPub }, func() []byte { return publicPEM(t, rsa1024.Public()) })},
		{name: "a flag names another certificate", id: "SP-CERT-001", want: StatusFail, reason: "/elsewhere/tls.crt",
			weaken: func(f *fakeTarget) {
				f.tweak(APIServer, with("tls-cert-file", "/elsewhere/tls.crt"))
				f.files["/elsewhere/tls.crt"] = newCert(t, "weak", certOpts{key: rsa1024})
			}},
	})
}

func TestFileModeCheck(t *testing.T) {
	base := func(t *testing.T) *fakeTarget {
		f := hardenedFake(t)
		f.info.PrivateFiles = []string{"/c/admin.kubeconfig", "/c/pki/etcd-ca.key"}
		for path, kind := range controlPlaneFiles(context.Background(), f, &findings{}) {
			if kind == kindCert || kind == kindPublicKey {
				f.modes[path] = 0o644 // certificates may be public
			} else {
				f.modes[path] = 0o600
			}
		}
		for _, d := range []string{"/c", "/c/pki", "/c/config", "/c/logs", "/c/etcd"} {
			f.modes[d] = fs.ModeDir | 0o700
		}
		return f
	}
	chmod := func(path string, m fs.FileMode) func(*fakeTarget) { return func(f *fakeTarget) { f.modes[path] = m } }
	runFakeCases(t, base, []fakeCase{
		{name: "private", id: "SP-FILE-001", want: StatusPass},
		{name: "key world-readable", id: "SP-FILE-001", want: StatusFail, reason: "/c/pki/sa.key is 0644", weaken: chmod("/c/pki/sa.key", 0o644)},
		{name: "CA key group-readable", id: "SP-FILE-001", want: StatusFail, reason: "etcd-ca.key is 0640", weaken: chmod("/c/pki/etcd-ca.key", 0o640)},
		{name: "admin kubeconfig", id: "SP-FILE-001", want: StatusFail, reason: "admin.kubeconfig", weaken: chmod("/c/admin.kubeconfig", 0o604)},
		{name: "encryption config", id: "SP-FILE-001", want: StatusFail, reason: "encryption.yaml", weaken: chmod("/c/config/encryption.yaml", 0o644)},
		{name: "pki dir", id: "SP-FILE-001", want: StatusFail, reason: "directory /c/pki is 0755", weaken: chmod("/c/pki", fs.ModeDir|0o755)},
		{name: "etcd data dir", id: "SP-FILE-001", want: StatusFail, reason: "directory /c/etcd is 0750", weaken: chmod("/c/etcd", fs.ModeDir|0o750)},
		{name: "stricter is fine", id: "SP-FILE-001", want: StatusPass, weaken: chmod("/c/pki/sa.key", 0o400)},
		{name: "certificate public", id: "SP-FILE-001", want: StatusPass, weaken: chmod("/c/pki/ca.crt", 0o644)},
	})
}

// --- probes against real TLS servers ---------------------------------------

// tlsServer starts an HTTPS server with cfg adjusted by mutate and returns
// its address and a client config trusting it.
func tlsServer(t *testing.T, mutate func(*tls.Config)) (string, *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	srv.TLS = &tls.Config{}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	mutate(srv.TLS)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	host, _, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return srv.Listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: host}
}

func TestTLSProbes(t *testing.T) {
	ctx := context.Background()
	tls11 := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		return c
	}
	weak := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.MinVersion, c.MaxVersion, c.CipherSuites = tls.VersionTLS12, tls.VersionTLS12, weakSuites()
		return c
	}
	strongIDs := func() []uint16 {
		var ids []uint16
		for _, s := range tls.CipherSuites() {
			if slices.Contains(hardening.StrongCipherSuites, s.Name) {
				ids = append(ids, s.ID)
			}
		}
		return ids
	}
	tests := []struct {
		name     string
		server   func(*tls.Config)
		client   func(*tls.Config) *tls.Config
		accepted bool
	}{
		{"TLS 1.1 allowed by server", func(c *tls.Config) { c.MinVersion = tls.VersionTLS10 }, tls11, true},
		{"TLS 1.2 minimum", func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }, tls11, false},
		{"CBC suite allowed", func(c *tls.Config) {
			c.CipherSuites = append(strongIDs(), tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA)
		}, weak, true},
		{"strong suites only", func(c *tls.Config) { c.CipherSuites = strongIDs() }, weak, false},
		{"client certificate required (TLS 1.3 alert on read)", func(c *tls.Config) { c.ClientAuth = tls.RequireAndVerifyClientCert }, func(c *tls.Config) *tls.Config { return c }, false},
		{"client certificate required (TLS 1.2 handshake)", func(c *tls.Config) { c.ClientAuth = tls.RequireAndVerifyClientCert; c.MaxVersion = tls.VersionTLS12 }, func(c *tls.Config) *tls.Config { return c }, false},
		{"no client certificate needed", func(*tls.Config) {}, func(c *tls.Config) *tls.Config { return c }, true},
	}
	for _, tt := range tests {
		addr, client := tlsServer(t, tt.server)
		accepted, tlsErr, err := tlsProbe(ctx, addr, tt.client(client))
		if err != nil {
			t.Errorf("%s: probe could not tell: %v", tt.name, err)
			continue
		}
		if accepted != tt.accepted {
			t.Errorf("%s: accepted = %v (%v), want %v", tt.name, accepted, tlsErr, tt.accepted)
		}
	}
	// Nothing listening is "cannot tell", never "refused".
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, _, err := tlsProbe(ctx, addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("a closed port was judged, not reported as unknown")
	}
}

func TestWeakSuites(t *testing.T) {
	ws := weakSuites()
	if len(ws) == 0 {
		t.Fatal("no weak suites to offer")
	}
	for _, id := range ws {
		if slices.Contains(hardening.StrongCipherSuites, tls.CipherSuiteName(id)) {
			t.Errorf("strong suite %s offered as weak", tls.CipherSuiteName(id))
		}
	}
}

func TestVerifyJWT(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"x"}`)) + "." + enc.EncodeToString([]byte(`{"iss":"https://kubernetes.default.svc.cluster.local"}`))
	sum := sha256.Sum256([]byte(input))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	token := input + "." + enc.EncodeToString(sig)
	h, c, in, s, err := splitJWT(token)
	if err != nil || h.Alg != "RS256" || c.Issuer != hardening.ServiceAccountIssuer || in != input {
		t.Fatalf("splitJWT = %+v %+v %v", h, c, err)
	}
	if err := verifyJWT(h.Alg, in, s, publicPEM(t, key.Public())); err != nil {
		t.Errorf("signature of the right key: %v", err)
	}
	if err := verifyJWT(h.Alg, in, s, publicPEM(t, other.Public())); err == nil {
		t.Error("signature verified with the wrong key")
	}
	if err := verifyJWT(h.Alg, in, s, append(publicPEM(t, other.Public()), publicPEM(t, key.Public())...)); err != nil {
		t.Errorf("key bundle: %v", err)
	}
	if _, _, _, _, err := splitJWT("a.b"); err == nil {
		t.Error("a two-part token parsed")
	}
}

// TestRenderedFilesMustEqualTheirRender: a file the API server reads that
// was changed out of band fails its control's check, naming the file,
// even when the change is one the rest of the check cannot see (the
// running API server keeps the old content until its next start).
func TestRenderedFilesMustEqualTheirRender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		render func(v1alpha1.Spec) ([]byte, error)
	}{
		{"audit policy", hardening.AuditPolicy},
		{"admission configuration", hardening.AdmissionConfig},
	} {
		f := hardenedFake(t)
		good, err := tc.render(f.info.Spec)
		if err != nil {
			t.Fatal(err)
		}
		const path = "/c/config/file.yaml"
		for _, c := range []struct {
			data []byte
			fail bool
		}{
			{good, false},
			{append(append([]byte{}, good...), "# edited\n"...), true},
			{[]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n"), true},
		} {
			f.files[path] = c.data
			var r findings
			judgeRendered(context.Background(), f, &r, path, tc.render)
			if r.failed() != c.fail {
				t.Errorf("%s %q: failed = %v, want %v", tc.name, c.data[len(c.data)-min(12, len(c.data)):], r.failed(), c.fail)
			}
			if c.fail && (len(r.fails) == 0 || !strings.Contains(r.fails[0], path)) {
				t.Errorf("%s: the failure does not name %s: %v", tc.name, path, r.fails)
			}
		}
		delete(f.files, path)
		var r findings
		judgeRendered(context.Background(), f, &r, path, tc.render)
		if !r.failed() {
			t.Errorf("%s: a missing file passes", tc.name)
		}
	}
}
