package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// apiServerChecks prove the API server's exposure and flags (SP-API-001,
// SP-APISRV-001..008), by behaviour wherever a request can show it.
func apiServerChecks() []Check {
	return []Check{
		{ID: blueprints.APIEndpointPrivate, Run: checkEndpoint, Needs: needs(API, Processes)},
		{ID: blueprints.APIAllowedCIDRsNarrow, Run: checkAllowedCIDRs, Needs: needs(HostFirewall)},
		{ID: blueprints.APIServerNoAnonymous, Run: checkAnonymous, Needs: needs(API, Processes)},
		{ID: blueprints.APIServerAuthorization, Run: checkAuthorization, Needs: needs(API, Processes)},
		{ID: blueprints.APIServerAdmission, Run: checkAdmission, Needs: needs(API, Processes)},
		{ID: blueprints.ProfilingOff, Run: checkProfiling, Needs: needs(API, Processes, ComponentEndpoints)},
		{ID: blueprints.APIServerServiceAccountTokens, Run: checkServiceAccountTokens, Needs: needs(API, Processes, Files)},
		{ID: blueprints.APIServerTLS, Run: checkServingTLS, Needs: needs(API, Processes)},
		{ID: blueprints.APIServerEtcdTLS, Run: checkEtcdClient, Needs: needs(Processes, Files)},
		{ID: blueprints.APIServerKubeletAndLimits, Run: checkKubeletAndLimits, Needs: needs(Processes)},
	}
}

// checkEndpoint: a private endpoint listens on loopback or private
// addresses only (never 0.0.0.0 or ::), and the API refuses TLS < 1.2.
func checkEndpoint(ctx context.Context, t Target) Outcome {
	var r findings
	public := t.Info().Spec.APIServer.Endpoint == v1alpha1.EndpointPublic
	c, err := t.Component(ctx, APIServer)
	switch {
	case err != nil:
		r.errorf("read kube-apiserver's sockets: %v", err)
	case len(c.Listen) == 0:
		r.errorf("kube-apiserver has no listening TCP socket that this host can see")
	default:
		r.ok(listenOnly(&r, APIServer, c, public, "a loopback or private address (private endpoint)",
			func(h string) bool { return isPrivateHost(h) })...)
	}
	tc, base, addr, err := apiHandshake(t)
	if err != nil {
		r.errorf("%v", err)
		return r.outcome("")
	}
	tc.MinVersion, tc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	accepted, tlsErr, err := tlsProbe(ctx, addr, tc)
	ev := Evidence{Object: base, Field: "TLS 1.1 handshake", Want: "refused"}
	switch {
	case err != nil:
		r.errorf("TLS 1.1 probe of %s could not tell: %v", addr, err)
	case accepted:
		ev.Got = "accepted"
		r.fail(ev, "the API server accepts TLS 1.1")
	default:
		ev.Got = "refused (" + tlsErr.Error() + ")"
		r.ok(ev)
	}
	endpoint := "private"
	if public {
		endpoint = "public"
	}
	return r.outcome(fmt.Sprintf("%s endpoint: API server listens only where allowed and refuses TLS 1.1", endpoint))
}

// listenOnly judges a component's listening sockets: each must satisfy
// allowed unless anyAllowed.
func listenOnly(r *findings, component string, c *Component, anyAllowed bool, want string, allowed func(string) bool) []Evidence {
	var good []Evidence
	for _, ap := range c.Listen {
		ev := Evidence{Object: component, Field: "listening socket", Want: want, Got: ap.String()}
		if anyAllowed {
			ev.Want = "any address (public endpoint)"
			good = append(good, ev)
			continue
		}
		if allowed(ap.Addr().String()) {
			good = append(good, ev)
		} else {
			r.fail(ev, fmt.Sprintf("%s listens on %s", component, ap))
		}
	}
	return good
}

