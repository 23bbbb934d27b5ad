package verify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// wanted renders the control plane hardening asks for on this cluster, so
// every flag check compares the live processes with the same flags `up`
// renders (Flags.ForControl) instead of a second hand-written list.
//
// Two blueprint choices are overridden, because they would make the
// expected flag set empty exactly when the control is off: audit logging is
// rendered on (retention values stay the blueprint's), and an encryption
// provider of none is rendered as secretbox. The file paths come from the
// provider (Info.Files); ports are unknown here, so flags that carry one
// are compared by rule (scheme and host), never by value.
func wanted(info Info) *hardening.ControlPlane {
	spec := info.Spec
	on := true
	spec.Audit.Enabled = &on
	enc := info.EncryptionProvider
	if enc == "" || enc == v1alpha1.EncryptionNone {
		enc = v1alpha1.EncryptionSecretbox
	}
	return &hardening.ControlPlane{Name: info.Name, Spec: spec, Files: info.Files, Topology: info.Topology, EncryptionProvider: enc}
}

// wantFlags are the flags hardening renders for component that implement
// control id.
func wantFlags(info Info, component string, id blueprints.ControlID) hardening.Flags {
	return wanted(info).Flags(component).ForControl(id)
}

// secureDefaults are flags whose built-in default is already the hardened
// value, so leaving them out is not a weakening.
var secureDefaults = map[string]string{
	"auto-tls":               "false",
	"peer-auto-tls":          "false",
	"service-account-lookup": "true",
}

// tlsVersionsOK are the minimum TLS versions accepted, in the spellings of
// the kube components (VersionTLS12) and etcd (TLS1.2).
var tlsVersionsOK = []string{"VersionTLS12", "VersionTLS13", "TLS1.2", "TLS1.3"}

// flagRule judges a live flag value against the hardened one.
type flagRule struct {
	want string // what is wanted, for evidence
	ok   func(got string) bool
}

// ruleFor returns how a flag is compared. Most flags must equal the
// rendered value; lists, URLs, addresses and retention minimums are
// compared by meaning.
func ruleFor(component string, f hardening.Flag) flagRule {
	switch f.Name {
	case "enable-admission-plugins":
		want := splitList(f.Value)
		return flagRule{want: "includes " + f.Value + " and not AlwaysAdmit", ok: func(got string) bool {
			g := splitList(got)
			return !slices.Contains(g, "AlwaysAdmit") && containsAll(g, want)
		}}
	case "authorization-mode":
		return flagRule{want: "Node and RBAC, never AlwaysAllow", ok: func(got string) bool {
			g := splitList(got)
			return slices.Contains(g, "Node") && slices.Contains(g, "RBAC") && !slices.Contains(g, "AlwaysAllow")
		}}
	case "tls-cipher-suites", "cipher-suites":
		return flagRule{want: "only AEAD suites with forward secrecy (" + strings.Join(hardening.StrongCipherSuites, ",") + ")", ok: func(got string) bool {
			g := splitList(got)
			return len(g) > 0 && containsAll(hardening.StrongCipherSuites, g)
		}}
	case "tls-min-version":
		return flagRule{want: "TLS 1.2 or newer", ok: func(got string) bool { return slices.Contains(tlsVersionsOK, got) }}
	case "bind-address":
		if component == APIServer && !isLoopbackHost(f.Value) {
			return flagRule{want: f.Value + " (public endpoint)", ok: func(string) bool { return true }}
		}
		if component == APIServer {
			return flagRule{want: "a loopback or private address", ok: func(got string) bool { return isPrivateHost(got) }}
		}
		return flagRule{want: "a loopback address", ok: isLoopbackHost}
	case "listen-client-urls", "listen-peer-urls", "etcd-servers":
		return flagRule{want: "https:// URLs on loopback", ok: func(got string) bool { return httpsLoopbackURLs(got) == nil }}
	case "audit-log-maxage", "audit-log-maxbackup", "audit-log-maxsize":
		floor := auditFloors[f.Name]
		want, _ := strconv.Atoi(f.Value)
		want = max(want, floor)
		return flagRule{want: fmt.Sprintf("at least %d", want), ok: func(got string) bool {
			n, err := strconv.Atoi(got)
			return err == nil && n >= want
		}}
	case "request-timeout":
		want, _ := time.ParseDuration(f.Value)
		return flagRule{want: "at most " + f.Value, ok: func(got string) bool {
			d, err := time.ParseDuration(got)
			return err == nil && d > 0 && d <= want
		}}
	case "terminated-pod-gc-threshold":
		return flagRule{want: "a positive number (rendered " + f.Value + ")", ok: func(got string) bool {
			n, err := strconv.Atoi(got)
			return err == nil && n > 0
		}}
	}
	if f.Value == "true" || f.Value == "false" {
		return flagRule{want: f.Value, ok: func(got string) bool { return strings.EqualFold(got, f.Value) }}
	}
	return flagRule{want: f.Value, ok: func(got string) bool { return got == f.Value }}
}

