package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"secprov.dev/secprov/hardening"
)

// probeTimeout bounds every single network probe, so a hung component
// costs a check seconds, not the runner's whole timeout.
const probeTimeout = 5 * time.Second

// apiTLS returns a TLS config that verifies the API server with the CA of
// secprov's admin REST config, and the API server's base URL. With admin
// it presents the admin client certificate; without, no certificate at all
// (an anonymous client).
func apiTLS(t Target, admin bool) (*tls.Config, string, error) {
	cfg, err := t.RESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("admin REST config: %w", err)
	}
	base := strings.TrimSuffix(t.Info().APIServerURL, "/")
	if base == "" {
		base = strings.TrimSuffix(cfg.Host, "/")
	}
	if !admin {
		cfg = rest.AnonymousClientConfig(cfg)
	}
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("TLS config for %s: %w", base, err)
	}
	if tc == nil {
		return nil, "", fmt.Errorf("the admin REST config reaches %s without TLS", base)
	}
	return tc, base, nil
}

// httpGet fetches url with tc and returns the status code. It never uses
// a proxy from the environment: probes must reach the component itself.
func httpGet(ctx context.Context, tc *tls.Config, rawURL string) (int, error) {
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, TLSHandshakeTimeout: probeTimeout}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// tlsProbe connects to addr with tc and sends one HTTP request. accepted
// is true when the server answered; tlsErr says why it refused (a failed
// handshake, or with TLS 1.3 a certificate alert on the first read). err
// is set when the probe could not tell (no TCP connection, a timeout).
func tlsProbe(ctx context.Context, addr string, tc *tls.Config) (accepted bool, tlsErr, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc.NextProtos = []string{"http/1.1"}
	tconn := tls.Client(conn, tc)
	if err := tconn.HandshakeContext(ctx); err != nil {
		if isTimeout(err) {
			return false, nil, err
		}
		return false, err, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if _, err := fmt.Fprintf(tconn, "GET /version HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return false, err, nil
	}
	var b [1]byte
	if _, err := tconn.Read(b[:]); err != nil {
		if isTimeout(err) {
			return false, nil, err
		}
		return false, err, nil // alert (certificate required) or the server hung up
	}
	return true, nil, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// hostPort returns the host:port of an https URL.
// apiHandshake is apiTLS plus the host:port to dial, for checks that
// probe the API server's TLS handshake itself.
func apiHandshake(t Target) (tc *tls.Config, base, addr string, err error) {
	if tc, base, err = apiTLS(t, false); err != nil {
		return nil, "", "", err
	}
	if addr, err = hostPort(base); err != nil {
		return nil, "", "", fmt.Errorf("API server URL %q: %w", base, err)
	}
	return tc, base, addr, nil
}

func hostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return u.Host, nil
}

// dialable turns a listen address into one to dial: a wildcard listener is
// reached on loopback.
func dialable(hostport string) string {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if a, err := netip.ParseAddr(h); err == nil && a.IsUnspecified() {
		if a.Is4() {
			h = "127.0.0.1"
		} else {
			h = "::1"
		}
	}
	return net.JoinHostPort(h, p)
}

// weakSuites are the TLS 1.2 cipher suites Go can offer that are not among
// hardening.StrongCipherSuites: CBC modes, RSA key exchange, 3DES, RC4.
func weakSuites() []uint16 {
	var out []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS12) && !slices.Contains(hardening.StrongCipherSuites, s.Name) {
			out = append(out, s.ID)
		}
	}
	return out
}

// certPool reads a PEM CA bundle through the target.
func certPool(ctx context.Context, t Target, path string) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := t.ReadFile(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
