package review

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// ruleChanges compares each blueprint with its version at the base
// revision and reports every change that weakens security (SP-CHG-001),
// at the severity of the control the change weakens. Both sides are
// effective (defaulted) specs, so deleting a line that spelled out a
// default is not a change, and deleting a line that set a weaker value is
// not mistaken for one.
func ruleChanges(e *env, bps []*blueprints.Blueprint, out *emitter) {
	if e.base == nil {
		return
	}
	for _, cur := range bps {
		if old := e.base.Match(cur); old != nil {
			c := &changes{old: old, cur: cur, rev: e.base.Rev, out: out}
			c.compare()
		}
	}
}

type changes struct {
	old, cur *blueprints.Blueprint
	rev      string
	out      *emitter
}

// report adds a weakening of control at path.
func (c *changes) report(control blueprints.ControlID, path, format string, args ...any) {
	c.out.addFor(control, c.cur, path, 0, "%s: %s (base %s)", control, fmt.Sprintf(format, args...), c.rev)
}

// weakened reports a scalar field that moved to a weaker value.
func (c *changes) weakened(control blueprints.ControlID, path, from, to string) {
	c.report(control, path, "%s weakened from %q to %q", path, from, to)
}

func (c *changes) compare() {
	o, n := &c.old.Spec, &c.cur.Spec

	// API server.
	if o.APIServer.Endpoint != v1alpha1.EndpointPublic && n.APIServer.Endpoint == v1alpha1.EndpointPublic {
		c.weakened(blueprints.APIEndpointPrivate, "spec.apiServer.endpoint", o.APIServer.Endpoint, n.APIServer.Endpoint)
	}
	for i, cidr := range n.APIServer.AllowedCIDRs {
		if !slices.Contains(o.APIServer.AllowedCIDRs, cidr) {
			c.report(blueprints.APIAllowedCIDRsNarrow, fmt.Sprintf("spec.apiServer.allowedCIDRs[%d]", i), "allowed CIDR %q added to the API server endpoint", cidr)
		}
	}

	// Encryption at rest.
	if blueprints.EncryptionRank(n.EncryptionAtRest.Provider) < blueprints.EncryptionRank(o.EncryptionAtRest.Provider) {
		ctl := blueprints.EncryptionProviderStrong
		if p, ok := blueprints.EncryptionProviderNamed(n.EncryptionAtRest.Provider); ok {
			ctl = p.Control()
		}
		c.weakened(ctl, "spec.encryptionAtRest.provider", o.EncryptionAtRest.Provider, n.EncryptionAtRest.Provider)
	}
	for _, r := range o.EncryptionAtRest.Resources {
		if !stillEncrypted(r, n.EncryptionAtRest.Resources) {
			c.report(blueprints.EncryptionCoversSecrets, "spec.encryptionAtRest.resources", "resource %q is no longer encrypted at rest", r)
		}
	}

	// Network.
	if o.Network.CNI != v1alpha1.CNINone && n.Network.CNI == v1alpha1.CNINone {
		c.weakened(blueprints.CiliumCNI, "spec.network.cni", o.Network.CNI, n.Network.CNI)
	}
	if o.Network.TransparentEncryption != v1alpha1.TransparentEncryptionNone && n.Network.TransparentEncryption == v1alpha1.TransparentEncryptionNone {
		c.weakened(blueprints.NetworkEncrypted, "spec.network.transparentEncryption", orDefault(o.Network.TransparentEncryption), n.Network.TransparentEncryption)
	}
	if o.Network.DefaultDenyEnabled() && !n.Network.DefaultDenyEnabled() {
		c.weakened(blueprints.NetworkDefaultDeny, "spec.network.defaultDeny", "true", "false")
	}
	c.allowRules()

	// Vault.
	if o.Vault.IsEnabled() && !n.Vault.IsEnabled() {
		c.weakened(blueprints.VaultSecrets, "spec.vault.enabled", "true", "false")
	}

	// Audit.
	if o.Audit.IsEnabled() && !n.Audit.IsEnabled() {
		c.weakened(blueprints.AuditLogging, "spec.audit.enabled", "true", "false")
	}
	if n.Audit.IsEnabled() {
		for _, f := range []struct {
			field    string
			old, cur *int
			def      int
		}{
			{"maxAgeDays", o.Audit.MaxAgeDays, n.Audit.MaxAgeDays, v1alpha1.DefaultAuditMaxAgeDays},
			{"maxBackups", o.Audit.MaxBackups, n.Audit.MaxBackups, v1alpha1.DefaultAuditMaxBackups},
			{"maxSizeMB", o.Audit.MaxSizeMB, n.Audit.MaxSizeMB, v1alpha1.DefaultAuditMaxSizeMB},
		} {
			if was, is := v1alpha1.Int(f.old, f.def), v1alpha1.Int(f.cur, f.def); is < was {
				c.report(blueprints.AuditRetention, "spec.audit."+f.field, "spec.audit.%s lowered from %d to %d", f.field, was, is)
			}
		}
	}

	// Pod Security.
	for _, f := range []struct {
		field    string
		ctl      blueprints.ControlID
		old, cur string
	}{
		{"enforce", blueprints.PodSecurityRestricted, o.PodSecurity.Enforce, n.PodSecurity.Enforce},
		{"audit", blueprints.PodSecurityAuditWarn, o.PodSecurity.Audit, n.PodSecurity.Audit},
		{"warn", blueprints.PodSecurityAuditWarn, o.PodSecurity.Warn, n.PodSecurity.Warn},
	} {
		if pssRank(f.cur) < pssRank(f.old) {
			c.weakened(f.ctl, "spec.podSecurity."+f.field, f.old, f.cur)
		}
	}
	for i, ns := range n.PodSecurity.ExemptNamespaces {
		if !slices.Contains(o.PodSecurity.ExemptNamespaces, ns) {
			c.report(blueprints.PodSecurityExemptionsFew, fmt.Sprintf("spec.podSecurity.exemptNamespaces[%d]", i), "namespace %q newly exempt from Pod Security", ns)
		}
	}

	// RBAC.
	for i, a := range n.RBAC.Admins {
		if !slices.Contains(o.RBAC.Admins, a) {
			c.report(blueprints.RBACAdminsNamed, fmt.Sprintf("spec.rbac.admins[%d]", i), "%q newly bound to cluster-admin", a)
		}
	}

	// Guardrails.
	if o.DigestRequired() && !n.DigestRequired() {
		c.weakened(blueprints.GuardrailImages, "spec.images.requireDigest", "true", "false")
	}
	if len(o.Images.AllowedRegistries) > 0 {
		if len(n.Images.AllowedRegistries) == 0 {
			c.report(blueprints.GuardrailImages, "spec.images", "allowedRegistries removed: images from any registry are admitted")
		}
		for i, r := range n.Images.AllowedRegistries {
			if !slices.Contains(o.Images.AllowedRegistries, r) {
				c.report(blueprints.GuardrailImages, fmt.Sprintf("spec.images.allowedRegistries[%d]", i), "registry %q newly allowed", r)
			}
		}
	}
	if o.Guardrails.Mode != v1alpha1.GuardrailsWarn && n.Guardrails.Mode == v1alpha1.GuardrailsWarn {
		c.weakened(blueprints.GuardrailsEnforced, "spec.guardrails.mode", o.Guardrails.Mode, n.Guardrails.Mode)
	}

	c.exceptions()
}

