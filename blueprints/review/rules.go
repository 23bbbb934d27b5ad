package review

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Per-blueprint rules. Each reads the effective (defaulted) spec and names
// the offending value in its message.

func ruleAPIEndpoint(_ *env, b *blueprints.Blueprint, out *emitter) {
	if b.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic {
		out.add(b, "spec.apiServer.endpoint", 0, "endpoint is %q: the API server is reachable from outside the private network", b.Spec.APIServer.Endpoint)
	}
}

func ruleAPICIDRs(_ *env, b *blueprints.Blueprint, out *emitter) {
	public := b.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic
	for i, c := range b.Spec.APIServer.AllowedCIDRs {
		why := hugePrefix(c)
		if why == "" {
			continue
		}
		sev := blueprints.SeverityHigh
		suffix := ""
		if public {
			sev = blueprints.SeverityCritical
			suffix = " on a public endpoint"
		}
		out.add(b, fmt.Sprintf("spec.apiServer.allowedCIDRs[%d]", i), sev, "allowed CIDR %q is %s%s", c, why, suffix)
	}
}

// hugePrefix says why a CIDR is too broad to allow, or "" when it is not:
// /0 is the whole internet; IPv4 shorter than /8 and IPv6 shorter than /32
// (a whole registry allocation) are ranges nobody needs to allow.
// IPv4-mapped IPv6 prefixes (::ffff:0:0/96) are judged as the IPv4 range
// they cover.
func hugePrefix(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "" // the loader validated it; nothing to judge
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	switch {
	case p.Bits() == 0:
		return "world-open"
	case p.Addr().Is4() && p.Bits() < 8:
		return fmt.Sprintf("a huge range (/%d, shorter than /8)", p.Bits())
	case p.Addr().Is6() && p.Bits() < 32:
		return fmt.Sprintf("a huge range (/%d, shorter than /32)", p.Bits())
	}
	return ""
}

// ruleEncryptionOn and ruleEncryptionStrong judge the encryption provider
// by the blueprints table: its severity and weakness, under SP-ENC-001
// when it does not encrypt at all and SP-ENC-002 when it is not strong.
func ruleEncryptionOn(_ *env, b *blueprints.Blueprint, out *emitter) {
	judgeEncryptionProvider(b, out, blueprints.EncryptionAtRestOn)
}

func ruleEncryptionStrong(_ *env, b *blueprints.Blueprint, out *emitter) {
	judgeEncryptionProvider(b, out, blueprints.EncryptionProviderStrong)
}

func judgeEncryptionProvider(b *blueprints.Blueprint, out *emitter, control blueprints.ControlID) {
	name := b.Spec.EncryptionAtRest.Provider
	if p, ok := blueprints.EncryptionProviderNamed(name); ok && p.Severity != 0 && p.Control() == control {
		out.add(b, "spec.encryptionAtRest.provider", p.Severity, "encryption provider is %q: %s", name, p.Weakness)
	}
}

func ruleEncryptionSecrets(_ *env, b *blueprints.Blueprint, out *emitter) {
	enc := b.Spec.EncryptionAtRest
	if p, ok := blueprints.EncryptionProviderNamed(enc.Provider); ok && !p.Encrypts() {
		return // nothing is encrypted at all; SP-ENC-001 says so
	}
	if !coversSecrets(enc.Resources) {
		out.add(b, "spec.encryptionAtRest.resources", 0, "encrypted resources %s do not include secrets", quoteList(enc.Resources))
	}
}

// coversSecrets reports whether an EncryptionConfiguration resource list
// includes core-group secrets.
func coversSecrets(resources []string) bool {
	return slices.ContainsFunc(resources, func(r string) bool {
		return r == "secrets" || r == "*" || r == "*.*"
	})
}

func ruleVault(_ *env, b *blueprints.Blueprint, out *emitter) {
	if !b.Spec.Vault.IsEnabled() {
		out.add(b, "spec.vault.enabled", 0, "vault.enabled is false: workload secrets live only as Kubernetes Secrets, without auditing, leases or rotation")
	}
}

