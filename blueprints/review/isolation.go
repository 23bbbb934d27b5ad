package review

import (
	"fmt"
	"net/netip"

	"secprov.dev/secprov/blueprints"
)

// Cross-blueprint rules. They index blueprints by the shared value (name,
// Vault path, CIDR) so a review of thousands of blueprints stays linear.

func loc(b *blueprints.Blueprint, path string) string {
	p := b.PosOf(path)
	return fmt.Sprintf("%s:%d", b.Source.File, p.Line)
}

func ruleUniqueNames(_ *env, bps []*blueprints.Blueprint, out *emitter) {
	first := make(map[string]*blueprints.Blueprint, len(bps))
	for _, b := range bps {
		f, dup := first[b.Name()]
		if !dup {
			first[b.Name()] = b
			continue
		}
		out.add(b, "metadata.name", 0, "cluster name %q is already used by the blueprint at %s (environment %q); two blueprints would share one cluster",
			b.Name(), loc(f, "metadata.name"), f.Spec.Environment)
	}
}

// firstTwoEnvs remembers, for one shared value, the first blueprint and the
// first one of a different environment. That is enough to name, for any
// later blueprint, the earliest one of another environment sharing the value.
type firstTwoEnvs struct{ a, b *blueprints.Blueprint }

func (f *firstTwoEnvs) add(b *blueprints.Blueprint) {
	switch {
	case f.a == nil:
		f.a = b
	case f.b == nil && b.Spec.Environment != f.a.Spec.Environment:
		f.b = b
	}
}

// otherEnv returns the earliest remembered blueprint whose environment
// differs from environment, or nil.
func (f *firstTwoEnvs) otherEnv(environment string) *blueprints.Blueprint {
	if f.a != nil && f.a.Spec.Environment != environment {
		return f.a
	}
	return f.b
}

func ruleSharedVault(_ *env, bps []*blueprints.Blueprint, out *emitter) {
	type field struct{ path, what string }
	fields := []field{
		{"spec.vault.kvMount", "KV mount"},
		{"spec.vault.transitMount", "transit mount"},
		{"spec.vault.transitKey", "transit key"},
		{"spec.vault.authPath", "Kubernetes auth path"},
	}
	// Names only collide inside one Vault. Blueprints without an address
	// get a Vault run by secprov; they are treated as one Vault, because
	// where that Vault runs is an implementation choice review should not
	// bet prod secrets on.
	key := func(b *blueprints.Blueprint, f field) string {
		v := b.Spec.Vault
		addr := v.Address
		if c, err := blueprints.CanonicalURL(addr); err == nil {
			addr = c // the loader already did; this keeps the rule safe on its own
		}
		switch f.path {
		case "spec.vault.kvMount":
			return addr + "\x00kv\x00" + v.KVMount
		case "spec.vault.transitMount":
			return addr + "\x00transitmount\x00" + v.TransitMount
		case "spec.vault.transitKey":
			return addr + "\x00transit\x00" + v.TransitMount + "\x00" + v.TransitKey
		default:
			return addr + "\x00auth\x00" + v.AuthPath
		}
	}
	for _, f := range fields {
		seen := make(map[string]*firstTwoEnvs, len(bps))
		for _, b := range bps {
			k := key(b, f)
			s := seen[k]
			if s == nil {
				s = &firstTwoEnvs{}
				seen[k] = s
			}
			if o := s.otherEnv(b.Spec.Environment); o != nil {
				out.add(b, f.path, 0, "%s %q is also used by %q (environment %q) at %s; environment %q must not share it",
					f.what, valueAt(b, f.path), o.Name(), o.Spec.Environment, loc(o, f.path), b.Spec.Environment)
			}
			s.add(b)
		}
	}
}

func valueAt(b *blueprints.Blueprint, path string) string {
	switch path {
	case "spec.vault.kvMount":
		return b.Spec.Vault.KVMount
	case "spec.vault.transitKey":
		return b.Spec.Vault.TransitKey
	case "spec.vault.authPath":
		return b.Spec.Vault.AuthPath
	}
	return ""
}

// cidrUse is one blueprint's pod or service CIDR.
type cidrUse struct {
	b      *blueprints.Blueprint
	idx    int // load order
	field  string
	prefix netip.Prefix
}

// firstTwoUses is firstTwoEnvs for CIDR uses: the earliest use, and the
// earliest one of another environment.
type firstTwoUses struct{ a, b *cidrUse }

func (f *firstTwoUses) add(u *cidrUse) {
	switch {
	case f.a == nil:
		f.a = u
	case f.b == nil && u.b.Spec.Environment != f.a.b.Spec.Environment:
		f.b = u
	}
}

