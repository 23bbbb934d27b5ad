package verify

import (
	"slices"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// TestFieldTableVerifiedByChecks: every check the field table
// (blueprints.Fields) says verifies a field exists and can run on that
// provider: its needs are among the provider's capabilities.
func TestFieldTableVerifiedByChecks(t *testing.T) {
	caps := map[string][]Capability{
		v1alpha1.ProviderLocal: localCaps(),
		// kind: no connections to the components' own ports, no host
		// firewall (it refuses allowedCIDRs).
		v1alpha1.ProviderKind: slices.DeleteFunc(AllCapabilities(), func(c Capability) bool { return c == ComponentEndpoints || c == HostFirewall }),
	}
	for _, f := range blueprints.Fields {
		for prov, have := range caps {
			for _, id := range f.For(prov).Verified {
				i := slices.IndexFunc(Checks(), func(c Check) bool { return c.ID == id })
				if i < 0 {
					t.Errorf("%s on %s: verified by %s, which has no check", f.Path, prov, id)
					continue
				}
				if m := Missing(have, Checks()[i].Needs); len(m) > 0 {
					t.Errorf("%s on %s: verified by %s, which needs %v that %s does not offer (so it is always skipped there)", f.Path, prov, id, m, prov)
				}
			}
		}
	}
}
