package proc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may still take it before the caller binds it; a component failing
// with "address already in use" shows up through WaitReady's fail-fast path.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. All listeners are
// held until every port is chosen, so no port is handed out twice.
//
// Ports come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range). A port inside it can be given to any
// outgoing connection — the control plane's own, to etcd and to the API
// server, make many — between being chosen here and the component binding
// it, and again on every later start, since a cluster keeps its ports.
// Measured: with two clusters starting at once, kube-controller-manager
// failed with "address already in use" on such a port. Below the range
// only another explicit bind can take a port.
func FreePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	low := ephemeralLow()
	for tries := 0; len(ports) < n && low-portFloor >= minPortSpan && tries < 100*n; tries++ {
		p := portFloor + rand.IntN(low-portFloor)
		if slices.Contains(ports, p) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	// A machine whose ephemeral range starts low (or is crowded) still gets
	// ports, from the kernel.
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portFloor keeps clear of well-known service ports; minPortSpan is the
// smallest range below the ephemeral one worth choosing from.
const (
	portFloor   = 10000
	minPortSpan = 2000
)

// ephemeralLow is the first port of the kernel's ephemeral range; 32768
// (Linux's default) where it cannot be read.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 0 {
		return 32768
	}
	return low
}

// Probe checks once whether something is ready; nil means ready.
type Probe func(ctx context.Context) error

// ErrExited marks a WaitReady failure because a watched process died.
var ErrExited = errors.New("process exited")

// tailLines is how much of a dead component's log an error carries.
const tailLines = 20

// WaitReady calls probe at once and then every interval until it returns nil
// or ctx ends; on timeout the error wraps the last probe error and the
// context's. With pidFiles, it fails fast — without waiting out ctx — as
// soon as one of those processes is no longer running, and the error
// (wrapping ErrExited) carries the tail of that process's log, which is
// where the reason is ("etcd exited: … bind: address already in use").
func WaitReady(ctx context.Context, probe Probe, every time.Duration, pidFiles ...string) error {
	start := time.Now()
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last error
	for {
		last = probe(ctx)
		// Checked after a successful probe too: if our process died,
		// whatever answered is not it.
		if err := exited(pidFiles, last); err != nil {
			return err
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (%w)", time.Since(start).Round(time.Millisecond), last, ctx.Err())
		case <-t.C:
		}
	}
}

func exited(pidFiles []string, lastProbe error) error {
	for _, pf := range pidFiles {
		st, err := Status(pf)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrExited, err)
		}
		if st == StateRunning {
			continue
		}
		rec, _ := ReadPidFile(pf)
		who := rec.Name
		if who == "" {
			who = pf
		}
		var b strings.Builder
		if st == StateStopped {
			fmt.Fprintf(&b, "%s is not running (pid file removed) before it became ready", pf)
		} else {
			fmt.Fprintf(&b, "%s (pid %d) exited before it became ready", who, rec.Pid)
		}
		if lastProbe != nil {
			fmt.Fprintf(&b, " (last probe: %v)", lastProbe)
		}
		if rec.LogFile != "" {
			if tail, err := Tail(rec.LogFile, tailLines); err == nil && tail != "" {
				fmt.Fprintf(&b, "; last lines of %s:\n%s", rec.LogFile, tail)
			}
		}
		return &exitedError{msg: b.String()}
	}
	return nil
}

type exitedError struct{ msg string }

func (e *exitedError) Error() string { return e.msg }
func (e *exitedError) Is(target error) bool {
	return target == ErrExited
}

// probeTimeout bounds one HTTPS probe, so a server that accepts but never
// answers doesn't stall WaitReady past its interval for long.
const probeTimeout = 5 * time.Second

// HTTPSReady returns a probe that GETs rawURL over HTTPS with tlsCfg (client
// certificate and CA pool) and wants 200 — the contract of kube-apiserver's
// /readyz and /livez and of etcd's /health. A failing answer's status and
// the start of its body (which lists failed checks) become the error.
// Proxies from the environment are ignored: the endpoints are loopback.
func HTTPSReady(rawURL string, tlsCfg *tls.Config) Probe {
	u, err := url.Parse(rawURL)
	if err == nil && (u.Scheme != "https" || u.Host == "") {
		err = errors.New("not an https:// URL")
	}
	if err != nil {
		return func(context.Context) error { return fmt.Errorf("probe %s: %w", rawURL, err) }
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ForceAttemptHTTP2: false}
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg.Clone()
	}
	client := &http.Client{Transport: tr, Timeout: probeTimeout}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return fmt.Errorf("probe %s: %w", rawURL, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("probe %s: %w", rawURL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("probe %s: %s: %s", rawURL, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// tailMax bounds how much of a log Tail reads: enough for any sensible n.
const tailMax = 64 << 10

// Tail returns the last n lines of the file at path (fewer if it has
// fewer), without a trailing newline. It reads at most the last 64 KiB.
func Tail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	off := max(fi.Size()-tailMax, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read log %s: %w", path, err)
	}
	buf = bytes.TrimRight(buf, "\n")
	if n <= 0 || len(buf) == 0 {
		return "", nil
	}
	lines := bytes.Split(buf, []byte("\n"))
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first line was cut by the window
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))), nil
}