// checkAllowedCIDRs (SP-API-002): a public endpoint with allowedCIDRs is
// narrowed by the host's packet filter exactly as hardening renders it:
// the live nftables table is read and judged, so a table deleted, a rule
// widened or one added by hand fails.
func checkAllowedCIDRs(ctx context.Context, t Target) Outcome {
	info := t.Info()
	api := info.Spec.APIServer
	switch {
	case api.Endpoint != v1alpha1.EndpointPublic:
		return Skip(fmt.Sprintf("private endpoint: the API server listens on the provider's private address only, so no client network is narrowed (%s proves where it listens)", blueprints.APIEndpointPrivate))
	case len(api.AllowedCIDRs) == 0:
		return Skip(fmt.Sprintf("public endpoint without allowedCIDRs: every client may connect, nothing to enforce (%s reports the endpoint)", blueprints.APIEndpointPrivate))
	}
	port, err := apiServerPort(info.APIServerURL)
	if err != nil {
		return Errorf("%v", err)
	}
	fw := (&hardening.ControlPlane{Name: info.Name, Spec: info.Spec, Ports: hardening.Ports{APIServer: port}}).APIFirewall()
	fr, ok := t.(FirewallReader)
	if !ok {
		return Errorf("provider %s offers %s but cannot read the firewall", info.Provider, HostFirewall)
	}
	object := fmt.Sprintf("nftables table %s %s", hardening.FirewallFamily, fw.Table)
	data, found, err := fr.NFTTable(ctx, fw.Table)
	if err != nil {
		return Errorf("read %s: %v", object, err)
	}
	want := fmt.Sprintf("port %d from loopback and %s only", port, strings.Join(api.AllowedCIDRs, ", "))
	if !found {
		return Fail(fmt.Sprintf("%s is missing: the public endpoint accepts every client", object),
			Evidence{Object: object, Field: "table", Want: want, Got: "absent"})
	}
	st, err := hardening.ParseFirewall(data, port)
	if err != nil {
		return Errorf("%s: %v", object, err)
	}
	var r findings
	for _, p := range fw.Judge(st) {
		r.fail(Evidence{Object: object, Field: "input chain", Want: want, Got: p}, p)
	}
	var got []string
	for _, p := range st.Allowed {
		got = append(got, p.String())
	}
	r.ok(Evidence{Object: object, Field: "accepted sources", Want: strings.Join(api.AllowedCIDRs, ", "), Got: strings.Join(got, ", ")})
	return r.outcome(fmt.Sprintf("public endpoint: %s accepts port %d only from loopback and the %d allowed CIDR(s)", object, port, len(fw.Allowed)))
}

func apiServerPort(url string) (int, error) {
	i := strings.LastIndex(url, ":")
	if i < 0 {
		return 0, fmt.Errorf("API server URL %q has no port", url)
	}
	p, err := strconv.Atoi(strings.TrimRight(url[i+1:], "/"))
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("API server URL %q has no port", url)
	}
	return p, nil
}

// checkAnonymous sends real requests without any credential: /version is
// what system:public-info-viewer grants anonymous users when anonymous
// auth is on, so a 401 there proves it is off.
func checkAnonymous(ctx context.Context, t Target) Outcome {
	var r findings
	flagCheck(ctx, t, blueprints.APIServerNoAnonymous, []string{APIServer}, &r)
	tc, base, err := apiTLS(t, false)
	if err != nil {
		r.errorf("%v", err)
		return r.outcome("")
	}
	for _, path := range []string{"/version", "/api"} {
		code, err := httpGet(ctx, tc, base+path)
		ev := Evidence{Object: base + path, Field: "anonymous GET", Want: "401", Got: strconv.Itoa(code)}
		switch {
		case err != nil:
			r.errorf("anonymous GET %s: %v", path, err)
		case code == http.StatusUnauthorized:
			r.ok(ev)
		default:
			r.fail(ev, fmt.Sprintf("anonymous GET %s got %d, want 401", path, code))
		}
	}
	return r.outcome("anonymous requests get 401")
}

