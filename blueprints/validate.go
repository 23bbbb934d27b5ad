package blueprints

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// SupportedKubernetesVersions are the versions secprov can provision.
var SupportedKubernetesVersions = []string{v1alpha1.KubernetesVersion}

// ExceptionDateLayout is the format of exceptions[].expires.
const ExceptionDateLayout = "2006-01-02"

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelValue   = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	labelName    = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	controlID    = regexp.MustCompile(`^SP-[A-Z]+-[0-9]{3}$`)
	vaultMount   = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
	vaultKVPath  = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*(/\*|\*)?$`)
	resourceName = regexp.MustCompile(`^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?))?$`)
	// registryPattern is an entry of spec.images.allowedRegistries: a
	// registry host (with a dot, a port, or localhost, so it cannot be
	// mistaken for a Docker Hub path) and optional lowercase path segments.
	registryPattern = regexp.MustCompile(`^(?:localhost(?::[0-9]{1,5})?|[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)+(?::[0-9]{1,5})?|[a-z0-9](?:[-a-z0-9]*[a-z0-9])?:[0-9]{1,5})(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	subjectRef      = regexp.MustCompile(`^(group|user):[^\s]+$|^serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

type validator struct {
	bp   *Blueprint
	errs ErrorList
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.bp.Source.File, Pos: v.bp.PosOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(path, got string, allowed ...string) {
	if !slices.Contains(allowed, got) {
		v.errorf(path, "unsupported value %q; use one of: %s", got, strings.Join(allowed, ", "))
	}
}

// IsDNSLabel reports whether s is an RFC 1123 DNS label: at most 63
// lowercase letters, digits and '-', starting and ending with a letter or
// digit. Cluster names, environments and namespaces are DNS labels; this
// is the one definition of the rule (paths and the Vault resources use it).
func IsDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// IsVaultKVPath reports whether p is a KV path a namespace may be granted:
// segments of letters, digits, '_' and '-', optionally ending in * or /*
// (no '..', no leading '/').
func IsVaultKVPath(p string) bool { return vaultKVPath.MatchString(p) }

func (v *validator) dnsLabel(path, s, what string) {
	switch {
	case s == "":
		v.errorf(path, "%s is required", what)
	case !IsDNSLabel(s):
		v.errorf(path, "%s %q must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", what, truncate(s))
	}
}

// intRanges are the allowed values of every integer field, by field path
// with list indices written as []. The decoder and the validator both read
// them, so an integer too large to decode gets the same range as one that
// decodes but is out of range.
var intRanges = map[string][2]int{
	"spec.provider.kind.workers":      {0, 20},
	"spec.network.allow[].to.ports[]": {1, 65535},
	"spec.audit.maxAgeDays":           {0, 3650},
	"spec.audit.maxBackups":           {0, 1000},
	"spec.audit.maxSizeMB":            {1, 100_000},
}

var listIndex = regexp.MustCompile(`\[[0-9]+\]`)

// IntRange returns the allowed range of the integer field at path.
func IntRange(path string) (lo, hi int, ok bool) {
	r, ok := intRanges[listIndex.ReplaceAllString(path, "[]")]
	return r[0], r[1], ok
}

func (v *validator) intRange(path string, p *int) {
	lo, hi, ok := IntRange(path)
	if !ok {
		panic("no range for integer field " + path) // the table is tested against the types
	}
	if p != nil && (*p < lo || *p > hi) {
		v.errorf(path, "%d is out of range; use %d to %d", *p, lo, hi)
	}
}

func (v *validator) labels(path string, m map[string]string) {
	for k, val := range m {
		kp := mapPath(path, k)
		name := k
		if prefix, n, ok := strings.Cut(k, "/"); ok {
			name = n
			if len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
				v.errorf(kp, "label key prefix %q must be a DNS subdomain", truncate(prefix))
			}
		}
		if len(name) > 63 || !labelName.MatchString(name) {
			v.errorf(kp, "label key %q is not a valid Kubernetes label name", truncate(k))
		}
		if len(val) > 63 || !labelValue.MatchString(val) {
			v.errorf(kp, "label value %q is not a valid Kubernetes label value", truncate(val))
		}
	}
}

// prefix parses an IPv4/IPv6 CIDR and insists on the canonical form.
func (v *validator) prefix(path, s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.errorf(path, "%q is not a CIDR like 10.0.0.0/16", truncate(s))
		return p, false
	}
	if p.Masked() != p {
		v.errorf(path, "%q has host bits set; did you mean %s?", s, p.Masked())
		return p, false
	}
	return p, true
}

func validate(bp *Blueprint) ErrorList {
	v := &validator{bp: bp}
	s := &bp.Spec

	v.dnsLabel("metadata.name", bp.Metadata.Name, "cluster name")
	v.labels("metadata.labels", bp.Metadata.Labels)
	v.dnsLabel("spec.environment", s.Environment, "environment")

	v.oneOf("spec.provider.type", s.Provider.Type, v1alpha1.ProviderLocal, v1alpha1.ProviderKind)
	if k := s.Provider.Kind; k != nil {
		if s.Provider.Type != v1alpha1.ProviderKind {
			v.errorf("spec.provider.kind", "kind options are set but provider type is %q: %s", s.Provider.Type, refuseKindOptions)
		}
		v.intRange("spec.provider.kind.workers", k.Workers)
		if strings.ContainsAny(k.NodeImage, " \t\n") {
			v.errorf("spec.provider.kind.nodeImage", "image reference %q contains whitespace", truncate(k.NodeImage))
		}
		if k.Images != "" && k.Images != v1alpha1.KindImagesUpstream && k.Images != v1alpha1.KindImagesOffline {
			v.errorf("spec.provider.kind.images", "unknown image set %q; want upstream (the pinned registry images) or offline (what secprov images build made)", truncate(k.Images))
		}
	}
	if s.Provider.Type == v1alpha1.ProviderKind {
		validateKind(v, bp)
	}
	if s.Provider.Type == v1alpha1.ProviderLocal && s.Network.TransparentEncryption != "" && s.Network.TransparentEncryption != v1alpha1.TransparentEncryptionNone {
		v.refuse("spec.network.transparentEncryption", v1alpha1.ProviderLocal, "")
	}
	if !slices.Contains(SupportedKubernetesVersions, s.Kubernetes.Version) {
		v.errorf("spec.kubernetes.version", "unsupported version %q; supported: %s", truncate(s.Kubernetes.Version), strings.Join(SupportedKubernetesVersions, ", "))
	}

	v.oneOf("spec.apiServer.endpoint", s.APIServer.Endpoint, v1alpha1.EndpointPrivate, v1alpha1.EndpointPublic)
	for i, c := range s.APIServer.AllowedCIDRs {
		v.prefix(fmt.Sprintf("spec.apiServer.allowedCIDRs[%d]", i), c)
	}
	if s.Provider.Type == v1alpha1.ProviderLocal && s.APIServer.Endpoint == v1alpha1.EndpointPrivate && len(s.APIServer.AllowedCIDRs) > 0 {
		v.refuse("spec.apiServer.allowedCIDRs", v1alpha1.ProviderLocal, "endpoint is private: ")
	}

	validateNetwork(v, s)
	validateNamespaces(v, s)

	v.oneOf("spec.encryptionAtRest.provider", s.EncryptionAtRest.Provider, EncryptionProviderNames()...)
	seenRes := map[string]bool{}
	for i, r := range s.EncryptionAtRest.Resources {
		p := fmt.Sprintf("spec.encryptionAtRest.resources[%d]", i)
		switch {
		case !resourceName.MatchString(r):
			v.errorf(p, "%q is not a resource name like secrets or configmaps or deployments.apps", truncate(r))
		case seenRes[r]:
			v.errorf(p, "resource %q is listed twice", r)
		}
		seenRes[r] = true
	}

	validateVault(v, s)

	v.oneOf("spec.audit.policy", s.Audit.Policy, v1alpha1.AuditPolicyDefault)
	v.intRange("spec.audit.maxAgeDays", s.Audit.MaxAgeDays)
	v.intRange("spec.audit.maxBackups", s.Audit.MaxBackups)
	v.intRange("spec.audit.maxSizeMB", s.Audit.MaxSizeMB)

	levels := []string{v1alpha1.PSSRestricted, v1alpha1.PSSBaseline, v1alpha1.PSSPrivileged}
	v.oneOf("spec.podSecurity.enforce", s.PodSecurity.Enforce, levels...)
	v.oneOf("spec.podSecurity.audit", s.PodSecurity.Audit, levels...)
	v.oneOf("spec.podSecurity.warn", s.PodSecurity.Warn, levels...)
	uniqueLabels(v, "spec.podSecurity.exemptNamespaces", s.PodSecurity.ExemptNamespaces, "namespace")

	for i, a := range s.RBAC.Admins {
		if !subjectRef.MatchString(a) {
			v.errorf(fmt.Sprintf("spec.rbac.admins[%d]", i), "%q must be group:NAME, user:NAME or serviceaccount:NAMESPACE:NAME", truncate(a))
		}
	}

	validateImages(v, s)
	v.oneOf("spec.guardrails.mode", s.Guardrails.Mode, v1alpha1.GuardrailsDeny, v1alpha1.GuardrailsWarn)
	v.oneOf("spec.state.secretsProvider", s.State.SecretsProvider, v1alpha1.StateSecretsPassphrase, v1alpha1.StateSecretsVault)

	seenCtl := map[string]bool{}
	for i, e := range s.Exceptions {
		p := fmt.Sprintf("spec.exceptions[%d]", i)
		switch {
		case e.Control == "":
			v.errorf(p+".control", "control is required: the review rule ID this exception weakens, e.g. %s", APIEndpointPrivate)
		case !controlID.MatchString(e.Control):
			v.errorf(p+".control", "%q is not a control ID like %s", truncate(e.Control), APIEndpointPrivate)
		case seenCtl[e.Control]:
			v.errorf(p+".control", "a second exception for %s; merge them into one", e.Control)
		}
		seenCtl[e.Control] = true
		if e.Expires == "" {
			v.errorf(p+".expires", "expires is required (YYYY-MM-DD): exceptions must end")
		} else if _, err := time.Parse(ExceptionDateLayout, e.Expires); err != nil {
			v.errorf(p+".expires", "%q is not a date like 2027-03-01", truncate(e.Expires))
		}
	}
	return v.errs
}

// Prefix lengths allowed for cluster networks, per family. Pods: a node
// gets a /24 (IPv4) or /64 (IPv6) and the controller manager allocates at
// most 2^16 of them. Services: the API server allows at most 2^20 service
// IPs, and a handful is too few to run the cluster's own services.
var (
	podBits     = map[bool][2]int{true: {8, 24}, false: {48, 64}}    // by Is4
	serviceBits = map[bool][2]int{true: {12, 28}, false: {108, 124}} // by Is4
)

// reservedNets are address ranges that must never carry cluster traffic:
// routing them to pods or services would shadow the node's own loopback,
// link-local (cloud metadata), multicast or reserved addresses.
var reservedNets = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "the IPv4 \"this network\" range 0.0.0.0/8"},
	{netip.MustParsePrefix("127.0.0.0/8"), "the loopback range 127.0.0.0/8"},
	{netip.MustParsePrefix("169.254.0.0/16"), "the link-local range 169.254.0.0/16 (cloud metadata lives there)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "the multicast range 224.0.0.0/4"},
	{netip.MustParsePrefix("240.0.0.0/4"), "the reserved range 240.0.0.0/4"},
	{netip.MustParsePrefix("::/127"), "the IPv6 unspecified and loopback addresses ::/127"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "the IPv4-mapped range ::ffff:0:0/96 (write IPv4 networks as IPv4)"},
	{netip.MustParsePrefix("fe80::/10"), "the IPv6 link-local range fe80::/10"},
	{netip.MustParsePrefix("ff00::/8"), "the IPv6 multicast range ff00::/8"},
}

// clusterRange checks a pod or service network: a sane size for its
// family and no overlap with reserved ranges.
func (v *validator) clusterRange(path string, p netip.Prefix, bits map[bool][2]int) {
	r := bits[p.Addr().Is4()]
	if p.Bits() < r[0] || p.Bits() > r[1] {
		family := "IPv4"
		if !p.Addr().Is4() {
			family = "IPv6"
		}
		v.errorf(path, "prefix length /%d is out of range for %s; use /%d to /%d", p.Bits(), family, r[0], r[1])
	}
	for _, n := range reservedNets {
		if n.prefix.Overlaps(p) {
			v.errorf(path, "%s overlaps %s; use a private range such as 10.0.0.0/8 or fd00::/8", p, n.what)
			return
		}
	}
}

func validateNetwork(v *validator, s *v1alpha1.Spec) {
	n := &s.Network
	v.oneOf("spec.network.cni", n.CNI, v1alpha1.CNICilium, v1alpha1.CNINone)
	if n.TransparentEncryption != "" {
		v.oneOf("spec.network.transparentEncryption", n.TransparentEncryption,
			v1alpha1.TransparentEncryptionWireGuard, v1alpha1.TransparentEncryptionIPsec, v1alpha1.TransparentEncryptionNone)
	}
	pod, podOK := v.prefix("spec.network.podCIDR", n.PodCIDR)
	svc, svcOK := v.prefix("spec.network.serviceCIDR", n.ServiceCIDR)
	if podOK {
		v.clusterRange("spec.network.podCIDR", pod, podBits)
	}
	if svcOK {
		v.clusterRange("spec.network.serviceCIDR", svc, serviceBits)
	}
	if podOK && svcOK && pod.Overlaps(svc) {
		v.errorf("spec.network.serviceCIDR", "%s overlaps podCIDR %s; pick disjoint ranges", svc, pod)
	}
	for i, r := range n.Allow {
		p := fmt.Sprintf("spec.network.allow[%d]", i)
		switch {
		case r.From.Namespace == "" && r.From.CIDR == "":
			v.errorf(p+".from", "set from.namespace or from.cidr")
		case r.From.Namespace != "" && r.From.CIDR != "":
			v.errorf(p+".from", "set either from.namespace or from.cidr, not both")
		case r.From.CIDR != "":
			v.prefix(p+".from.cidr", r.From.CIDR)
			if r.From.PodSelector != nil {
				v.errorf(p+".from.podSelector", "podSelector applies to from.namespace, not to from.cidr")
			}
		case r.From.Namespace != "*":
			v.dnsLabel(p+".from.namespace", r.From.Namespace, "namespace")
		}
		v.labels(p+".from.podSelector", r.From.PodSelector)
		switch {
		case r.To.CIDR != "" && r.To.Namespace != "":
			v.errorf(p+".to", "set either to.namespace or to.cidr, not both")
		case r.To.CIDR != "":
			if pfx, ok := v.prefix(p+".to.cidr", r.To.CIDR); ok && (podOK && prefixWithin(pfx, pod) || svcOK && prefixWithin(pfx, svc)) {
				v.errorf(p+".to.cidr", "%s is inside this cluster's pod or service CIDR, which a CIDR rule does not select (pods are selected by namespace); use to.namespace", r.To.CIDR)
			}
			if r.To.PodSelector != nil {
				v.errorf(p+".to.podSelector", "podSelector applies to to.namespace, not to to.cidr")
			}
			if r.From.CIDR != "" {
				v.errorf(p+".to.cidr", "a rule from a CIDR to a CIDR is not traffic of this cluster; allow from a namespace (from.namespace) to to.cidr")
			}
		case r.To.Namespace == "":
			v.errorf(p+".to", "set to.namespace or to.cidr")
		case r.To.Namespace != "*":
			v.dnsLabel(p+".to.namespace", r.To.Namespace, "namespace")
		}
		v.labels(p+".to.podSelector", r.To.PodSelector)
		seen := map[int]bool{}
		for j, port := range r.To.Ports {
			pp := fmt.Sprintf("%s.to.ports[%d]", p, j)
			if lo, hi, _ := IntRange(pp); port < lo || port > hi {
				v.errorf(pp, "port %d is out of range; use %d to %d", port, lo, hi)
			} else if seen[port] {
				v.errorf(pp, "port %d is listed twice", port)
			}
			seen[port] = true
		}
		if r.To.Protocol != "" {
			if len(r.To.Ports) == 0 {
				v.errorf(p+".to.protocol", "protocol needs ports; without ports every port and protocol is allowed")
			}
			v.oneOf(p+".to.protocol", r.To.Protocol, "TCP", "UDP", "SCTP")
		}
	}
}

// prefixWithin reports whether p lies inside outer.
func prefixWithin(p, outer netip.Prefix) bool {
	return p.Bits() >= outer.Bits() && outer.Contains(p.Addr())
}

func validateNamespaces(v *validator, s *v1alpha1.Spec) {
	seen := map[string]bool{}
	for i, ns := range s.Namespaces {
		p := fmt.Sprintf("spec.namespaces[%d]", i)
		v.dnsLabel(p+".name", ns.Name, "namespace name")
		switch {
		case strings.HasPrefix(ns.Name, "kube-"):
			v.errorf(p+".name", "namespaces starting with kube- are reserved for Kubernetes")
		case seen[ns.Name]:
			v.errorf(p+".name", "namespace %q is listed twice", ns.Name)
		}
		seen[ns.Name] = true
		v.labels(p+".labels", ns.Labels)
	}
}

// KindMaxNameLength is the longest cluster name the kind provider takes:
// its node containers are named and hostnamed <name>-control-plane, and a
// Linux hostname holds at most 63 characters.
const KindMaxNameLength = 63 - len("-control-plane")

// validateKind refuses what the kind provider cannot realise as written,
// instead of realising something weaker.
func validateKind(v *validator, bp *Blueprint) {
	s := &bp.Spec
	if n := bp.Metadata.Name; len(n) > KindMaxNameLength {
		v.refuse("metadata.name", v1alpha1.ProviderKind, fmt.Sprintf("cluster name %q is %d characters and kind clusters take at most %d: ", truncate(n), len(n), KindMaxNameLength))
	}
	if s.Vault.Address != "" && s.Vault.IsEnabled() && len(s.Vault.Namespaces) > 0 {
		v.refuse("spec.vault.address", v1alpha1.ProviderKind, fmt.Sprintf("on kind, the pods of spec.vault.namespaces reach only secprov's local Vault (through a relay on the cluster's network, with an egress policy to it), not %s: ", truncate(s.Vault.Address)))
	}
	if s.Network.TransparentEncryption == v1alpha1.TransparentEncryptionIPsec {
		v.refuse("spec.network.transparentEncryption", v1alpha1.ProviderKind, "")
	}
	if s.Network.TransparentEncryption != "" && s.Network.TransparentEncryption != v1alpha1.TransparentEncryptionNone && s.Network.CNI != v1alpha1.CNICilium {
		v.errorf("spec.network.transparentEncryption", "%s is Cilium's transparent encryption and spec.network.cni is %q; set cni: cilium or transparentEncryption: none", s.Network.TransparentEncryption, s.Network.CNI)
	}
	if len(s.APIServer.AllowedCIDRs) > 0 {
		v.refuse("spec.apiServer.allowedCIDRs", v1alpha1.ProviderKind, "")
	}
}

func validateVault(v *validator, s *v1alpha1.Spec) {
	vt := &s.Vault
	if vt.Address != "" {
		u, err := url.Parse(vt.Address)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.errorf("spec.vault.address", "%q is not a URL like https://vault.example.com:8200", truncate(vt.Address))
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
			v.errorf("spec.vault.address", "plain http is only allowed to a loopback Vault; use https")
		case u.User != nil:
			v.errorf("spec.vault.address", "credentials must not be written into the Vault address")
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			v.errorf("spec.vault.address", "the Vault address takes no query or fragment")
		}
	}
	for _, f := range []struct{ path, val string }{
		{"spec.vault.transitMount", vt.TransitMount},
		{"spec.vault.transitKey", vt.TransitKey},
		{"spec.vault.kvMount", vt.KVMount},
		{"spec.vault.authPath", vt.AuthPath},
	} {
		if !vaultMount.MatchString(f.val) {
			v.errorf(f.path, "%q is not a Vault path (letters, digits, '_', '-', separated by '/')", truncate(f.val))
		}
	}
	seen := map[string]bool{}
	for i, ns := range vt.Namespaces {
		p := fmt.Sprintf("spec.vault.namespaces[%d]", i)
		v.dnsLabel(p+".namespace", ns.Namespace, "namespace")
		if seen[ns.Namespace] {
			v.errorf(p+".namespace", "namespace %q is listed twice", ns.Namespace)
		}
		seen[ns.Namespace] = true
		if len(ns.Paths) == 0 {
			v.errorf(p+".paths", "list at least one KV path the namespace may read, e.g. %s/*", ns.Namespace)
		}
		for j, kp := range ns.Paths {
			if !IsVaultKVPath(kp) {
				v.errorf(fmt.Sprintf("%s.paths[%d]", p, j), "%q is not a KV path like payments/* (no '..', no leading '/')", truncate(kp))
			}
		}
	}
}

func uniqueLabels(v *validator, path string, names []string, what string) {
	seen := map[string]bool{}
	for i, n := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		v.dnsLabel(p, n, what)
		if seen[n] {
			v.errorf(p, "%s %q is listed twice", what, n)
		}
		seen[n] = true
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// IsRegistryPattern reports whether s is a valid entry of
// spec.images.allowedRegistries.
func IsRegistryPattern(s string) bool { return len(s) <= 255 && registryPattern.MatchString(s) }

func validateImages(v *validator, s *v1alpha1.Spec) {
	seen := map[string]bool{}
	for i, r := range s.Images.AllowedRegistries {
		p := fmt.Sprintf("spec.images.allowedRegistries[%d]", i)
		switch {
		case strings.Contains(r, "://"):
			v.errorf(p, "%q has a scheme; write the registry host and path only, like registry.example.com/team", truncate(r))
		case strings.ContainsAny(r, "*?"):
			v.errorf(p, "%q has a wildcard; list the registry host with an optional path prefix instead (registry.example.com/team admits everything below it)", truncate(r))
		case strings.Contains(r, "@") || strings.HasSuffix(r, "/"):
			v.errorf(p, "%q is not a registry with a path prefix: no digest and no trailing '/', like registry.example.com/team", truncate(r))
		case !IsRegistryPattern(r):
			host, _, _ := strings.Cut(r, "/")
			if !strings.ContainsAny(host, ".:") && host != "localhost" {
				hub := "docker.io/" + r
				if !strings.Contains(r, "/") {
					hub = "docker.io/library/" + r
				}
				v.errorf(p, "%q does not start with a registry host; images without one come from Docker Hub, so write %s", truncate(r), truncate(hub))
			} else {
				v.errorf(p, "%q is not a registry host (lowercase, with a dot or a port) followed by optional lowercase path segments", truncate(r))
			}
		case seen[r]:
			v.errorf(p, "registry %q is listed twice", r)
		}
		seen[r] = true
	}
}
