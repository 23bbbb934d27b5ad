package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/provider"
)

// Addresses of the test's own network namespace (TEST-NET-2, never
// routed): the host end of the veth pair, a client inside
// allowedCIDRs and one outside it, both on the namespace's end.
const (
	fwHostAddr    = "198.51.100.1"
	fwAllowedAddr = "198.51.100.2"
	fwOutsideAddr = "198.51.100.3"
	fwAllowedCIDR = fwAllowedAddr + "/32"
)

// Env of the dial helper, which the test runs inside the namespace.
const (
	envDialFrom = "SECPROV_FW_DIAL_FROM"
	envDialTo   = "SECPROV_FW_DIAL_TO"
)

// TestFirewallDialHelper is not a test: run inside the namespace by
// TestAPIFirewallInNetns, it connects from one source address and prints
// what happened.
func TestFirewallDialHelper(t *testing.T) {
	from, to := os.Getenv(envDialFrom), os.Getenv(envDialTo)
	if from == "" || to == "" {
		t.Skip("helper of TestAPIFirewallInNetns")
	}
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", to)
	if err != nil {
		fmt.Printf("RESULT dial-error %v\n", err)
		return
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Printf("RESULT read-error %v\n", err)
		return
	}
	fmt.Printf("RESULT connected %s", line)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// TestAPIFirewallInNetns proves the table secprov up loads for a public
// local endpoint with allowedCIDRs, with real packets: a namespace with
// its own veth pair holds one client address inside the list and one
// outside; the listener on the host (on every address, as the API server
// of a public endpoint) takes the first and never hears from the second,
// while loopback still connects. The table is created and removed through
// the stack resource's own Create and Delete, its drift (a deleted table)
// is seen by Diff, and verify's SP-API-002 passes on it and fails once it
// is deleted.
func TestAPIFirewallInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: creates a network namespace and an nftables table")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for a network namespace and nftables; CI runs as root")
	}
	for _, bin := range []string{NFTBinary, "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not on PATH (Debian: nftables, iproute2); .ci/run installs them", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := os.Getpid() % 100000
	ns := fmt.Sprintf("secprov-fw-%d", id)
	hostIf, nsIf := fmt.Sprintf("spfw%dh", id), fmt.Sprintf("spfw%dn", id)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	run(t, "ip", "link", "set", nsIf, "netns", ns)
	run(t, "ip", "addr", "add", fwHostAddr+"/24", "dev", hostIf)
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, "ip", "-n", ns, "addr", "add", fwAllowedAddr+"/24", "dev", nsIf)
	run(t, "ip", "-n", ns, "addr", "add", fwOutsideAddr+"/24", "dev", nsIf)
	run(t, "ip", "-n", ns, "link", "set", nsIf, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	target := fmt.Sprintf("%s:%d", fwHostAddr, port)

	dial := func(from string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestFirewallDialHelper$", "-test.v")
		cmd.Env = append(os.Environ(), envDialFrom+"="+from, envDialTo+"="+target)
		out, _ := cmd.CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "RESULT "); ok {
				t.Logf("from %s to %s: %s", from, target, r)
				return r
			}
		}
		t.Fatalf("dial helper printed no result: %s", out)
		return ""
	}

	// Without the table both clients connect: the namespace works.
	for _, from := range []string{fwAllowedAddr, fwOutsideAddr} {
		if r := dial(from); !strings.HasPrefix(r, "connected") {
			t.Fatalf("before the firewall, %s could not connect: %s", from, r)
		}
	}

	name := fmt.Sprintf("fwtest-%d", id)
	cp := &hardening.ControlPlane{Name: name, Ports: hardening.Ports{APIServer: port},
		Spec: v1alpha1.Spec{APIServer: v1alpha1.APIServer{Endpoint: v1alpha1.EndpointPublic, AllowedCIDRs: []string{fwAllowedCIDR}}}}
	fw := cp.APIFirewall()
	rt := firewallResourceType()
	req := provider.TypedRequest[firewallIn, firewallOut]{Inputs: firewallInputs(fw)}
	if _, _, err := rt.Create(ctx, req); err != nil {
		t.Fatalf("create the table: %v", err)
	}
	t.Cleanup(func() { _ = NFTApply(context.Background(), fw.DeleteScript()) })
	t.Logf("loaded:\n%s", fw.Script())

	if r := dial(fwAllowedAddr); !strings.HasPrefix(r, "connected hello "+fwAllowedAddr) {
		t.Errorf("a client inside allowedCIDRs (%s) could not connect: %s", fwAllowedAddr, r)
	}
	if r := dial(fwOutsideAddr); !strings.Contains(r, "i/o timeout") {
		t.Errorf("a client outside allowedCIDRs (%s) was not dropped: %s", fwOutsideAddr, r)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Errorf("loopback could not connect with the firewall loaded: %v", err)
	} else {
		c.Close()
	}

	// verify SP-API-002 on the live table, through the local target.
	specJSON, _ := json.Marshal(cp.Spec)
	rec := &cluster.Record{Name: name, Environment: "test", Provider: v1alpha1.ProviderLocal, Spec: specJSON,
		APIServerURL: fmt.Sprintf("https://127.0.0.1:%d", port), Dir: t.TempDir()}
	tgt, err := NewTarget(rec, func() ([]*cluster.Record, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	var check []verify.Check
	for _, c := range verify.Checks() {
		if c.ID == blueprints.APIAllowedCIDRsNarrow {
			check = append(check, c)
		}
	}
	result := func() verify.Result {
		rep := verify.Run(ctx, tgt, check, verify.Options{})
		if len(rep.Results) != 1 {
			t.Fatalf("results: %+v", rep.Results)
		}
		r := rep.Results[0]
		t.Logf("SP-API-002: %s: %s", r.Status, r.Reason)
		return r
	}
	if r := result(); r.Status != verify.StatusPass {
		t.Errorf("SP-API-002 on the table as loaded = %s (%s), want pass", r.Status, r.Reason)
	}
	if d, err := rt.Diff(ctx, req, provider.Diff{}); err != nil || len(d.Changes) > 0 {
		t.Errorf("diff of the table as loaded = %+v, %v; want no change", d, err)
	}

	// Someone deletes the table: the outside client connects again,
	// verify fails and up sees the drift.
	if err := NFTApply(ctx, fw.DeleteScript()); err != nil {
		t.Fatal(err)
	}
	if r := dial(fwOutsideAddr); !strings.HasPrefix(r, "connected") {
		t.Errorf("with the table deleted, %s still could not connect: %s", fwOutsideAddr, r)
	}
	if r := result(); r.Status != verify.StatusFail || !strings.Contains(r.Reason, "is missing") {
		t.Errorf("SP-API-002 with the table deleted = %s (%s), want fail: missing", r.Status, r.Reason)
	}
	if d, _ := rt.Diff(ctx, req, provider.Diff{}); len(d.Changes) == 0 {
		t.Error("diff with the table deleted shows no change; up would not put it back")
	}

	// A wider table (a /24 instead of the /32) fails too.
	wcp := *cp
	wcp.Spec.APIServer.AllowedCIDRs = []string{"198.51.100.0/24"}
	wide := wcp.APIFirewall()
	if err := NFTApply(ctx, wide.Script()); err != nil {
		t.Fatal(err)
	}
	if r := result(); r.Status != verify.StatusFail || !strings.Contains(fmt.Sprint(r.Evidence), "wider than the blueprint") {
		t.Errorf("SP-API-002 with a wider table = %s (%s %v), want fail: wider", r.Status, r.Reason, r.Evidence)
	}

	// down: the resource's Delete removes the table (and is idempotent).
	if err := rt.Delete(ctx, req); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, found, err := NFTListTable(ctx, fw.Table); err != nil || found {
		t.Errorf("after delete the table is found=%v (%v)", found, err)
	}
	if err := rt.Delete(ctx, req); err != nil {
		t.Errorf("a second delete: %v", err)
	}
}