// auditFloors are the retention minimums of SP-AUDIT-002, whatever the
// blueprint asks for, by flag.
var auditFloors = func() map[string]int {
	least := blueprints.AuditRetention.Thresholds()
	return map[string]int{
		"audit-log-maxage":    least.MinAuditAgeDays,
		"audit-log-maxbackup": least.MinAuditBackups,
		"audit-log-maxsize":   least.MinAuditSizeMB,
	}
}()

// compareFlags checks a running component's arguments against the
// hardened flags: bad evidence for each flag that is missing or weaker,
// good evidence for each that matches.
func compareFlags(component string, args map[string]string, want hardening.Flags) (bad, good []Evidence) {
	for _, f := range want {
		got, set := args[f.Name]
		if !set {
			got, set = secureDefaults[f.Name]
		}
		r := ruleFor(component, f)
		ev := Evidence{Object: component, Field: "--" + f.Name, Want: r.want, Got: got}
		switch {
		case !set:
			ev.Got = "(not set)"
		case got == "":
			ev.Got = `""`
		}
		if set && r.ok(got) {
			good = append(good, ev)
		} else {
			bad = append(bad, ev)
		}
	}
	return bad, good
}

// forbidFlag reports a flag that must not be set (or not to a value
// matching bad).
func forbidFlag(component string, args map[string]string, name, why string, bad func(string) bool) (Evidence, bool) {
	got, set := args[name]
	if !set || (bad != nil && !bad(got)) {
		return Evidence{}, false
	}
	return Evidence{Object: component, Field: "--" + name, Want: why, Got: got}, true
}

// flagCheck is the common shape of the control-plane flag checks: for each
// component, the flags hardening renders for id must be present and as
// strong; extra adds behaviour or forbidden-flag evidence.
func flagCheck(ctx context.Context, t Target, id blueprints.ControlID, components []string, r *findings) (map[string]*Component, bool) {
	info := t.Info()
	comps := map[string]*Component{}
	for _, name := range components {
		c, err := t.Component(ctx, name)
		if err != nil {
			r.errorf("read %s's arguments: %v", name, err)
			return comps, false
		}
		comps[name] = c
		bad, good := compareFlags(name, Args(c.Args), wantFlags(info, name, id))
		for _, e := range bad {
			r.failFlag(e, fmt.Sprintf("%s %s is %s, want %s", name, e.Field, e.Got, e.Want))
		}
		r.ok(good...)
	}
	return comps, true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func parseHost(h string) (netip.Addr, bool) {
	if h == "localhost" {
		return netip.IPv6Loopback(), true
	}
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return a.Unmap(), err == nil
}

func isLoopbackHost(h string) bool {
	a, ok := parseHost(h)
	return ok && a.IsLoopback()
}

// isPrivateHost: loopback or an RFC 1918 / ULA address; never unspecified
// (0.0.0.0, ::) or public.
func isPrivateHost(h string) bool {
	a, ok := parseHost(h)
	return ok && (a.IsLoopback() || a.IsPrivate())
}

// httpsLoopbackURLs checks a comma-separated URL list: https only, loopback
// hosts only.
func httpsLoopbackURLs(list string) error {
	urls := splitList(list)
	if len(urls) == 0 {
		return errors.New("no URL")
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		if u.Scheme != "https" {
			return fmt.Errorf("%s is not https", s)
		}
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%s is not on loopback", s)
		}
	}
	return nil
}
