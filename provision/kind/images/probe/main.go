// Command secprov-probe sends and answers the test traffic of secprov
// verify's network probes. It uses the standard library only, so
// `secprov images build` compiles it from this file, offline, into an
// image holding nothing else.
//
//	secprov-probe serve PORT...   answer every TCP connection on PORT with
//	                              a banner naming this pod, until SIGTERM
//	secprov-probe run PLAN        run the flows of PLAN (JSON) at once and
//	                              print one JSON result per line
//
// A flow is a TCP connect, a DNS lookup, or a Vault login and read (a
// workload's own path to its secrets: the service-account token file it
// names, and Vault's address, CA and role from the environment secprov's
// ConfigMap gives the pod). Its verdict is what was
// observed, never what was expected: "open" (the handshake completed),
// "refused" (a reset: something answered for the address), "timeout"
// (nothing answered: what a policy drop looks like), "unreachable" (an
// ICMP error or no route), "resolved" or "dns-failed", "read" (logged in
// and read the secret), "not-found" (logged in, allowed to read, nothing
// stored), "login-denied" or "read-denied" (Vault answered
// and refused), or "error". A Vault flow reports the secret's keys and a
// digest of its data, never a value.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Banner starts what serve writes to every connection.
const Banner = "secprov-probe"

// Plan is what run does.
type Plan struct {
	// Timeout bounds each attempt of each flow ("2s").
	Timeout string `json:"timeout"`
	Flows   []Flow `json:"flows"`
}

// Flow is one connection or lookup to try.
type Flow struct {
	ID string `json:"id"`
	// Kind is "tcp" (Addr is host:port) or "dns" (Name is looked up).
	Kind string `json:"kind"`
	Addr string `json:"addr,omitempty"`
	Name string `json:"name,omitempty"`
	// TokenFile and Path, for kind "vault": the service-account token to
	// log in with and the secret to read, relative to the KV mount.
	TokenFile string `json:"tokenFile,omitempty"`
	Path      string `json:"path,omitempty"`
	// Attempts is how often to try before reporting a failure (default
	// 1). A success ends the attempts.
	Attempts int `json:"attempts,omitempty"`
}

// Result is the observed outcome of one flow.
type Result struct {
	ID       string `json:"id"`
	Verdict  string `json:"verdict"`
	Detail   string `json:"detail,omitempty"`
	Millis   int64  `json:"ms"`
	Attempts int    `json:"attempts"`
}

// Done is the last line run prints, so a reader knows the output is whole.
const Done = `{"done":true}`

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "run":
		if len(os.Args) != 3 {
			usage()
		}
		err = run(os.Stdout, os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "secprov-probe:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: secprov-probe serve PORT... | secprov-probe run PLAN-JSON")
	os.Exit(2)
}

// serve answers TCP connections on every port until SIGTERM or SIGINT.
// As a container's PID 1 it must handle those itself.
func serve(ports []string) error {
	if len(ports) == 0 {
		return errors.New("serve: no ports")
	}
	host, _ := os.Hostname()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	for _, p := range ports {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("serve: bad port %q", p)
		}
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		go accept(ln, fmt.Sprintf("%s %s %s\n", Banner, host, p))
	}
	fmt.Printf("serving %s on %s\n", host, strings.Join(ports, ","))
	<-stop
	return nil
}

func accept(ln net.Listener, banner string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, banner)
			_ = c.Close()
		}()
	}
}

// run executes plan's flows concurrently and writes their results.
func run(w io.Writer, plan string) error {
	var p Plan
	if err := json.Unmarshal([]byte(plan), &p); err != nil {
		return fmt.Errorf("run: plan: %w", err)
	}
	timeout := 2 * time.Second
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("run: timeout %q", p.Timeout)
		}
		timeout = d
	}
	results := make([]Result, len(p.Flows))
	var wg sync.WaitGroup
	for i, f := range p.Flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = try(f, timeout)
		}()
	}
	wg.Wait()
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, Done)
	return err
}

// try runs f up to its attempts, stopping at the first success.
func try(f Flow, timeout time.Duration) Result {
	attempts := max(f.Attempts, 1)
	var r Result
	start := time.Now()
	for i := 1; i <= attempts; i++ {
		r = once(f, timeout)
		r.Attempts = i
		if r.Verdict == "open" || r.Verdict == "resolved" || r.Verdict == "read" || r.Verdict == "not-found" || r.Verdict == "error" ||
			r.Verdict == "login-denied" || r.Verdict == "read-denied" {
			break
		}
		if i < attempts {
			time.Sleep(300 * time.Millisecond)
		}
	}
	r.ID, r.Millis = f.ID, time.Since(start).Milliseconds()
	return r
}

