package hardening

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

func publicCP(cidrs ...string) *ControlPlane {
	return &ControlPlane{Name: "shop-prod", Ports: Ports{APIServer: 59999},
		Spec: v1alpha1.Spec{APIServer: v1alpha1.APIServer{Endpoint: v1alpha1.EndpointPublic, AllowedCIDRs: cidrs}}}
}

func TestAPIFirewallOnlyForPublicWithCIDRs(t *testing.T) {
	if f := (&ControlPlane{Name: "x", Spec: v1alpha1.Spec{APIServer: v1alpha1.APIServer{Endpoint: v1alpha1.EndpointPrivate, AllowedCIDRs: []string{"10.0.0.0/8"}}}}).APIFirewall(); f != nil {
		t.Errorf("private endpoint rendered a firewall: %+v", f)
	}
	if f := publicCP().APIFirewall(); f != nil {
		t.Errorf("public endpoint without CIDRs rendered a firewall: %+v", f)
	}
	f := publicCP("10.0.0.0/8", "2001:db8::/32").APIFirewall()
	if f == nil || f.Table != "secprov_shop_prod" || f.Port != 59999 || len(f.Allowed) != 2 {
		t.Fatalf("firewall = %+v", f)
	}
	s := f.Script()
	for _, want := range []string{
		"delete table inet secprov_shop_prod\n",
		"type filter hook input priority filter; policy accept;",
		"iifname \"lo\" tcp dport 59999 accept",
		"ip saddr 10.0.0.0/8 tcp dport 59999 accept",
		"ip6 saddr 2001:db8::/32 tcp dport 59999 accept",
		"tcp dport 59999 drop",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}

// The fixture is `nft -j list table` of the table Script renders for
// 10.0.0.0/8, 10.1.2.3/32 and 2001:db8::/32 (nftables 1.0.6).
func TestJudgeLiveFirewall(t *testing.T) {
	data, err := os.ReadFile("testdata/nft-api-firewall.json")
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseFirewall(data, 59999)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("2001:db8::/32")}
	if !st.Hooked || !st.Loopback || !st.DropsRest || st.AnySource || len(st.Unknown) > 0 || len(st.Allowed) != 3 {
		t.Fatalf("state = %+v", st)
	}
	for i := range want {
		if st.Allowed[i] != want[i] {
			t.Errorf("allowed[%d] = %s, want %s", i, st.Allowed[i], want[i])
		}
	}
	exact := publicCP("10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32").APIFirewall()
	if p := exact.Judge(st); len(p) > 0 {
		t.Errorf("the table as rendered is judged wrong: %v", p)
	}
	narrower := publicCP("192.168.0.0/16", "2001:db8::/32").APIFirewall()
	if p := strings.Join(narrower.Judge(st), "; "); !strings.Contains(p, "10.0.0.0/8 is accepted but not in spec.apiServer.allowedCIDRs (wider") ||
		!strings.Contains(p, "192.168.0.0/16 of spec.apiServer.allowedCIDRs is not accepted") {
		t.Errorf("a wider live table: %s", p)
	}
	// The port is another cluster's: nothing in the table is about it.
	other, _ := ParseFirewall(data, 6443)
	if p := strings.Join(exact.Judge(other), "; "); !strings.Contains(p, "nothing drops") || !strings.Contains(p, "loopback is not accepted") {
		t.Errorf("a table for another port: %s", p)
	}
	// A rule added by hand in front of the drop: every source.
	anyRule := strings.Replace(string(data), `{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}, `, "", 1)
	st2, err := ParseFirewall([]byte(anyRule), 59999)
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(exact.Judge(st2), "; "); !strings.Contains(p, "accepts port 59999 from every source") {
		t.Errorf("an accept-all rule: %s", p)
	}
	if p := exact.Judge(FirewallState{}); len(p) == 0 || !strings.Contains(p[0], "no filter chain on the input hook") {
		t.Errorf("a missing table: %v", p)
	}
}