func ruleAuditEnabled(_ *env, b *blueprints.Blueprint, out *emitter) {
	if !b.Spec.Audit.IsEnabled() {
		out.add(b, "spec.audit.enabled", 0, "audit.enabled is false: API requests are not logged, so an intrusion cannot be reconstructed")
	}
}

func ruleAuditRetention(_ *env, b *blueprints.Blueprint, out *emitter) {
	a := b.Spec.Audit
	if !a.IsEnabled() {
		return // SP-AUDIT-001 covers it; retention of no logs is moot
	}
	least := blueprints.AuditRetention.Thresholds()
	for _, f := range []struct {
		field string
		got   int
		min   int
		unit  string
	}{
		{"maxAgeDays", v1alpha1.Int(a.MaxAgeDays, v1alpha1.DefaultAuditMaxAgeDays), least.MinAuditAgeDays, "days"},
		{"maxBackups", v1alpha1.Int(a.MaxBackups, v1alpha1.DefaultAuditMaxBackups), least.MinAuditBackups, "backups"},
		{"maxSizeMB", v1alpha1.Int(a.MaxSizeMB, v1alpha1.DefaultAuditMaxSizeMB), least.MinAuditSizeMB, "MB"},
	} {
		if f.got < f.min {
			out.add(b, "spec.audit."+f.field, 0, "audit.%s is %d, below the minimum of %d %s", f.field, f.got, f.min, f.unit)
		}
	}
}

// pssRank orders Pod Security levels: higher is stricter.
func pssRank(level string) int {
	switch level {
	case v1alpha1.PSSRestricted:
		return 3
	case v1alpha1.PSSBaseline:
		return 2
	case v1alpha1.PSSPrivileged:
		return 1
	}
	return 0
}

func rulePSSEnforce(_ *env, b *blueprints.Blueprint, out *emitter) {
	switch lvl := b.Spec.PodSecurity.Enforce; lvl {
	case v1alpha1.PSSPrivileged:
		out.add(b, "spec.podSecurity.enforce", blueprints.SeverityCritical, "Pod Security enforce level is %q: privileged, host-namespace and root containers are admitted", lvl)
	case v1alpha1.PSSBaseline:
		out.add(b, "spec.podSecurity.enforce", blueprints.SeverityHigh, "Pod Security enforce level is %q, weaker than restricted: root containers and privilege escalation are admitted", lvl)
	}
}

func rulePSSExemptions(_ *env, b *blueprints.Blueprint, out *emitter) {
	ps := b.Spec.PodSecurity
	most := blueprints.PodSecurityExemptionsFew.Thresholds().MaxExemptNamespaces
	if n := len(ps.ExemptNamespaces); n > most {
		out.add(b, "spec.podSecurity.exemptNamespaces", 0, "%d namespaces are exempt from Pod Security (more than %d): %s", n, most, quoteList(ps.ExemptNamespaces))
	}
	managed := map[string]bool{}
	for _, ns := range b.Spec.Namespaces {
		managed[ns.Name] = true
	}
	for i, ns := range ps.ExemptNamespaces {
		path := fmt.Sprintf("spec.podSecurity.exemptNamespaces[%d]", i)
		switch {
		case managed[ns]:
			out.add(b, path, 0, "namespace %q is exempt from Pod Security but is a managed workload namespace (spec.namespaces)", ns)
		case ns == "default":
			out.add(b, path, 0, "namespace %q is exempt from Pod Security: anything deployed without a namespace may run privileged", ns)
		}
	}
}

func rulePSSAuditWarn(_ *env, b *blueprints.Blueprint, out *emitter) {
	ps := b.Spec.PodSecurity
	for _, f := range []struct{ field, level string }{{"audit", ps.Audit}, {"warn", ps.Warn}} {
		if pssRank(f.level) < pssRank(v1alpha1.PSSRestricted) {
			out.add(b, "spec.podSecurity."+f.field, 0, "Pod Security %s level is %q, weaker than restricted: violations of restricted go unnoticed", f.field, f.level)
		}
	}
}