func (f *firstTwoUses) otherEnv(environment string) *cidrUse {
	if f.a != nil && f.a.b.Spec.Environment != environment {
		return f.a
	}
	return f.b
}

// ruleSharedNetworks reports a pod or service CIDR that overlaps one of a
// blueprint of another environment (pod/pod, pod/service, service/pod,
// service/service), on the later blueprint, naming the earliest one it
// collides with.
//
// Two prefixes overlap exactly when one contains the other. Every CIDR is
// indexed under itself (as an "exact" entry) and under each of its
// ancestors (as a "within" entry): a later CIDR then finds every earlier
// CIDR containing it by looking up its ancestors' exact entries, and every
// earlier CIDR inside it by one lookup of its own within entry. That is at
// most 33 (IPv4) or 129 (IPv6) map operations per CIDR, linear in the
// number of blueprints, instead of comparing every pair.
func ruleSharedNetworks(_ *env, bps []*blueprints.Blueprint, out *emitter) {
	uses := make([]cidrUse, 0, 2*len(bps))
	for i, b := range bps {
		for _, f := range []struct{ field, cidr string }{
			{"podCIDR", b.Spec.Network.PodCIDR}, {"serviceCIDR", b.Spec.Network.ServiceCIDR},
		} {
			p, err := netip.ParsePrefix(f.cidr)
			if err != nil {
				continue // the loader validated it
			}
			uses = append(uses, cidrUse{b: b, idx: i, field: f.field, prefix: blueprints.CanonicalPrefix(p).Masked()})
		}
	}
	exact := make(map[netip.Prefix]*firstTwoUses, len(uses))
	within := make(map[netip.Prefix]*firstTwoUses, 8*len(uses))
	at := func(m map[netip.Prefix]*firstTwoUses, p netip.Prefix) *firstTwoUses {
		e := m[p]
		if e == nil {
			e = &firstTwoUses{}
			m[p] = e
		}
		return e
	}
	for i := range uses {
		u := &uses[i]
		at(exact, u.prefix).add(u)
		for bits := u.prefix.Bits(); bits >= 0; bits-- {
			anc, _ := u.prefix.Addr().Prefix(bits)
			at(within, anc).add(u)
		}
	}
	for i := range uses {
		u := &uses[i]
		environment := u.b.Spec.Environment
		var best *cidrUse
		consider := func(o *cidrUse) {
			if o != nil && o.idx < u.idx && (best == nil || o.idx < best.idx) {
				best = o
			}
		}
		if e := within[u.prefix]; e != nil {
			consider(e.otherEnv(environment)) // earlier CIDRs equal to or inside u
		}
		for bits := u.prefix.Bits() - 1; bits >= 0; bits-- {
			anc, _ := u.prefix.Addr().Prefix(bits)
			if e := exact[anc]; e != nil {
				consider(e.otherEnv(environment)) // earlier CIDRs containing u
			}
		}
		if best == nil {
			continue
		}
		out.add(u.b, "spec.network."+u.field, 0, "%s %s overlaps %s %s of %q (environment %q) at %s; environments must not share networks",
			u.field, u.prefix, best.field, best.prefix, best.b.Name(), best.b.Spec.Environment, loc(best.b, "spec.network."+best.field))
	}
	allowsIntoOtherEnvironments(uses, bps, out)
}

// allowsIntoOtherEnvironments reports allow rules whose CIDR (from.cidr
// or to.cidr) overlaps another environment's pod or service CIDR: the
// rule opens a path between environments that default deny closes.
func allowsIntoOtherEnvironments(uses []cidrUse, bps []*blueprints.Blueprint, out *emitter) {
	for _, b := range bps {
		for i, r := range b.Spec.Network.Allow {
			for _, f := range []struct{ field, cidr string }{{"from.cidr", r.From.CIDR}, {"to.cidr", r.To.CIDR}} {
				p, err := netip.ParsePrefix(f.cidr)
				if err != nil || hugePrefix(f.cidr) != "" {
					continue // unset, refused by the loader, or the world (SP-NET-003)
				}
				p = blueprints.CanonicalPrefix(p).Masked()
				for k := range uses {
					u := &uses[k]
					if u.b.Spec.Environment == b.Spec.Environment || !u.prefix.Overlaps(p) {
						continue
					}
					out.add(b, fmt.Sprintf("spec.network.allow[%d].%s", i, f.field), 0, "allow rule names %s, which overlaps %s %s of %q (environment %q) at %s; environments must not reach each other",
						p, u.field, u.prefix, u.b.Name(), u.b.Spec.Environment, loc(u.b, "spec.network."+u.field))
					break
				}
			}
		}
	}
}