// checkAuthorization asks the API server's own authorizer, through
// SubjectAccessReviews, whether identities that must get nothing would be
// allowed: the anonymous user and an arbitrary authenticated user.
func checkAuthorization(ctx context.Context, t Target) Outcome {
	var r findings
	flagCheck(ctx, t, blueprints.APIServerAuthorization, []string{APIServer}, &r)
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	reviews := []struct {
		who  string
		spec authorizationv1.SubjectAccessReviewSpec
	}{
		{"system:anonymous: list secrets in kube-system", authorizationv1.SubjectAccessReviewSpec{
			User: "system:anonymous", Groups: []string{"system:unauthenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: "kube-system"}}},
		{"an authenticated non-admin: create clusterrolebindings", authorizationv1.SubjectAccessReviewSpec{
			User: "secprov-verify:nobody", Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}}},
	}
	for _, rv := range reviews {
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: rv.spec}, metav1.CreateOptions{})
		if err != nil {
			r.errorf("SubjectAccessReview for %s: %v", rv.who, err)
			continue
		}
		ev := Evidence{Object: "SubjectAccessReview", Field: rv.who, Want: "denied", Got: "denied"}
		if res.Status.Allowed {
			ev.Got = "allowed"
			if res.Status.Reason != "" {
				ev.Got += " (" + res.Status.Reason + ")"
			}
			r.fail(ev, "the authorizer allows "+rv.who)
			continue
		}
		r.ok(ev)
	}
	return r.outcome("Node,RBAC authorization; non-admin identities are denied")
}

// checkAdmission: the hardened plugin set is enabled and none of it is
// disabled; DenyServiceExternalIPs is proven with a dry-run Service.
func checkAdmission(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.APIServerAdmission, []string{APIServer}, &r)
	if c := comps[APIServer]; c != nil {
		disabled := splitList(Args(c.Args)["disable-admission-plugins"])
		for _, p := range hardening.AdmissionPlugins {
			for _, d := range disabled {
				if d == p {
					r.failFlag(Evidence{Object: APIServer, Field: "--disable-admission-plugins", Want: "none of " + strings.Join(hardening.AdmissionPlugins, ","), Got: d},
						"admission plugin "+p+" is disabled")
				}
			}
		}
	}
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: canaryName("extip"), Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Ports:       []corev1.ServicePort{{Port: 80}},
			ExternalIPs: []string{"203.0.113.10"}, // TEST-NET-3: never routed
		},
	}
	_, err = cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	ev := Evidence{Object: "Service default/" + svc.Name + " (dry run)", Field: "spec.externalIPs", Want: "rejected by DenyServiceExternalIPs"}
	switch {
	case err == nil:
		ev.Got = "admitted"
		r.fail(ev, "a Service with externalIPs is admitted")
	case apierrors.IsForbidden(err):
		ev.Got = "forbidden"
		r.ok(ev)
	default:
		r.errorf("dry-run Service with externalIPs: %v", err)
	}
	return r.outcome("hardened admission plugins enabled; externalIPs are rejected")
}

// checkProfiling: --profiling=false on the three kube components, and
// none of them serves /debug/pprof/ even to the admin.
func checkProfiling(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.ProfilingOff, []string{APIServer, ControllerManager, Scheduler}, &r)
	tc, base, err := apiTLS(t, true)
	if err != nil {
		r.errorf("%v", err)
		return r.outcome("")
	}
	targets := []struct{ name, url string }{{APIServer, base + "/debug/pprof/"}}
	for _, name := range []string{ControllerManager, Scheduler} {
		c := comps[name]
		if c == nil {
			continue
		}
		args := Args(c.Args)
		port := args["secure-port"]
		if port == "0" || port == "" {
			continue // not serving HTTPS at all
		}
		host := args["bind-address"]
		if host == "" {
			host = "127.0.0.1"
		}
		targets = append(targets, struct{ name, url string }{name, "https://" + dialable(net.JoinHostPort(host, port)) + "/debug/pprof/"})
	}
	for _, tg := range targets {
		cfg := tc
		if tg.name != APIServer {
			// kube-controller-manager and kube-scheduler serve a certificate
			// they self-sign in memory at start: there is no CA to check it
			// with. The probe stays on loopback and sends only the admin's
			// public certificate, which reveals nothing secret.
			cfg = tc.Clone()
			cfg.InsecureSkipVerify = true
		}
		code, err := httpGet(ctx, cfg, tg.url)
		ev := Evidence{Object: tg.name, Field: "admin GET /debug/pprof/", Want: "404", Got: strconv.Itoa(code)}
		switch {
		case err != nil:
			r.errorf("GET %s: %v", tg.url, err)
		case code == http.StatusOK:
			r.fail(ev, tg.name+" serves /debug/pprof/")
		default:
			r.ok(ev)
		}
	}
	return r.outcome("profiling is off on kube-apiserver, kube-controller-manager and kube-scheduler")
}