func ruleCNI(_ *env, b *blueprints.Blueprint, out *emitter) {
	if cni := b.Spec.Network.CNI; cni == v1alpha1.CNINone {
		out.add(b, "spec.network.cni", 0, "cni is %q: NetworkPolicies are not enforced", cni)
	}
}

func ruleDefaultDeny(_ *env, b *blueprints.Blueprint, out *emitter) {
	if !b.Spec.Network.DefaultDenyEnabled() {
		out.add(b, "spec.network.defaultDeny", 0, "defaultDeny is false: every pod can reach every other pod in managed namespaces")
	}
}

func ruleAllowNarrow(_ *env, b *blueprints.Blueprint, out *emitter) {
	for i, r := range b.Spec.Network.Allow {
		p := fmt.Sprintf("spec.network.allow[%d]", i)
		if r.From.Namespace == "*" {
			out.add(b, p+".from.namespace", 0, "allow rule to namespace %q admits traffic from every namespace (from.namespace %q)", r.To.Namespace, r.From.Namespace)
		}
		if r.From.CIDR != "" {
			if why := hugePrefix(r.From.CIDR); why != "" {
				out.add(b, p+".from.cidr", 0, "allow rule to namespace %q admits traffic from %q, which is %s", r.To.Namespace, r.From.CIDR, why)
			}
		}
		if r.To.CIDR != "" {
			if why := hugePrefix(r.To.CIDR); why != "" {
				out.add(b, p+".to.cidr", 0, "allow rule from %s sends egress to %q, which is %s: default deny no longer stops a compromised pod from reaching the internet", describePeer(r.From), r.To.CIDR, why)
			}
		}
		if r.To.Namespace == "*" {
			out.add(b, p+".to.namespace", 0, "allow rule from %s opens every namespace (to.namespace %q)", describePeer(r.From), r.To.Namespace)
		}
		if len(r.To.Ports) == 0 {
			out.add(b, p+".to.ports", 0, "allow rule from %s to %s lists no ports: every port and protocol is open", describePeer(r.From), describeDest(r.To))
		}
	}
}

// ruleTransparentEncryption: none turns encryption between nodes off on
// every platform. Unset is judged live (verify), because it resolves to
// what the nodes' kernel offers.
func ruleTransparentEncryption(_ *env, b *blueprints.Blueprint, out *emitter) {
	if b.Spec.Network.TransparentEncryption == v1alpha1.TransparentEncryptionNone {
		out.add(b, "spec.network.transparentEncryption", 0, "transparentEncryption is none: pod traffic between nodes crosses the node network unencrypted")
	}
}

func describeDest(d v1alpha1.Destination) string {
	if d.CIDR != "" {
		return fmt.Sprintf("CIDR %q", d.CIDR)
	}
	return fmt.Sprintf("namespace %q", d.Namespace)
}

func describePeer(p v1alpha1.Peer) string {
	if p.CIDR != "" {
		return fmt.Sprintf("CIDR %q", p.CIDR)
	}
	return fmt.Sprintf("namespace %q", p.Namespace)
}

func ruleRBACAdmins(_ *env, b *blueprints.Blueprint, out *emitter) {
	for i, a := range b.Spec.RBAC.Admins {
		if why := broadSubject(a); why != "" {
			out.add(b, fmt.Sprintf("spec.rbac.admins[%d]", i), 0, "cluster-admin is bound to %q, %s", a, why)
		}
	}
}

// broadSubject says why binding cluster-admin to subject gives it to far
// more identities than intended, or "" when subject names someone.
func broadSubject(subject string) string {
	switch {
	case strings.Contains(subject, "*"):
		return "a wildcard"
	case subject == "group:system:authenticated":
		return "which is every authenticated user and service account"
	case subject == "group:system:unauthenticated", subject == "user:system:anonymous":
		return "which is anyone who can reach the API, without credentials"
	case subject == "group:system:serviceaccounts":
		return "which is every service account in every namespace"
	case strings.HasPrefix(subject, "group:system:serviceaccounts:"):
		return "which is every service account of that namespace"
	}
	return ""
}

