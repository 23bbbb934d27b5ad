package blueprints

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Canonical forms. One network or one Vault can be written many ways
// (::ffff:10.0.0.0/112 is 10.0.0.0/16; https://Vault.example.com:443/ is
// https://vault.example.com), and isolation between environments is
// decided by comparing them. The loader rewrites every such field into its
// canonical form, so review, --base, up and verify all compare and render
// one spelling; the functions are exported for what compares values that
// did not come through the loader (state written by older versions).

// CanonicalPrefix returns p in the one family and form secprov compares:
// an IPv4-mapped IPv6 prefix that lies inside ::ffff:0:0/96 becomes the
// IPv4 prefix it maps.
func CanonicalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// CanonicalCIDR returns the canonical spelling of a CIDR, or s unchanged
// when it does not parse (validation reports it).
func CanonicalCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	return CanonicalPrefix(p).String()
}

// defaultPorts are the ports a URL scheme implies.
var defaultPorts = map[string]string{"https": "443", "http": "80"}

// CanonicalURL returns the canonical form of an http(s) service address:
// scheme and host lower-cased, a trailing dot of the host dropped, an
// IPv4-mapped IPv6 host written as IPv4, the scheme's default port
// dropped, leading zeros of the port dropped, and the path cleaned with no
// trailing slash. Query, fragment and user info are refused by
// validation, and kept here so that two addresses differing in them are
// never judged the same.
func CanonicalURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("%q has no host", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().WithZone("").String()
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", fmt.Errorf("%q has an invalid port", raw)
		}
		port = strconv.FormatUint(n, 10)
		if port == defaultPorts[u.Scheme] {
			port = ""
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	p := u.Path
	if p != "" {
		p = path.Clean("/" + p)
	}
	if p == "/" {
		p = ""
	}
	u.Path, u.RawPath = p, ""
	return u.String(), nil
}

// SameService reports whether two http(s) addresses name the same
// service once canonical. Addresses that do not parse are compared as
// written, case-folded.
func SameService(a, b string) bool {
	ca, errA := CanonicalURL(a)
	cb, errB := CanonicalURL(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return ca == cb
}

// canonicalize rewrites the fields that have several spellings into
// their canonical form. It runs after defaults and before validation, so
// validation messages show the canonical value. It is idempotent.
func canonicalize(bp *Blueprint) {
	s := &bp.Spec
	s.Network.PodCIDR = CanonicalCIDR(s.Network.PodCIDR)
	s.Network.ServiceCIDR = CanonicalCIDR(s.Network.ServiceCIDR)
	for i := range s.APIServer.AllowedCIDRs {
		s.APIServer.AllowedCIDRs[i] = CanonicalCIDR(s.APIServer.AllowedCIDRs[i])
	}
	for i := range s.Network.Allow {
		if c := &s.Network.Allow[i].From.CIDR; *c != "" {
			*c = CanonicalCIDR(*c)
		}
	}
	if a := s.Vault.Address; a != "" {
		if c, err := CanonicalURL(a); err == nil {
			s.Vault.Address = c
		}
	}
}
