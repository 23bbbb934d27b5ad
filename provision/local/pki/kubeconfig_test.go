package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestKubeconfigAgainstTLSServer proves a written kubeconfig works through
// client-go against a server that, like kube-apiserver, serves the apiserver
// certificate and requires client certificates from the cluster CA — after
// the PKI directory has been moved away, so the data really is embedded.
func TestKubeconfigAgainstTLSServer(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// Real clock: the TLS stack verifies validity against time.Now.
	b := mustEnsure(t, filepath.Join(root, "pki"), Options{ClusterName: "prod", ServiceCIDR: "10.96.0.0/12"})
	serverCert, err := tls.LoadX509KeyPair(b.APIServerCert, b.APIServerKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(readCert(t, b.CACert))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.TLS.PeerCertificates[0]
		fmt.Fprintf(w, "%s|%s", c.Subject.CommonName, strings.Join(c.Subject.Organization, ","))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	tests := []struct {
		name, user, cert, key, want string
	}{
		{"admin", AdminUser, b.AdminCert, b.AdminKey, "secprov:admin|secprov:admins"},
		{"super-admin", SuperAdminUser, b.SuperAdminCert, b.SuperAdminKey, "secprov:super-admin|system:masters"},
		{"scheduler", SchedulerUser, b.SchedulerCert, b.SchedulerKey, "system:kube-scheduler|"},
	}
	kcs := map[string]string{}
	for _, tc := range tests {
		p := filepath.Join(root, tc.name+".kubeconfig")
		if err := WriteKubeconfig(p, srv.URL, b.CACert, tc.cert, tc.key, tc.user, "prod"); err != nil {
			t.Fatalf("WriteKubeconfig(%s): %v", tc.name, err)
		}
		kcs[tc.name] = p
	}
	if err := os.Rename(b.Dir, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := kcs[tc.name]
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("kubeconfig mode %v (%v), want 0600", fi.Mode().Perm(), err)
			}
			cfg, err := clientcmd.LoadFromFile(p)
			if err != nil {
				t.Fatal(err)
			}
			ctx := cfg.Contexts[cfg.CurrentContext]
			if cfg.CurrentContext != tc.user+"@prod" || ctx == nil || ctx.Cluster != "prod" || ctx.AuthInfo != tc.user {
				t.Fatalf("current context %q = %+v, want %s@prod", cfg.CurrentContext, ctx, tc.user)
			}
			ai, cl := cfg.AuthInfos[tc.user], cfg.Clusters["prod"]
			if ai.ClientCertificate != "" || ai.ClientKey != "" || cl.CertificateAuthority != "" ||
				len(ai.ClientCertificateData) == 0 || len(ai.ClientKeyData) == 0 || len(cl.CertificateAuthorityData) == 0 {
				t.Fatal("kubeconfig refers to files instead of embedding data")
			}

			rc, err := clientcmd.BuildConfigFromFlags("", p)
			if err != nil {
				t.Fatal(err)
			}
			rc.Timeout = 10 * time.Second
			hc, err := rest.HTTPClientFor(rc)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Get(srv.URL + "/whoami")
			if err != nil {
				t.Fatalf("request with kubeconfig: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Errorf("server saw %q, want %q", body, tc.want)
			}
		})
	}
}

func TestWriteKubeconfigErrors(t *testing.T) {
	t.Parallel()
	b := mustEnsure(t, t.TempDir(), opts("prod", t0))
	out := filepath.Join(t.TempDir(), "kc")
	tests := []struct {
		name                           string
		server, ca, cert, key, user, c string
		want                           string
	}{
		{"plain http", "http://127.0.0.1:6443", b.CACert, b.AdminCert, b.AdminKey, "u", "c", "not an https:// URL"},
		{"mismatched pair", "https://127.0.0.1:6443", b.CACert, b.AdminCert, b.SchedulerKey, "u", "c", "do not form a pair"},
		{"missing CA", "https://127.0.0.1:6443", b.CACert + ".nope", b.AdminCert, b.AdminKey, "u", "c", "read CA"},
		{"CA not a certificate", "https://127.0.0.1:6443", b.AdminKey, b.AdminCert, b.AdminKey, "u", "c", "corrupted"},
		{"no user", "https://127.0.0.1:6443", b.CACert, b.AdminCert, b.AdminKey, "", "c", "must not be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteKubeconfig(out, tc.server, tc.ca, tc.cert, tc.key, tc.user, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteKubeconfig: %v, want error containing %q", err, tc.want)
			}
			keyPEM, _ := os.ReadFile(tc.key)
			for _, line := range strings.Split(string(keyPEM), "\n")[1:3] {
				if strings.Contains(err.Error(), line) {
					t.Error("error reveals key material")
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Error("a failed WriteKubeconfig left a file")
			}
		})
	}
}