// exceptions reports new exceptions and extended expiry dates. They are
// final: an exception cannot excuse its own introduction.
func (c *changes) exceptions() {
	old := map[string]v1alpha1.Exception{}
	for _, x := range c.old.Spec.Exceptions {
		old[x.Control] = x
	}
	for i, x := range c.cur.Spec.Exceptions {
		ctl := blueprints.ControlID(x.Control)
		if _, known := blueprints.ControlByID(ctl); !known {
			ctl = c.out.rule // unknown control: SP-EXC-003 says so; judge the change by SP-CHG-001
		}
		path := fmt.Sprintf("spec.exceptions[%d]", i)
		prev, had := old[x.Control]
		switch {
		case !had:
			c.report(ctl, path, "new exception for %s until %s added", x.Control, x.Expires)
		case x.Expires > prev.Expires: // YYYY-MM-DD compares as text
			c.report(ctl, path+".expires", "exception for %s extended from %s to %s", x.Control, prev.Expires, x.Expires)
		default:
			continue
		}
		c.out.last().final = true
	}
}

// allowRules reports allow rules that are new or broader than before. A
// rule is fine when some base rule already allowed everything it allows;
// otherwise it is described against the base rule at the same index (what
// was broadened), or reported as new.
func (c *changes) allowRules() {
	olds := c.old.Spec.Network.Allow
	for i, r := range c.cur.Spec.Network.Allow {
		if slices.ContainsFunc(olds, func(o v1alpha1.AllowRule) bool { return covers(o, r) }) {
			continue
		}
		p := fmt.Sprintf("spec.network.allow[%d]", i)
		var before *v1alpha1.AllowRule
		for j := range olds {
			if sameEndpoints(olds[j], r) {
				before = &olds[j]
				break
			}
		}
		if before == nil && i < len(olds) {
			before = &olds[i]
		}
		if before == nil || !c.broadened(p, *before, r) {
			c.report(blueprints.NetworkAllowNarrow, p, "new allow rule from %s to %s%s", describePeer(r.From), describeDest(r.To), portsText(r.To.Ports))
		}
	}
}

