package relay

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// echo is a stand-in for Vault's listener: it answers each line with
// "vault:" and the line.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					if _, err := io.WriteString(c, "vault:"+s.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, allow ...string) string {
	t.Helper()
	var prefixes []netip.Prefix
	for _, a := range allow {
		prefixes = append(prefixes, netip.MustParsePrefix(a))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, Options{Listen: "127.0.0.1:0", Allow: prefixes, To: echo(t), Ready: func(a net.Addr) { ready <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a.String()
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	return ""
}

func roundTrip(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestRelayPassesAllowedSources: bytes from an allowed source reach Vault
// and its answer comes back unchanged.
func TestRelayPassesAllowedSources(t *testing.T) {
	addr := start(t, "10.0.0.0/8", "127.0.0.0/8")
	got, err := roundTrip(addr, "sys/health")
	if err != nil || got != "vault:sys/health\n" {
		t.Fatalf("through the relay: %q, %v; want vault:sys/health", got, err)
	}
}

// TestRelayAcceptsThisMachine: this machine's own addresses pass without
// being listed (its processes reach Vault's loopback listener anyway).
func TestRelayAcceptsThisMachine(t *testing.T) {
	addr := start(t, "172.18.0.0/16")
	got, err := roundTrip(addr, "sys/health")
	if err != nil || got != "vault:sys/health\n" {
		t.Fatalf("from 127.0.0.1 with only 172.18.0.0/16 allowed: got %q, %v; want it relayed", got, err)
	}
}

// TestLocalAndAllowed: which sources pass. A source outside every allowed
// network that is not this machine's is closed before anything is
// forwarded (the kind e2e shows it with a pod of another cluster).
func TestLocalAndAllowed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1":   true,
		"[::1]:1":       true,
		"192.0.2.250:1": false, // TEST-NET-1: not an address of this machine
		"203.0.113.9:1": false,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := local(a); got != want {
			t.Errorf("local(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestServeRefusesNoAllowList(t *testing.T) {
	if err := Serve(context.Background(), Options{Listen: "127.0.0.1:0", To: "127.0.0.1:1"}); err == nil {
		t.Fatal("Serve with no allowed source network started; want an error")
	}
}

func TestAllowed(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("172.18.0.0/16")}
	for addr, want := range map[string]bool{
		"172.18.0.3:40000":        true,
		"172.19.0.3:40000":        false,
		"[::ffff:172.18.0.3]:443": true,
		"not-an-address":          false,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		var na net.Addr = fakeAddr(addr)
		if err == nil {
			na = a
		}
		if got := Allowed(na, allow); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
}

type fakeAddr string

func (f fakeAddr) Network() string { return "tcp" }
func (f fakeAddr) String() string  { return string(f) }