// checkServingTLS: the serving flags, and a real handshake offering only
// suites outside hardening.StrongCipherSuites is refused.
func checkServingTLS(ctx context.Context, t Target) Outcome {
	var r findings
	flagCheck(ctx, t, blueprints.APIServerTLS, []string{APIServer}, &r)
	tc, base, addr, err := apiHandshake(t)
	if err != nil {
		r.errorf("%v", err)
		return r.outcome("")
	}
	tc.MinVersion, tc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tc.CipherSuites = weakSuites()
	accepted, tlsErr, err := tlsProbe(ctx, addr, tc)
	ev := Evidence{Object: base, Field: "TLS 1.2 handshake with only non-AEAD or non-forward-secret suites", Want: "refused"}
	switch {
	case err != nil:
		r.errorf("weak-cipher probe of %s could not tell: %v", addr, err)
	case accepted:
		ev.Got = "accepted"
		r.fail(ev, "the API server negotiates a weak cipher suite")
	default:
		ev.Got = "refused (" + tlsErr.Error() + ")"
		r.ok(ev)
	}
	return r.outcome("API server serves TLS 1.2+ with strong suites only and verifies client certificates")
}

// checkEtcdClient: the API server reaches etcd over https with the
// dedicated etcd CA and a client certificate that CA issued for client
// authentication.
func checkEtcdClient(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.APIServerEtcdTLS, []string{APIServer}, &r)
	c := comps[APIServer]
	if c == nil {
		return r.outcome("")
	}
	args := Args(c.Args)
	if args["etcd-cafile"] != "" && args["etcd-certfile"] != "" {
		pool, _, err := certPool(ctx, t, args["etcd-cafile"])
		if err != nil {
			r.errorf("read --etcd-cafile: %v", err)
			return r.outcome("")
		}
		data, err := t.ReadFile(ctx, args["etcd-certfile"])
		if err != nil {
			r.errorf("read --etcd-certfile: %v", err)
			return r.outcome("")
		}
		ev := Evidence{Object: args["etcd-certfile"], Field: "chain", Want: "issued by --etcd-cafile for client auth", Got: "ok"}
		if err := verifyClientCert(data, pool); err != nil {
			ev.Got = err.Error()
			r.fail(ev, "the API server's etcd client certificate does not verify against --etcd-cafile")
		} else {
			r.ok(ev)
		}
	}
	return r.outcome("API server talks to etcd over https with a client certificate of the etcd CA")
}

// checkKubeletAndLimits: kubelet client identity and CA, a request
// timeout, and no static token file.
func checkKubeletAndLimits(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.APIServerKubeletAndLimits, []string{APIServer}, &r)
	if c := comps[APIServer]; c != nil {
		if ev, bad := forbidFlag(APIServer, Args(c.Args), "token-auth-file", "not set (static tokens cannot be rotated)", nil); bad {
			r.failFlag(ev, "the API server accepts static tokens from --token-auth-file")
		}
	}
	return r.outcome("kubelet client certificate and CA set, request timeout bounded, no static token file")
}