// broadened reports how r is broader than the base rule o; it returns false
// when the two are too different to call r a broadened o.
func (c *changes) broadened(p string, o, r v1alpha1.AllowRule) bool {
	n := len(c.out.hits)
	if r.From.Namespace == "*" && o.From.Namespace != "*" {
		c.report(blueprints.NetworkAllowNarrow, p+".from.namespace", "allow rule source widened from %s to every namespace", describePeer(o.From))
	} else if r.From.CIDR != "" && o.From.CIDR != "" && r.From.CIDR != o.From.CIDR && cidrCovers(r.From.CIDR, o.From.CIDR) {
		c.report(blueprints.NetworkAllowNarrow, p+".from.cidr", "allow rule source CIDR widened from %q to %q", o.From.CIDR, r.From.CIDR)
	}
	if r.From.Namespace == o.From.Namespace && len(o.From.PodSelector) > 0 && !selectorCovers(o.From.PodSelector, r.From.PodSelector) {
		c.report(blueprints.NetworkAllowNarrow, p+".from.podSelector", "allow rule source pod selector loosened")
	}
	if r.To.CIDR != "" && o.To.CIDR != "" && r.To.CIDR != o.To.CIDR && cidrCovers(r.To.CIDR, o.To.CIDR) {
		c.report(blueprints.NetworkAllowNarrow, p+".to.cidr", "allow rule destination CIDR widened from %q to %q", o.To.CIDR, r.To.CIDR)
	}
	if r.To.Namespace == "*" && o.To.Namespace != "*" {
		c.report(blueprints.NetworkAllowNarrow, p+".to.namespace", "allow rule destination widened from namespace %q to every namespace", o.To.Namespace)
	}
	if r.To.Namespace == o.To.Namespace && len(o.To.PodSelector) > 0 && !selectorCovers(o.To.PodSelector, r.To.PodSelector) {
		c.report(blueprints.NetworkAllowNarrow, p+".to.podSelector", "allow rule destination pod selector loosened")
	}
	if len(o.To.Ports) > 0 {
		if len(r.To.Ports) == 0 {
			c.report(blueprints.NetworkAllowNarrow, p+".to.ports", "allow rule ports %v removed: every port is now open", o.To.Ports)
		} else {
			var added []int
			for _, port := range r.To.Ports {
				if !slices.Contains(o.To.Ports, port) {
					added = append(added, port)
				}
			}
			if len(added) > 0 {
				c.report(blueprints.NetworkAllowNarrow, p+".to.ports", "allow rule ports %v added", added)
			}
		}
	}
	if len(o.To.Ports) > 0 && len(r.To.Ports) > 0 && r.To.Protocol != o.To.Protocol {
		c.report(blueprints.NetworkAllowNarrow, p+".to.protocol", "allow rule protocol changed from %s to %s", o.To.Protocol, r.To.Protocol)
	}
	return len(c.out.hits) > n
}

