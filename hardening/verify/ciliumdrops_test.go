package verify

import "testing"

// TestParseDrops: Cilium's monitor summary lines (as cilium-dbg monitor
// --type drop prints them) become drops matched by source and destination.
func TestParseDrops(t *testing.T) {
	out := []byte(`Listening for events on 2 CPUs with 64x4096 of shared memory
Press Ctrl-C to quit
time="2026-12-07T16:20:01Z" level=info msg="Initializing dissection cache..."
xx drop (Policy denied) flow 0x9e1c04a3 to endpoint 0, ifindex 11, file bpf_lxc.c:1520, , identity 24873->world: 10.66.1.7:41234 -> 172.18.0.1:8080 tcp SYN
xx drop (Policy denied) flow 0x1 to endpoint 2102, ifindex 0, file bpf_lxc.c:2287, , identity 5511->24873: 10.66.0.9:50122 -> 10.66.1.20:8443 tcp SYN
xx drop (Stale or unroutable IP) flow 0x0 to endpoint 0, ifindex 3, file bpf_host.c:100, , identity unknown->unknown: 10.66.0.3 -> 10.66.1.4 icmp EchoRequest
`)
	drops := parseDrops("prod-worker", out)
	if len(drops) != 3 {
		t.Fatalf("parsed %d drops, want 3: %+v", len(drops), drops)
	}
	for _, tc := range []struct {
		ip, addr, want string
	}{
		{"10.66.1.7", "172.18.0.1:8080", "Policy denied"},
		{"10.66.0.9", "10.66.1.20:8443", "Policy denied"},
		{"10.66.0.9", "10.66.1.20:9999", ""},  // another port
		{"10.66.1.70", "172.18.0.1:8080", ""}, // another client whose address starts alike
	} {
		d := dropFor(drops, tc.ip, tc.addr)
		switch {
		case tc.want == "" && d != nil:
			t.Errorf("%s -> %s matched %+v", tc.ip, tc.addr, d)
		case tc.want != "" && (d == nil || d.Reason != tc.want || d.Node != "prod-worker"):
			t.Errorf("%s -> %s: %+v, want reason %q on prod-worker", tc.ip, tc.addr, d, tc.want)
		}
	}
}
