package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"secprov.dev/secprov/blueprints"
)

// isolationChecks prove that other environments' credentials do not work
// here (SP-ISO-005).
func isolationChecks() []Check {
	return []Check{{ID: blueprints.IsolationForeignCredentials, Run: checkForeignCredentials, Needs: needs(API, ForeignCredentials)}}
}

// checkForeignCredentials presents every other environment's admin
// certificate to this cluster's API server: the handshake must fail or the
// request get 401. A 403 fails too: it means the identity was accepted.
func checkForeignCredentials(ctx context.Context, t Target) Outcome {
	var r findings
	creds, err := t.ForeignCredentials(ctx)
	switch {
	case err != nil:
		return Errorf("find other environments' credentials: %v", err)
	case len(creds) == 0:
		return Skip("no cluster of another environment is known here, so there is no foreign credential to try")
	}
	tc, base, err := apiTLS(t, false)
	if err != nil {
		return Errorf("%v", err)
	}
	addr, err := hostPort(base)
	if err != nil {
		return Errorf("API server URL %q: %v", base, err)
	}
	for _, c := range creds {
		who := fmt.Sprintf("admin credential of %s (%s)", c.Cluster, c.Environment)
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM.Reveal())
		if err != nil {
			r.errorf("%s does not form a certificate/key pair; fix or remove that cluster", who)
			continue
		}
		cfg := tc.Clone()
		cfg.Certificates = []tls.Certificate{pair}
		ev := Evidence{Object: who, Field: "GET " + base + "/api", Want: "refused (TLS error or 401)"}
		code, err := httpGet(ctx, cfg, base+"/api")
		switch {
		case err != nil:
			// Tell a refused handshake from an unreachable server.
			conn, derr := (&net.Dialer{Timeout: probeTimeout}).DialContext(ctx, "tcp", addr)
			if derr != nil {
				r.errorf("API server %s unreachable: %v", addr, derr)
				continue
			}
			conn.Close()
			ev.Got = "refused: " + err.Error()
			r.ok(ev)
		case code == http.StatusUnauthorized:
			ev.Got = "401"
			r.ok(ev)
		default:
			ev.Got = strconv.Itoa(code)
			r.fail(ev, fmt.Sprintf("%s is accepted here (HTTP %d): the clusters share a CA", who, code))
		}
	}
	return r.outcome(fmt.Sprintf("%d foreign admin credential(s) are rejected", len(creds)))
}
