package verify

import (
	"net/netip"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

func netProbeSpec(t *testing.T) v1alpha1.Spec {
	t.Helper()
	bps, err := blueprints.Load("../../blueprints/examples/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := bps[0].Spec
	spec.Network.Allow = append(spec.Network.Allow,
		v1alpha1.AllowRule{From: v1alpha1.Peer{CIDR: "10.0.0.0/24"}, To: v1alpha1.Destination{Namespace: "payments", Ports: []int{9000}, Protocol: "TCP"}},
		v1alpha1.AllowRule{From: v1alpha1.Peer{Namespace: "payments", PodSelector: map[string]string{"app": "api"}}, To: v1alpha1.Destination{Namespace: "storefront", PodSelector: map[string]string{"app": "web"}, Ports: []int{18081}, Protocol: "TCP"}},
	)
	return spec
}

func probeNodes() (nodes, peers []Node) {
	n := func(name, env, ip string) Node {
		return Node{Name: name, Environment: env, Cluster: "c-" + env, Addresses: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	return []Node{n("prod-cp", "prod", "172.30.0.2"), n("prod-w", "prod", "172.30.0.3")}, []Node{n("test-cp", "test", "172.31.0.2")}
}

// The plan holds the gate, the controls, each allow rule's allowed,
// unlisted-port and unlisted-namespace flows, and the peer flows.
func TestPlanNetProbes(t *testing.T) {
	spec := netProbeSpec(t)
	nodes, peers := probeNodes()
	m := planNetProbes(spec, "scratch", nodes, peers, "172.30.0.1:4000")
	var lines []string
	for _, f := range m.flows() {
		lines = append(lines, string(f.Control)+" "+f.Role+" "+f.Want+" "+f.What)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"SP-NET-004 control open scratch → scratch probe server :18080 (no policy)",
		"SP-NET-004 gate dropped default → scratch probe server :18080 (default deny)",
		"SP-NET-004 check resolved default → cluster DNS (kubernetes.default.svc)",
		"SP-NET-004 control open scratch → outside the cluster 172.30.0.1:4000 (no policy)",
		"SP-NET-004 check dropped default → outside the cluster 172.30.0.1:4000",
		"SP-NET-004 control open scratch → node prod-cp kubelet 172.30.0.2:10250 (no policy)",
		"SP-NET-004 check dropped default → node prod-w kubelet 172.30.0.3:10250",
		"SP-NET-004 check dropped default → cloud metadata 169.254.169.254:80",
		"SP-NET-004 check open storefront → payments:8443 (allow rule 1)",
		"SP-NET-004 check dropped storefront → payments:18082, a port allow rule 1 does not list",
		"SP-NET-004 check dropped scratch → payments:8443, a namespace allow rule 1 does not name",
		"SP-NET-004 check open payments app=api → storefront app=web:18081 (allow rule 3)",
		"SP-ISO-006 check dropped scratch → test node test-cp 172.31.0.2:6443",
		"SP-ISO-006 check dropped scratch → test node test-cp 172.31.0.2:10250",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("plan lacks %q; it has:\n%s", want, all)
		}
	}
	if len(m.NotProbed) != 1 || !strings.Contains(m.NotProbed[0], "allow rule 2 (from 10.0.0.0/24)") {
		t.Errorf("not probed = %q, want the CIDR rule", m.NotProbed)
	}
	// Every dropped flow with a server is backed by a flow that must open.
	for _, f := range m.flows() {
		if f.Want == wantDropped && f.Server != nil && f.BackedBy == "" {
			t.Errorf("%s has no control flow", f.What)
		}
		if f.BackedBy != "" && m.flow(f.BackedBy).Want != wantOpen {
			t.Errorf("%s is backed by %s, which need not open", f.What, m.flow(f.BackedBy).What)
		}
	}
	// The payments server listens on the rule's port and the unlisted one.
	for _, s := range m.Servers {
		if s.Namespace == "payments" && (!contains(s.Ports, 8443) || !contains(s.Ports, 18082)) {
			t.Errorf("payments server ports %v", s.Ports)
		}
	}
}

func contains(ports []int, p int) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// judgeFlows: every verdict against its expectation, the gate first.
func TestJudgeFlows(t *testing.T) {
	spec := netProbeSpec(t)
	nodes, peers := probeNodes()
	hardened := func(f *probeFlow) {
		switch f.Want {
		case wantOpen:
			f.Verdict = "open"
		case wantResolved:
			f.Verdict = "resolved"
		default:
			f.Verdict = "timeout"
		}
	}
	tests := []struct {
		name    string
		control blueprints.ControlID
		weaken  func(f *probeFlow) // applied to every flow after hardened
		status  Status
		reason  string
	}{
		{"hardened", blueprints.NetworkEnforced, func(*probeFlow) {}, StatusPass, "live traffic"},
		{"hardened peers", blueprints.IsolationPodReach, func(*probeFlow) {}, StatusPass, "a pod with no network policy"},
		{"no policy engine", blueprints.NetworkEnforced, func(f *probeFlow) {
			if f.Kind == "tcp" && !strings.Contains(f.What, "metadata") && f.Control == blueprints.NetworkEnforced {
				f.Verdict = "open"
			}
		}, StatusFail, "default deny is not enforced"},
		{"allow rule wider than written", blueprints.NetworkEnforced, func(f *probeFlow) {
			if strings.Contains(f.What, "does not list") {
				f.Verdict = "open"
			}
		}, StatusFail, "a port allow rule 1 does not list: want dropped, observed open"},
		{"allow rule not applied", blueprints.NetworkEnforced, func(f *probeFlow) {
			if strings.HasSuffix(f.What, "(allow rule 1)") {
				f.Verdict = "timeout"
			}
		}, StatusFail, "storefront → payments:8443 (allow rule 1): want open, observed timeout"},
		{"DNS blocked", blueprints.NetworkEnforced, func(f *probeFlow) {
			if f.Kind == "dns" {
				f.Verdict, f.Detail = "dns-failed", "i/o timeout"
			}
		}, StatusFail, "want resolved, observed dns-failed"},
		{"a reset is not a drop", blueprints.NetworkEnforced, func(f *probeFlow) {
			if strings.Contains(f.What, "metadata") {
				f.Verdict = "refused"
			}
		}, StatusFail, "cloud metadata 169.254.169.254:80: want dropped, observed refused"},
		{"broken network proves nothing", blueprints.NetworkEnforced, func(f *probeFlow) {
			if f.Role == roleControl {
				f.Verdict = "timeout"
			}
		}, StatusError, "did not open"},
		{"peer reachable", blueprints.IsolationPodReach, func(f *probeFlow) {
			if strings.Contains(f.What, "test-cp 172.31.0.2:6443") {
				f.Verdict = "open"
			}
		}, StatusFail, "scratch → test node test-cp 172.31.0.2:6443: want dropped, observed open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := planNetProbes(spec, "scratch", nodes, peers, "172.30.0.1:4000")
			for _, f := range m.flows() {
				hardened(f)
				tt.weaken(f)
			}
			o := judgeFlows(m, tt.control, "live traffic ok")
			if tt.status == StatusPass {
				o = judgeFlows(m, tt.control, map[blueprints.ControlID]string{blueprints.NetworkEnforced: "live traffic ok", blueprints.IsolationPodReach: "a pod with no network policy ok"}[tt.control])
			}
			if o.Status != tt.status || !strings.Contains(o.Reason, tt.reason) {
				t.Fatalf("got %s %q, want %s containing %q", o.Status, o.Reason, tt.status, tt.reason)
			}
			if len(o.Evidence) == 0 {
				t.Error("no evidence")
			}
		})
	}
}