// prodLabelKeys are label names (after any prefix/) that state an
// environment.
var prodLabelKeys = regexp.MustCompile(`^(env|environment|tier|stage)$`)

func isProdEnv(s string) bool { return v1alpha1.IsProd(s) }

func ruleProdLabels(_ *env, b *blueprints.Blueprint, out *emitter) {
	if isProdEnv(b.Spec.Environment) {
		return
	}
	check := func(path string, labels map[string]string) {
		for _, k := range sortedKeys(labels) {
			name := k
			if i := strings.LastIndexByte(k, '/'); i >= 0 {
				name = k[i+1:]
			}
			if prodLabelKeys.MatchString(strings.ToLower(name)) && isProdEnv(labels[k]) {
				out.add(b, mapPath(path, k), 0, "label %s=%s marks this %q blueprint as production", k, labels[k], b.Spec.Environment)
			}
		}
	}
	check("metadata.labels", b.Metadata.Labels)
	for i, ns := range b.Spec.Namespaces {
		check(fmt.Sprintf("spec.namespaces[%d].labels", i), ns.Labels)
	}
}

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// mapPath appends a map key the way the loader records field paths: dotted
// for a simple word, else bracketed and quoted.
func mapPath(path, key string) string {
	if simpleKey.MatchString(key) {
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// publicRegistries are registries anyone can push to: allowing one whole
// (or one of its hosts without a path) admits every image in the world.
var publicRegistries = []string{"docker.io", "index.docker.io", "registry-1.docker.io", "ghcr.io", "quay.io", "gcr.io", "public.ecr.aws", "registry.gitlab.com"}

// ruleImages: prod pins images by digest and names its registries, each
// narrower than a whole public registry.
func ruleImages(_ *env, b *blueprints.Blueprint, out *emitter) {
	img := b.Spec.Images
	if !isProdEnv(b.Spec.Environment) {
		return
	}
	if !b.Spec.DigestRequired() {
		out.add(b, "spec.images.requireDigest", 0, "prod admits images by mutable tag (requireDigest: false): a pushed tag changes what runs")
	}
	if len(img.AllowedRegistries) == 0 {
		out.add(b, "spec.images", blueprints.SeverityMedium, "prod admits images from any registry: list yours in spec.images.allowedRegistries")
	}
	for i, r := range img.AllowedRegistries {
		host, _, _ := strings.Cut(r, "/")
		if slices.Contains(publicRegistries, host) && !strings.Contains(strings.TrimPrefix(r, "docker.io/library"), "/") {
			out.add(b, fmt.Sprintf("spec.images.allowedRegistries[%d]", i), 0, "allowed registry %q is a whole public registry: anyone can publish there; name your organisation's path (like %s/yourorg)", r, host)
		}
	}
}

// ruleGuardrailsMode: guardrails that only warn stop nothing.
func ruleGuardrailsMode(_ *env, b *blueprints.Blueprint, out *emitter) {
	if b.Spec.Guardrails.Mode != v1alpha1.GuardrailsWarn {
		return
	}
	sev := blueprints.SeverityMedium
	if isProdEnv(b.Spec.Environment) {
		sev = blueprints.SeverityHigh
	}
	out.add(b, "spec.guardrails.mode", sev, "guardrails only warn (mode: warn): forbidden changes are admitted")
}

// ruleStateSecrets: production state whose secrets only a passphrase
// protects.
func ruleStateSecrets(_ *env, b *blueprints.Blueprint, out *emitter) {
	if !isProdEnv(b.Spec.Environment) || b.Spec.State.SecretsProvider != v1alpha1.StateSecretsPassphrase {
		return
	}
	out.add(b, "spec.state.secretsProvider", 0, "the state secrets of production cluster %q are encrypted only with a passphrase (secretsProvider: passphrase): whoever copies the passphrase file reads them, and losing it loses them", b.Name())
}
