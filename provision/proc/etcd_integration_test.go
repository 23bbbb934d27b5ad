package proc_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
)

const etcdVersion = "v3.7.3"

func etcdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts a real etcd %s: skipped with -short", etcdVersion)
	}
	cache, err := paths.CacheDir()
	if err != nil {
		t.Skipf("no cache directory to find etcd in: %v", err)
	}
	bin := filepath.Join(cache, "tools", "etcd", etcdVersion, "etcd")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("etcd %s not installed (run secprov tools install): %v", etcdVersion, err)
	}
	return bin
}

func tlsConfig(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("no certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// TestEtcdMutualTLS runs the real etcd with a PKI from package pki, the way
// the local provider will: loopback only, client and peer certificate
// authentication, its own CA. It proves the certificates are accepted, that
// etcd refuses clients without a certificate or with one from another CA,
// and measures the time to healthy.
func TestEtcdMutualTLS(t *testing.T) {
	bin := etcdBinary(t)
	root := t.TempDir()
	b, err := pki.Ensure(filepath.Join(root, "pki"), pki.Options{ClusterName: "itest", ServiceCIDR: "10.96.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Ensure(filepath.Join(root, "other-pki"), pki.Options{ClusterName: "other", ServiceCIDR: "10.96.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(root, "etcd-data")
	spec, clientURL, p := startEtcd(t, bin, b, root)
	apiserver := tlsConfig(t, b.EtcdCACert, b.APIServerEtcdClientCert, b.APIServerEtcdClientKey)

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: apiserver}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(clientURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"health":"true"`) {
		t.Errorf("/health = %s, want health true", body)
	}
	// The HTTP/JSON gateway reaches etcd's gRPC port with the self-client
	// certificate; this fails if that identity is wrong.
	resp, err = hc.Post(clientURL+"/v3/kv/put", "application/json", bytes.NewBufferString(`{"key":"c2VjcHJvdg==","value":"b2s="}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("put through the gateway: %s %s", resp.Status, body)
	}

	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", tlsConfig(t, b.EtcdCACert, "", "")},
		{"client certificate from the cluster CA", tlsConfig(t, b.EtcdCACert, b.AdminCert, b.AdminKey)},
		{"super-admin (system:masters) from the cluster CA", tlsConfig(t, b.EtcdCACert, b.SuperAdminCert, b.SuperAdminKey)},
		{"etcd client certificate of another cluster", tlsConfig(t, b.EtcdCACert, other.APIServerEtcdClientCert, other.APIServerEtcdClientKey)},
		{"client trusting another cluster's etcd CA", tlsConfig(t, other.EtcdCACert, b.APIServerEtcdClientCert, b.APIServerEtcdClientKey)},
	}
	for _, tc := range refused {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			err := proc.HTTPSReady(clientURL+"/health", tc.cfg)(context.Background())
			if err == nil {
				t.Fatal("request succeeded, want a TLS failure")
			}
			t.Logf("refused: %v", err)
		})
	}

	for path, want := range map[string]os.FileMode{dataDir: 0o700, spec.LogFile: 0o600, spec.PidFile: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %o", path, fi.Mode().Perm(), err, want)
		}
	}

	stopStart := time.Now()
	if err := proc.Stop(context.Background(), spec.PidFile, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("etcd stopped in %s", time.Since(stopStart).Round(time.Millisecond))
	if st, err := proc.Status(spec.PidFile); st != proc.StateStopped || err != nil {
		t.Errorf("Status after Stop = %v, %v", st, err)
	}
	// etcd shuts down cleanly on SIGTERM and then re-raises it, so a
	// graceful stop ends in "signal: terminated"; SIGKILL would mean the
	// grace period ran out.
	var ee *exec.ExitError
	if err := p.ExitErr(); err != nil && (!errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM) {
		t.Errorf("etcd exit: %v, want a clean exit or SIGTERM", err)
	}
	if log, _ := proc.Tail(spec.LogFile, 5); !strings.Contains(log, "closed etcd server") {
		t.Errorf("etcd did not shut down cleanly; log ends:\n%s", log)
	}
}

// startEtcd starts etcd with the bundle's certificates on free loopback
// ports and waits until it is healthy; the cleanup stops it.
func startEtcd(t *testing.T, bin string, b *pki.Bundle, root string) (proc.Spec, string, *proc.Process) {
	t.Helper()
	dataDir := filepath.Join(root, "etcd-data")
	if err := paths.EnsurePrivateDir(dataDir); err != nil {
		t.Fatal(err)
	}
	ports, err := proc.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	clientURL := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("https://127.0.0.1:%d", ports[1])
	spec := proc.Spec{
		Name: "etcd", Path: bin,
		PidFile: filepath.Join(root, "etcd.pid"), LogFile: filepath.Join(root, "etcd.log"),
		Args: []string{
			"--name=default", "--data-dir=" + dataDir,
			"--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL, "--initial-cluster-state=new",
			"--client-cert-auth", "--trusted-ca-file=" + b.EtcdCACert,
			"--cert-file=" + b.EtcdServerCert, "--key-file=" + b.EtcdServerKey,
			"--client-cert-file=" + b.EtcdSelfClientCert, "--client-key-file=" + b.EtcdSelfClientKey,
			"--peer-client-cert-auth", "--peer-trusted-ca-file=" + b.EtcdCACert,
			"--peer-cert-file=" + b.EtcdPeerCert, "--peer-key-file=" + b.EtcdPeerKey,
			"--tls-min-version=TLS1.3",
		},
	}

	start := time.Now()
	p, err := proc.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(context.Background(), spec.PidFile, 10*time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	apiserver := tlsConfig(t, b.EtcdCACert, b.APIServerEtcdClientCert, b.APIServerEtcdClientKey)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := proc.WaitReady(ctx, proc.HTTPSReady(clientURL+"/health", apiserver), 50*time.Millisecond, spec.PidFile); err != nil {
		t.Fatalf("etcd not healthy: %v", err)
	}
	t.Logf("etcd %s healthy %s after start (pid %d)", etcdVersion, time.Since(start).Round(time.Millisecond), p.Pid)
	return spec, clientURL, p
}
