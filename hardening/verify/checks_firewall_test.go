package verify

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// firewallFake is the hardened fake with a host packet filter.
type firewallFake struct {
	*fakeTarget
	tables map[string][]byte
}

func (f *firewallFake) NFTTable(_ context.Context, name string) ([]byte, bool, error) {
	if err := f.use(HostFirewall); err != nil {
		return nil, false, err
	}
	data, ok := f.tables[name]
	return data, ok, nil
}

func checkByID(t *testing.T, id blueprints.ControlID) Check {
	t.Helper()
	i := slices.IndexFunc(Checks(), func(c Check) bool { return c.ID == id })
	if i < 0 {
		t.Fatalf("no check %s", id)
	}
	return Checks()[i]
}

// TestAllowedCIDRsCheck: SP-API-002 passes on the table hardening renders
// (as nft lists it), fails when it is deleted or wider than the blueprint,
// and is skipped where nothing is to be narrowed.
func TestAllowedCIDRsCheck(t *testing.T) {
	live, err := os.ReadFile("../testdata/nft-api-firewall.json") // 10.0.0.0/8, 10.1.2.3/32, 2001:db8::/32 on port 59999
	if err != nil {
		t.Fatal(err)
	}
	check := checkByID(t, blueprints.APIAllowedCIDRsNarrow)
	run := func(endpoint string, cidrs []string, tables map[string][]byte) Outcome {
		f := &firewallFake{fakeTarget: hardenedFake(t), tables: tables}
		f.info.Name, f.info.APIServerURL = "shop-prod", "https://127.0.0.1:59999"
		f.info.Spec.APIServer = v1alpha1.APIServer{Endpoint: endpoint, AllowedCIDRs: cidrs}
		return check.Run(context.Background(), f)
	}
	exact := []string{"10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32"}
	for _, tc := range []struct {
		name     string
		endpoint string
		cidrs    []string
		tables   map[string][]byte
		status   Status
		reason   string
	}{
		{"as rendered", v1alpha1.EndpointPublic, exact, map[string][]byte{"secprov_shop_prod": live}, StatusPass, "accepts port 59999 only from loopback and the 3 allowed CIDR(s)"},
		{"table deleted", v1alpha1.EndpointPublic, exact, nil, StatusFail, "nftables table inet secprov_shop_prod is missing"},
		{"wider than the blueprint", v1alpha1.EndpointPublic, []string{"10.1.0.0/16", "2001:db8::/32"}, map[string][]byte{"secprov_shop_prod": live}, StatusFail, "10.0.0.0/8 is accepted but not in spec.apiServer.allowedCIDRs"},
		{"private endpoint", v1alpha1.EndpointPrivate, nil, nil, StatusSkip, "private endpoint"},
		{"public without CIDRs", v1alpha1.EndpointPublic, nil, nil, StatusSkip, "without allowedCIDRs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := run(tc.endpoint, tc.cidrs, tc.tables)
			text := o.Reason
			for _, e := range o.Evidence {
				text += "; " + e.Got
			}
			if o.Status != tc.status || !strings.Contains(text, tc.reason) {
				t.Errorf("got %s (%s), want %s with %q", o.Status, text, tc.status, tc.reason)
			}
		})
	}
}