// stillEncrypted reports whether resource r (resource or resource.group)
// is covered by list, directly or by a wildcard.
func stillEncrypted(r string, list []string) bool {
	if slices.Contains(list, r) || slices.Contains(list, "*.*") || slices.Contains(list, "*") {
		return true
	}
	if _, group, ok := strings.Cut(r, "."); ok {
		return slices.Contains(list, "*."+group)
	}
	return false
}

// sameEndpoints: the rules connect the same source and destination
// namespaces (or the same CIDR), so one is a changed version of the other.
func sameEndpoints(o, r v1alpha1.AllowRule) bool {
	return o.From.Namespace == r.From.Namespace && o.From.CIDR == r.From.CIDR && o.To.Namespace == r.To.Namespace && (o.To.CIDR == "") == (r.To.CIDR == "")
}

// covers reports whether base rule o already allowed all traffic r allows.
func covers(o, r v1alpha1.AllowRule) bool {
	switch {
	case o.From.Namespace != "" && r.From.Namespace != "":
		if o.From.Namespace != "*" && o.From.Namespace != r.From.Namespace {
			return false
		}
		if !selectorCovers(o.From.PodSelector, r.From.PodSelector) {
			return false
		}
	case o.From.CIDR != "" && r.From.CIDR != "":
		if !cidrCovers(o.From.CIDR, r.From.CIDR) {
			return false
		}
	default:
		return false
	}
	switch {
	case o.To.CIDR != "" || r.To.CIDR != "":
		if o.To.CIDR == "" || r.To.CIDR == "" || !cidrCovers(o.To.CIDR, r.To.CIDR) {
			return false
		}
	case o.To.Namespace != "*" && o.To.Namespace != r.To.Namespace:
		return false
	}
	if !selectorCovers(o.To.PodSelector, r.To.PodSelector) {
		return false
	}
	if len(o.To.Ports) == 0 {
		return true // o allowed every port
	}
	if len(r.To.Ports) == 0 || r.To.Protocol != o.To.Protocol {
		return false
	}
	for _, p := range r.To.Ports {
		if !slices.Contains(o.To.Ports, p) {
			return false
		}
	}
	return true
}

// selectorCovers: every pod matching narrow also matches broad (broad's
// labels are a subset of narrow's).
func selectorCovers(broad, narrow map[string]string) bool {
	for k, v := range broad {
		if nv, ok := narrow[k]; !ok || nv != v {
			return false
		}
	}
	return true
}

// cidrCovers: prefix broad contains prefix narrow.
func cidrCovers(broad, narrow string) bool {
	b, err1 := netip.ParsePrefix(broad)
	n, err2 := netip.ParsePrefix(narrow)
	if err1 != nil || err2 != nil {
		return broad == narrow
	}
	return b.Bits() <= n.Bits() && b.Contains(n.Addr())
}

func portsText(ports []int) string {
	if len(ports) == 0 {
		return " on every port"
	}
	return fmt.Sprintf(" on ports %v", ports)
}

// orDefault names an unset field's value as the default.
func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}
