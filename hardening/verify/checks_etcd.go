package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"secprov.dev/secprov/blueprints"
)

// etcdChecks prove etcd's client and peer TLS and where it listens
// (SP-ETCD-001..003).
func etcdChecks() []Check {
	return []Check{
		{ID: blueprints.EtcdClientTLS, Run: checkEtcdClientAuth, Needs: needs(Processes, Files, ComponentEndpoints)},
		{ID: blueprints.EtcdPeerTLS, Run: checkEtcdPeerAuth, Needs: needs(Processes, Files, ComponentEndpoints)},
		{ID: blueprints.EtcdLoopback, Run: checkEtcdListen, Needs: needs(Processes)},
	}
}

// checkEtcdClientAuth: the flags, a dedicated CA (not the cluster CA, whose
// client certificates every admin holds), and a real connection without a
// client certificate is refused on every client URL.
func checkEtcdClientAuth(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.EtcdClientTLS, []string{Etcd}, &r)
	c := comps[Etcd]
	if c == nil {
		return r.outcome("")
	}
	args := Args(c.Args)
	if ca := args["trusted-ca-file"]; ca != "" && t.Info().Files.CACert != "" {
		_, etcdCAs, err1 := certPool(ctx, t, ca)
		_, clusterCAs, err2 := certPool(ctx, t, t.Info().Files.CACert)
		if err1 != nil || err2 != nil {
			r.errorf("compare etcd and cluster CAs: %v", firstErr(err1, err2))
		} else {
			ev := Evidence{Object: Etcd, Field: "--trusted-ca-file", Want: "a CA of its own, not the cluster CA", Got: "dedicated"}
			if sharesCert(etcdCAs, clusterCAs) {
				ev.Got = "trusts the cluster CA"
				r.fail(ev, "etcd trusts the cluster CA: any cluster client certificate reaches etcd")
			} else {
				r.ok(ev)
			}
		}
	}
	noCertProbe(ctx, t, &r, args, "listen-client-urls", "trusted-ca-file", "client")
	return r.outcome("etcd requires client certificates of its own CA on every client URL")
}

// checkEtcdPeerAuth: peer flags, and a connection to the peer URL without
// a client certificate is refused.
func checkEtcdPeerAuth(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.EtcdPeerTLS, []string{Etcd}, &r)
	if c := comps[Etcd]; c != nil {
		noCertProbe(ctx, t, &r, Args(c.Args), "listen-peer-urls", "peer-trusted-ca-file", "peer")
	}
	return r.outcome("etcd peers require client certificates")
}

// checkEtcdListen: listen URLs and the sockets etcd really holds are all
// on loopback.
func checkEtcdListen(ctx context.Context, t Target) Outcome {
	var r findings
	if _, ok := flagCheck(ctx, t, blueprints.EtcdLoopback, []string{Etcd}, &r); ok {
		loopbackSockets(ctx, t, &r, Etcd)
	}
	return r.outcome("etcd listens on loopback only")
}

// noCertProbe connects to every URL of urlsFlag presenting no client
// certificate, verifying the server with caFlag's CA; each must refuse.
func noCertProbe(ctx context.Context, t Target, r *findings, args map[string]string, urlsFlag, caFlag, what string) {
	urls := splitList(args[urlsFlag])
	if len(urls) == 0 {
		return // the flag comparison already failed
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := args[caFlag]; ca != "" {
		pool, _, err := certPool(ctx, t, ca)
		if err != nil {
			r.errorf("read --%s: %v", caFlag, err)
			return
		}
		tc.RootCAs = pool
	} else {
		// Without a CA flag there is nothing to verify etcd with; the
		// probe only asks whether it lets a certificate-less client in.
		tc.InsecureSkipVerify = true
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "https://") {
			r.fail(Evidence{Object: Etcd + " " + u, Field: "--" + urlsFlag, Want: "https:// only", Got: u},
				fmt.Sprintf("etcd serves %s connections without TLS on %s", what, u))
			continue
		}
		hp, err := hostPort(u)
		if err != nil {
			r.errorf("--%s %q: %v", urlsFlag, u, err)
			continue
		}
		addr := dialable(hp)
		accepted, tlsErr, err := tlsProbe(ctx, addr, tc)
		ev := Evidence{Object: Etcd + " " + u, Field: what + " connection without a client certificate", Want: "refused"}
		switch {
		case err != nil:
			r.errorf("probe etcd %s URL %s: %v", what, u, err)
		case accepted:
			ev.Got = "accepted"
			r.fail(ev, fmt.Sprintf("etcd's %s URL %s accepts a client without a certificate", what, u))
		default:
			ev.Got = "refused (" + tlsErr.Error() + ")"
			r.ok(ev)
		}
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