func once(f Flow, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch f.Kind {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", f.Addr)
		if err != nil {
			return Result{Verdict: dialVerdict(err), Detail: err.Error()}
		}
		defer c.Close()
		// A probe server names itself; other listeners (a kubelet) say
		// nothing, which is fine: the handshake is the verdict.
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 128)
		n, _ := c.Read(buf)
		detail := "connected to " + c.RemoteAddr().String()
		if s := strings.TrimSpace(string(buf[:n])); strings.HasPrefix(s, Banner) {
			detail += ": " + s
		}
		return Result{Verdict: "open", Detail: detail}
	case "dns":
		r := &net.Resolver{PreferGo: true}
		addrs, err := r.LookupHost(ctx, f.Name)
		if err != nil {
			return Result{Verdict: "dns-failed", Detail: err.Error()}
		}
		return Result{Verdict: "resolved", Detail: strings.Join(addrs, ",")}
	case "vault":
		return vaultRead(ctx, f)
	default:
		return Result{Verdict: "error", Detail: fmt.Sprintf("unknown flow kind %q", f.Kind)}
	}
}

// vaultRead logs in to Vault's Kubernetes auth with the token in
// f.TokenFile and reads f.Path from the KV v2 mount, as a workload would,
// with what the environment says (VAULT_ADDR, VAULT_CACERT,
// VAULT_TLS_SERVER_NAME, VAULT_AUTH_PATH, VAULT_ROLE, VAULT_KV_MOUNT).
func vaultRead(ctx context.Context, f Flow) Result {
	env := func(k string) string { return os.Getenv(k) }
	addr := strings.TrimRight(env("VAULT_ADDR"), "/")
	if addr == "" || env("VAULT_AUTH_PATH") == "" || env("VAULT_KV_MOUNT") == "" {
		return Result{Verdict: "error", Detail: "VAULT_ADDR, VAULT_AUTH_PATH or VAULT_KV_MOUNT is not set: the pod has no Vault configuration"}
	}
	jwt, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return Result{Verdict: "error", Detail: "service-account token: " + err.Error()}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: env("VAULT_TLS_SERVER_NAME")}
	if ca := env("VAULT_CACERT"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return Result{Verdict: "error", Detail: "Vault CA: " + err.Error()}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return Result{Verdict: "error", Detail: "Vault CA: no certificate in " + ca}
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	call := func(method, path, token string, body any) (int, map[string]any, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, addr+"/v1/"+path, rd)
		if err != nil {
			return 0, nil, err
		}
		if token != "" {
			req.Header.Set("X-Vault-Token", token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
		return resp.StatusCode, out, nil
	}
	code, login, err := call(http.MethodPost, env("VAULT_AUTH_PATH")+"/login", "", map[string]string{"role": env("VAULT_ROLE"), "jwt": strings.TrimSpace(string(jwt))})
	if err != nil {
		v := dialVerdict(err)
		if v == "error" {
			var ue *url.Error
			if errors.As(err, &ue) && (errors.Is(ue.Err, context.DeadlineExceeded) || ue.Timeout()) {
				v = "timeout"
			}
		}
		return Result{Verdict: v, Detail: "login: " + err.Error()}
	}
	if code != http.StatusOK {
		return Result{Verdict: "login-denied", Detail: fmt.Sprintf("login as role %q: HTTP %d %v", env("VAULT_ROLE"), code, login["errors"])}
	}
	auth, _ := login["auth"].(map[string]any)
	token, _ := auth["client_token"].(string)
	if token == "" {
		return Result{Verdict: "error", Detail: "login: no client token in the answer"}
	}
	path := env("VAULT_KV_MOUNT") + "/data/" + strings.TrimLeft(f.Path, "/")
	code, sec, err := call(http.MethodGet, path, token, nil)
	if err != nil {
		return Result{Verdict: dialVerdict(err), Detail: "read: " + err.Error()}
	}
	if code == http.StatusNotFound {
		// Vault answers 404 only to a token allowed to read the path.
		return Result{Verdict: "not-found", Detail: fmt.Sprintf("logged in as role %q; read %s: allowed, nothing stored there (HTTP 404)", env("VAULT_ROLE"), path)}
	}
	if code != http.StatusOK {
		return Result{Verdict: "read-denied", Detail: fmt.Sprintf("logged in as role %q; read %s: HTTP %d", env("VAULT_ROLE"), path, code)}
	}
	data, _ := sec["data"].(map[string]any)
	inner, _ := data["data"].(map[string]any)
	keys := make([]string, 0, len(inner))
	for k := range inner {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b, _ := json.Marshal(inner)
	sum := sha256.Sum256(b)
	return Result{Verdict: "read", Detail: fmt.Sprintf("logged in as role %q; read %s: keys %v, data sha256 %x", env("VAULT_ROLE"), path, keys, sum[:8])}
}

// dialVerdict classifies a failed connect.
func dialVerdict(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error"
	}
}
