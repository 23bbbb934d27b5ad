package proc_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
)

const kubeVersion = "v1.37.2"

func kubeBinaries(t *testing.T) (apiserver, controllerManager, scheduler string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts a real control plane (Kubernetes %s): skipped with -short", kubeVersion)
	}
	cache, err := paths.CacheDir()
	if err != nil {
		t.Skipf("no cache directory to find Kubernetes in: %v", err)
	}
	dir := filepath.Join(cache, "tools", "kubernetes", kubeVersion)
	bins := []string{filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "kube-controller-manager"), filepath.Join(dir, "kube-scheduler")}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("Kubernetes %s binaries not installed (run secprov tools install): %v", kubeVersion, err)
		}
	}
	return bins[0], bins[1], bins[2]
}

func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestControlPlaneWithPKI runs etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler as detached processes with a PKI from package pki — the
// local provider's set-up in miniature — and proves each identity does what
// the PKI promises: the admin certificate has no rights until an RBAC binding
// made with the super-admin certificate grants them, service-account tokens
// signed with the SA key authenticate, the front-proxy CA is honoured, and
// the controller-manager and scheduler authenticate as themselves.
func TestControlPlaneWithPKI(t *testing.T) {
	apiserverBin, cmBin, schedBin := kubeBinaries(t)
	etcdBin := etcdBinary(t)
	root := t.TempDir()
	b, err := pki.Ensure(filepath.Join(root, "pki"), pki.Options{ClusterName: "cp", ServiceCIDR: "10.96.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	_, etcdURL, _ := startEtcd(t, etcdBin, b, root)

	ports, err := proc.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	api := proc.Spec{
		Name: "kube-apiserver", Path: apiserverBin,
		PidFile: filepath.Join(root, "kube-apiserver.pid"), LogFile: filepath.Join(root, "kube-apiserver.log"),
		Args: []string{
			"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[0]),
			// A loopback advertise address needs the endpoint reconciler off.
			"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
			"--etcd-servers=" + etcdURL, "--etcd-cafile=" + b.EtcdCACert,
			"--etcd-certfile=" + b.APIServerEtcdClientCert, "--etcd-keyfile=" + b.APIServerEtcdClientKey,
			"--tls-cert-file=" + b.APIServerCert, "--tls-private-key-file=" + b.APIServerKey,
			"--tls-min-version=VersionTLS12",
			"--client-ca-file=" + b.CACert, "--anonymous-auth=false",
			"--authorization-mode=Node,RBAC",
			"--service-cluster-ip-range=10.96.0.0/12",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + b.ServiceAccountPub,
			"--service-account-signing-key-file=" + b.ServiceAccountKey,
			"--kubelet-client-certificate=" + b.APIServerKubeletClientCert, "--kubelet-client-key=" + b.APIServerKubeletClientKey,
			"--proxy-client-cert-file=" + b.FrontProxyClientCert, "--proxy-client-key-file=" + b.FrontProxyClientKey,
			"--requestheader-client-ca-file=" + b.FrontProxyCACert,
			"--requestheader-allowed-names=" + pki.FrontProxyClientUser,
			"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--profiling=false",
		},
	}
	start := time.Now()
	if _, err := proc.Start(api); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopTimed(t, api, 90*time.Second) })

	kc := func(name, cert, key, user string) string {
		p := filepath.Join(root, name+".kubeconfig")
		if err := pki.WriteKubeconfig(p, server, b.CACert, cert, key, user, "cp"); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adminKC := kc("admin", b.AdminCert, b.AdminKey, pki.AdminUser)
	superKC := kc("super-admin", b.SuperAdminCert, b.SuperAdminKey, pki.SuperAdminUser)
	cmKC := kc("controller-manager", b.ControllerManagerCert, b.ControllerManagerKey, pki.ControllerManagerUser)
	schedKC := kc("scheduler", b.SchedulerCert, b.SchedulerKey, pki.SchedulerUser)

	adminTLS := tlsConfig(t, b.CACert, b.AdminCert, b.AdminKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := proc.WaitReady(ctx, proc.HTTPSReady(server+"/readyz", adminTLS), 100*time.Millisecond, api.PidFile); err != nil {
		t.Fatalf("kube-apiserver not ready: %v", err)
	}
	t.Logf("kube-apiserver %s ready %s after start", kubeVersion, time.Since(start).Round(time.Millisecond))

	admin, super := clientFor(t, adminKC), clientFor(t, superKC)
	if _, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("admin before its binding: %v, want Forbidden (it must not be in system:masters)", err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secprov:admins"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: pki.AdminGroup}},
	}
	if _, err := super.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("super-admin creating the admin binding: %v", err)
	}
	if err := proc.WaitReady(ctx, func(ctx context.Context) error {
		_, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		return err
	}, 100*time.Millisecond); err != nil {
		t.Fatalf("admin after its binding: %v", err)
	}

	// Service-account tokens: issued with sa.key, verified with sa.pub.
	sa, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa.Name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	review, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:probe" {
		t.Fatalf("token review: %v %+v, want the service account authenticated", err, review.Status)
	}

	// The front-proxy identity may assert users; the same headers from the
	// admin certificate are ignored.
	for _, tc := range []struct {
		name     string
		cfg      *tls.Config
		wantUser string
	}{
		{"front-proxy client", tlsConfig(t, b.CACert, b.FrontProxyClientCert, b.FrontProxyClientKey), "asserted-user"},
		{"admin with forged headers", adminTLS, pki.AdminUser},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, server+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Remote-User", "asserted-user")
		req.Header.Set("X-Remote-Group", "system:authenticated")
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tc.cfg}}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"username":"`+tc.wantUser+`"`) {
			t.Errorf("%s: server saw %s, want user %s", tc.name, body, tc.wantUser)
		}
	}

	// Controller-manager and scheduler authenticate with their own
	// certificates; each takes its leader lease under its own name.
	certDir := filepath.Join(root, "serving")
	if err := paths.EnsurePrivateDir(certDir); err != nil {
		t.Fatal(err)
	}
	cm := proc.Spec{
		Name: "kube-controller-manager", Path: cmBin,
		PidFile: filepath.Join(root, "kcm.pid"), LogFile: filepath.Join(root, "kcm.log"),
		Args: []string{
			"--kubeconfig=" + cmKC, "--authentication-kubeconfig=" + cmKC, "--authorization-kubeconfig=" + cmKC,
			"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[1]), "--cert-dir=" + certDir,
			"--root-ca-file=" + b.CACert, "--service-account-private-key-file=" + b.ServiceAccountKey,
			"--use-service-account-credentials=true",
			"--cluster-signing-cert-file=" + b.CACert, "--cluster-signing-key-file=" + b.CAKey,
			"--profiling=false",
		},
	}
	sched := proc.Spec{
		Name: "kube-scheduler", Path: schedBin,
		PidFile: filepath.Join(root, "sched.pid"), LogFile: filepath.Join(root, "sched.log"),
		Args: []string{
			"--kubeconfig=" + schedKC, "--authentication-kubeconfig=" + schedKC, "--authorization-kubeconfig=" + schedKC,
			"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]), "--cert-dir=" + certDir,
			"--profiling=false",
		},
	}
	for _, s := range []proc.Spec{cm, sched} {
		start := time.Now()
		if _, err := proc.Start(s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopTimed(t, s, 30*time.Second) })
		port := ports[1]
		if s.Name == "kube-scheduler" {
			port = ports[2]
		}
		// Their serving certificate is self-signed into certDir; trust
		// exactly that one.
		probe := func(ctx context.Context) error {
			pem, err := os.ReadFile(filepath.Join(certDir, s.Name+".crt"))
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pem)
			return proc.HTTPSReady(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), &tls.Config{RootCAs: roots})(ctx)
		}
		if err := proc.WaitReady(ctx, probe, 100*time.Millisecond, s.PidFile, api.PidFile); err != nil {
			t.Fatalf("%s not healthy: %v", s.Name, err)
		}
		t.Logf("%s healthy %s after start", s.Name, time.Since(start).Round(time.Millisecond))
	}
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		var holder string
		err := proc.WaitReady(ctx, func(ctx context.Context) error {
			l, err := admin.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
				return fmt.Errorf("lease %s has no holder", lease)
			}
			holder = *l.Spec.HolderIdentity
			return nil
		}, 200*time.Millisecond)
		if err != nil {
			t.Errorf("%s never took its lease: %v", lease, err)
			continue
		}
		t.Logf("lease %s held by %s", lease, holder)
	}
	// The controller-manager's token controller works: the default
	// ServiceAccount of a new namespace appears.
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := proc.WaitReady(ctx, func(ctx context.Context) error {
		_, err := admin.CoreV1().ServiceAccounts("team-a").Get(ctx, "default", metav1.GetOptions{})
		return err
	}, 200*time.Millisecond, cm.PidFile); err != nil {
		t.Errorf("controller-manager did not create the default ServiceAccount: %v", err)
	}
}

// stopTimed stops a component and reports how long it took to exit.
func stopTimed(t *testing.T, s proc.Spec, grace time.Duration) {
	start := time.Now()
	if err := proc.Stop(context.Background(), s.PidFile, grace); err != nil {
		t.Errorf("stop %s: %v", s.Name, err)
		return
	}
	t.Logf("%s stopped in %s", s.Name, time.Since(start).Round(time.Millisecond))
}
