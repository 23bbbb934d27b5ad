// Package relay forwards TCP connections from one cluster's network to a
// Vault that listens on this machine's loopback only. A kind cluster's
// pods reach this machine at their Docker network's gateway address; the
// relay listens there, accepts only sources inside that network, and
// passes the bytes through unchanged, so TLS runs end to end between the
// workload and Vault (the relay never sees a token or a secret).
//
// The address filter is what keeps one environment's pods away from
// another environment's Vault entry point: every network's gateway is an
// address of this machine, and the host accepts connections to any of
// them from any of its bridges.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Options configure one relay.
type Options struct {
	// Listen is the address to accept on (the network's gateway and a
	// port).
	Listen string
	// Allow are the source networks accepted; a connection from any other
	// address is closed at once, before a byte is read or forwarded.
	// Connections from this machine's own addresses are accepted too:
	// whatever runs here reaches Vault's loopback listener anyway (and the
	// kernel drops packets from outside that claim a local source). The
	// host's own readiness probe is one: its source address is the
	// machine's primary one, not the gateway it dials.
	Allow []netip.Prefix
	// To is Vault's loopback address (host:port).
	To string
	// Log receives one line per refused connection and per failed dial.
	Log *slog.Logger
	// Ready, if set, is called once the listener is open.
	Ready func(addr net.Addr)
}

// dialTimeout bounds the connection to Vault.
const dialTimeout = 5 * time.Second

// Allowed reports whether a connection from remote may pass.
func Allowed(remote net.Addr, allow []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// local reports whether remote is an address of this machine.
func local(remote net.Addr) bool {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}

// Serve relays until ctx ends. It returns an error only when it cannot
// listen or the options are unusable.
func Serve(ctx context.Context, o Options) error {
	if len(o.Allow) == 0 {
		return errors.New("relay: no source network is allowed; refusing to relay for everyone")
	}
	if o.To == "" {
		return errors.New("relay: no Vault address to relay to")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("relay: listen on %s: %w", o.Listen, err)
	}
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			wg.Wait()
			return fmt.Errorf("relay: accept: %w", err)
		}
		if !Allowed(c.RemoteAddr(), o.Allow) && !local(c.RemoteAddr()) {
			log.Warn("refused a connection from outside the cluster's network", "from", c.RemoteAddr().String())
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pipe(ctx, c, o.To, log)
		}()
	}
}

// pipe copies both ways between c and a new connection to Vault until
// either side closes or ctx ends.
func pipe(ctx context.Context, c net.Conn, to string, log *slog.Logger) {
	defer c.Close()
	d := net.Dialer{Timeout: dialTimeout}
	v, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		log.Warn("cannot reach Vault", "to", to, "err", err)
		return
	}
	defer v.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); v.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	half := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go half(v, c)
	go half(c, v)
	<-done
	<-done
}
