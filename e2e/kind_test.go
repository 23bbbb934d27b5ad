//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/kind"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault/kms"
)

// EnvKindE2E turns the kind e2e on: a Docker engine must run (.ci/dockerd
// starts one on CI machines) and the test builds or reuses the offline
// images. Without it the test skips, since a developer's `make test`
// need not have Docker; CI sets it, so there a missing engine fails.
const EnvKindE2E = "SECPROV_E2E_KIND"

// phases records how long each phase took, printed at the end.
type phases struct {
	t     *testing.T
	names []string
	took  []time.Duration
	notes []string // measured along the way, printed after the phases
}

func (p *phases) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	p.notes = append(p.notes, n)
	fmt.Fprintf(os.Stderr, "kind e2e: %s\n", n)
}

func (p *phases) run(name string, fn func()) {
	p.t.Helper()
	start := time.Now()
	defer func() {
		p.names = append(p.names, name)
		p.took = append(p.took, time.Since(start))
		fmt.Fprintf(os.Stderr, "kind e2e: %-32s %s\n", name, time.Since(start).Round(100*time.Millisecond))
	}()
	fn()
}

func (p *phases) report() {
	var b strings.Builder
	var total time.Duration
	for i, n := range p.names {
		fmt.Fprintf(&b, "  %-32s %8s\n", n, p.took[i].Round(100*time.Millisecond))
		total += p.took[i]
	}
	fmt.Fprintf(&b, "  %-32s %8s\n", "total", total.Round(100*time.Millisecond))
	for _, n := range p.notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	fmt.Fprintf(os.Stderr, "kind e2e phase timings:\n%s", b.String())
	p.t.Logf("phase timings:\n%s", b.String())
	// go test shows a passing package's output only with -v: .ci/run
	// names a file here and prints it after make test.
	if f := os.Getenv(EnvTimings); f != "" {
		if err := os.WriteFile(f, []byte("kind e2e phase timings:\n"+b.String()), 0o644); err != nil {
			p.t.Errorf("write %s: %v", f, err)
		}
	}
}

// EnvTimings names a file the kind e2e writes its phase timings to.
const EnvTimings = "SECPROV_E2E_TIMINGS"

func dockerLines(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}

// TestKindProdAndTest is the kind e2e: the offline images, then secprov up
// of the kind example blueprints (prod and test, each a control plane and
// a worker on its own Docker network, Cilium), and what a platform engineer
// would check by hand: nodes Ready, Cilium healthy, verify --all passes, a
// privileged pod is refused, a secret is encrypted in the node's etcd,
// prod's nodes cannot reach test's, a second up changes nothing, and down
// leaves no container, network or state.
func TestKindProdAndTest(t *testing.T) {
	if os.Getenv(EnvKindE2E) != "1" {
		t.Skipf("skipping: set %s=1 with a running Docker engine (.ci/run does)", EnvKindE2E)
	}
	ph := &phases{t: t}
	defer ph.report()
	h := newHome(t)

	ph.run("images build (or reuse)", func() {
		r := h.execFor(90*time.Minute, "images", "build")
		if r.code != 0 {
			t.Fatalf("secprov images build:\n%s", r)
		}
	})

	var u upJSON
	// up verifies what it made unless told not to; verify --all below is
	// the same suite, run once.
	ph.run("up prod + test (create)", func() {
		r := h.execFor(30*time.Minute, "up", "-f", "blueprints/examples/kind", "--images", "offline", "--no-verify", "-o", "json")
		if r.code != 0 {
			t.Fatalf("secprov up:\n%s", r)
		}
		if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
			t.Fatalf("up -o json: %v\n%s", err, r.stdout)
		}
		t.Logf("up stderr:\n%s", r.stderr)
	})
	upReturned := time.Now()
	if len(u.Clusters) != 2 {
		t.Fatalf("up made %d clusters, want prod and test", len(u.Clusters))
	}
	const prod, test = "shop-kind-prod", "shop-kind-test"
	prodDir := h.clusterDir(prod)
	cs, _ := adminClient(t, paths.NewLayout(prodDir).AdminKubeconfig())
	ctx := context.Background()

	// The probe matrix as evidence (flow, role, want, observed), and the
	// time of the probe suite alone, run as soon as up returns: its gate
	// (a flow default deny must drop) passing then bounds the policy
	// enforcement latency.
	ph.run("network probes (prod, -o json)", func() {
		r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NET-004|SP-ISO-006|SP-VAULT-004", "-o", "json")
		if r.code != 0 {
			t.Errorf("network probes on %s:\n%s", prod, r)
			return
		}
		t.Logf("network probe matrix (%s):\n%s", prod, r.stdout)
		// The drops carry Cilium's own reason, read from its agents.
		if !strings.Contains(r.stdout, "Cilium: drop (Policy denied) on node") {
			t.Errorf("no dropped flow carries Cilium's drop reason:\n%s", r.stdout)
		}
		ph.note("default deny enforced (the gate flow dropped) within %s of up returning", time.Since(upReturned).Round(100*time.Millisecond))
	})

	ph.run("checks", func() {
		t.Run("nodes Ready on their own network", func(t *testing.T) {
			for _, name := range []string{prod, test} {
				c, _ := adminClient(t, paths.NewLayout(h.clusterDir(name)).AdminKubeconfig())
				nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(nodes.Items) != 2 {
					t.Errorf("%s has %d nodes, want 2", name, len(nodes.Items))
				}
				for _, n := range nodes.Items {
					ready := false
					for _, c := range n.Status.Conditions {
						ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
					}
					if !ready {
						t.Errorf("node %s is not Ready", n.Name)
					}
					nets := dockerLines(t, "inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", n.Name)
					if len(nets) != 1 || nets[0] != kind.NetworkName(name) {
						t.Errorf("node %s is on networks %v, want only %s", n.Name, nets, kind.NetworkName(name))
					}
				}
				ds, err := c.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("%s: cilium DaemonSet: %v", name, err)
				}
				if ds.Status.NumberReady != 2 {
					t.Errorf("%s: %d cilium agents ready, want 2", name, ds.Status.NumberReady)
				}
			}
		})

		t.Run("privileged pod refused", func(t *testing.T) {
			priv := true
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "e2e-priv"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}}}
			_, err := cs.CoreV1().Pods("payments").Create(ctx, pod, metav1.CreateOptions{})
			if err == nil || !apierrors.IsForbidden(err) {
				t.Errorf("privileged pod: err = %v; want it forbidden", err)
			}
		})

		t.Run("secret encrypted in the node's etcd", func(t *testing.T) {
			// prod encrypts through the KMS plugin and Vault Transit, test
			// with secretbox: each raw value names its provider.
			for name, prefix := range map[string]string{prod: "k8s:enc:kms:v2:" + cluster.KMSName(prod) + ":", test: "k8s:enc:secretbox:v1:"} {
				ccs, _ := adminClient(t, paths.NewLayout(h.clusterDir(name)).AdminKubeconfig())
				_, err := ccs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: "e2e-canary"}, StringData: map[string]string{"password": "e2e-kind-secret-value"}}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				raw := kindEtcdGet(t, name, "/registry/secrets/default/e2e-canary")
				if !bytes.HasPrefix(raw, []byte(prefix)) {
					t.Errorf("%s: raw etcd value starts %q, want %s", name, raw[:min(len(raw), 40)], prefix)
				}
				if bytes.Contains(raw, []byte("e2e-kind-secret-value")) {
					t.Errorf("%s: secret value in plaintext in etcd", name)
				}
			}
		})

		// rotate-keys on kind: a new transit key version, the API server in
		// the node switches to it through the plugin on this host, and the
		// stored secret is rewritten under it and still reads back.
		t.Run("rotate-keys re-encrypts prod's secrets", func(t *testing.T) {
			var res struct {
				ToKeyID   string `json:"toKeyID"`
				Rewritten int    `json:"rewritten"`
				Stale     int    `json:"stale"`
			}
			r := h.execFor(5*time.Minute, "rotate-keys", "--cluster", prod, "-o", "json")
			if r.code != 0 {
				t.Fatalf("rotate-keys:\n%s", r)
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("rotate-keys -o json: %v\n%s", err, r.stdout)
			}
			want := kms.KeyID("transit-"+prod, "kms-"+prod, 2)
			if res.ToKeyID != want || res.Rewritten < 1 || res.Stale != 0 {
				t.Errorf("rotate-keys: %s", r.stdout)
			}
			if st, err := kms.ParseStored(kindEtcdGet(t, prod, "/registry/secrets/default/e2e-canary")); err != nil || st.KeyID != want {
				t.Errorf("after rotate-keys the canary is under %q (%v), want %s", st.KeyID, err, want)
			}
			if s, err := cs.CoreV1().Secrets("default").Get(ctx, "e2e-canary", metav1.GetOptions{}); err != nil || string(s.Data["password"]) != "e2e-kind-secret-value" {
				t.Errorf("canary after rotation: %v %q", err, s.Data["password"])
			}
		})

		// The Vault relay on prod's gateway answers prod's nodes (Vault's
		// TLS listener says so to a plain HTTP request) and closes on test's.
		t.Run("only prod's nodes get through prod's Vault relay", func(t *testing.T) {
			cm, err := cs.CoreV1().ConfigMaps("payments").Get(ctx, hardening.VaultConfigMap, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			addr := strings.TrimPrefix(cm.Data["VAULT_ADDR"], "https://")
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("VAULT_ADDR %q: %v", cm.Data["VAULT_ADDR"], err)
			}
			ask := func(node string) string {
				out, _ := exec.Command("docker", "exec", node, "timeout", "5", "bash", "-c",
					"exec 3<>/dev/tcp/"+host+"/"+port+"; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3").CombinedOutput()
				return string(out)
			}
			if got := ask(kind.WorkerNode(prod, 1)); !strings.Contains(got, "HTTP/1.0 400") {
				t.Errorf("prod's worker through %s: %q, want Vault's TLS listener refusing plain HTTP", addr, got)
			}
			if got := ask(kind.WorkerNode(test, 1)); strings.Contains(got, "HTTP") {
				t.Errorf("test's worker reached Vault through prod's relay at %s: %q", addr, got)
			}
		})

		t.Run("prod nodes cannot reach test nodes", func(t *testing.T) {
			testNodes := dockerLines(t, "ps", "--filter", "label=io.x-k8s.kind.cluster="+test, "--format", "{{.Names}}")
			for _, from := range dockerLines(t, "ps", "--filter", "label=io.x-k8s.kind.cluster="+prod, "--format", "{{.Names}}") {
				for _, to := range testNodes {
					ip := dockerLines(t, "inspect", "--format", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, kind.NetworkName(test)), to)
					if len(ip) != 1 {
						t.Fatalf("no address of %s", to)
					}
					probe := exec.Command("docker", "exec", from, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+ip[0]+"/10250")
					if out, err := probe.CombinedOutput(); err == nil {
						t.Errorf("%s reaches %s (%s:10250): %s", from, to, ip[0], out)
					}
				}
				// The same probe inside prod connects: the refusal above is
				// the networks', not a broken probe.
				self := dockerLines(t, "inspect", "--format", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, kind.NetworkName(prod)), kind.ControlPlaneNode(prod))
				if out, err := exec.Command("docker", "exec", from, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+self[0]+"/10250").CombinedOutput(); err != nil {
					t.Errorf("%s cannot reach its own control plane %s:10250 (%v %s): the probe is broken", from, self[0], err, out)
				}
			}
		})
	})

	ph.run("verify --all", func() {
		r := h.execFor(10*time.Minute, "verify", "--all")
		if r.code != 0 {
			t.Errorf("verify --all failed:\n%s", r)
		} else {
			t.Logf("verify --all:\n%s", r.stdout)
		}
		// Transparent encryption is judged, not skipped: on a kernel
		// without WireGuard it fails, and the examples' exception turns
		// that into a warning that says why.
		if wg, _ := kind.HostWireGuard(); !wg && (!strings.Contains(r.stdout, "SP-NET-005") || !strings.Contains(r.stdout, "unencrypted")) {
			t.Errorf("verify --all does not report SP-NET-005 as unencrypted on a kernel without WireGuard:\n%s", r.stdout)
		}
	})

	ph.run("second up (no changes)", func() {
		r := h.execFor(10*time.Minute, "up", "-f", "blueprints/examples/kind", "--images", "offline", "--no-verify", "-o", "json")
		if r.code != 0 {
			t.Fatalf("second up:\n%s", r)
		}
		var again upJSON
		if err := json.Unmarshal([]byte(r.stdout), &again); err != nil {
			t.Fatal(err)
		}
		for _, c := range again.Clusters {
			for op, n := range c.Changes {
				if op != "same" && n > 0 {
					t.Errorf("second up of %s: %d %s", c.Name, n, op)
				}
			}
		}
		if t.Failed() {
			t.Logf("second up:\n%s", r.stderr)
		}
	})

	// A blueprint change to an allow rule: up applies it to the policies in
	// place (the cluster, its nodes and Cilium stay) and the probes see the
	// new port open at once.
	ph.run("allow rule changed: applied in place, probed", func() {
		dir := t.TempDir()
		for _, f := range []string{"prod.yaml", "test.yaml"} {
			b, err := os.ReadFile(repoPath("blueprints", "examples", "kind", f))
			if err != nil {
				t.Fatal(err)
			}
			if f == "prod.yaml" {
				const from = "to: {namespace: payments, ports: [8443]}"
				if !bytes.Contains(b, []byte(from)) {
					t.Fatalf("prod.yaml has no %q to change", from)
				}
				b = bytes.Replace(b, []byte(from), []byte("to: {namespace: payments, ports: [8443, 9443]}"), 1)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		r := h.execFor(10*time.Minute, "up", "-f", dir, "--images", "offline", "--no-verify", "-o", "json")
		if r.code != 0 {
			t.Fatalf("up with the allow rule changed:\n%s", r)
		}
		var changed upJSON
		if err := json.Unmarshal([]byte(r.stdout), &changed); err != nil {
			t.Fatal(err)
		}
		for _, c := range changed.Clusters {
			for op, n := range c.Changes {
				if n > 0 && (strings.Contains(op, "replace") || strings.Contains(op, "delete") || (c.Name == test && op != "same")) {
					t.Errorf("up with prod's allow rule changed: %s: %d %s", c.Name, n, op)
				}
			}
			if c.Name == prod && c.Changes["update"] == 0 {
				t.Errorf("up with prod's allow rule changed updated nothing in prod: %v", c.Changes)
			}
		}
		r = h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NET-004", "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, "payments:9443") {
			t.Errorf("the probes do not show payments:9443 open after up:\n%s", r)
		}
	})

	// Weaken the live clusters the way a person with Docker access could,
	// and see verify catch it (and up repair what it owns).
	ph.run("weakened: caught, repaired", func() {
		worker := kind.WorkerNode(prod, 1)
		// One repair up for two kinds of damage: a file mode on a prod node
		// and a test node container stopped out of band.
		t.Run("weak kubelet config mode and a stopped node: verify and status see them, up repairs both", func(t *testing.T) {
			must(t, exec.Command("docker", "exec", worker, "chmod", "0644", "/var/lib/kubelet/config.yaml"))
			r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NODE-004")
			if r.code != 1 || !strings.Contains(r.stdout, "/var/lib/kubelet/config.yaml") {
				t.Errorf("verify does not fail SP-NODE-004 naming the file:\n%s", r)
			}
			stopped := kind.WorkerNode(test, 1)
			must(t, exec.Command("docker", "stop", stopped))
			if r := h.execFor(time.Minute, "status"); r.code != 0 || !strings.Contains(r.stdout, "✗ "+stopped) {
				t.Errorf("status does not show %s stopped:\n%s", stopped, r)
			}
			// prod's KMS plugin, a process of this host, killed: the API
			// server cannot encrypt; verify and status say so.
			pidFile := paths.NewLayout(prodDir).PidFile(hostproc.KMSPlugin)
			if err := proc.Stop(ctx, pidFile, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-KMS-001"); r.code != 1 || !strings.Contains(r.stdout, "does not answer") {
				t.Errorf("verify does not fail SP-KMS-001 with prod's KMS plugin stopped:\n%s", r)
			}
			if r := h.execFor(time.Minute, "status"); r.code != 0 || !strings.Contains(r.stdout, "✗ "+hostproc.KMSPlugin) {
				t.Errorf("status does not show prod's KMS plugin stopped:\n%s", r)
			}
			// payments' way to Vault deleted: its pods cannot log in.
			if err := cs.NetworkingV1().NetworkPolicies("payments").Delete(ctx, hardening.VaultAccessPolicy, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-VAULT-004"); r.code != 1 || !strings.Contains(r.stdout, "cannot read") {
				t.Errorf("verify does not fail SP-VAULT-004 with payments' Vault policy deleted:\n%s", r)
			}
			if r := h.execFor(10*time.Minute, "up", "-f", "blueprints/examples/kind", "--images", "offline", "--no-verify"); r.code != 0 {
				t.Fatalf("repair up:\n%s", r)
			}
			if r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NODE-004|SP-KMS-001|SP-VAULT-004"); r.code != 0 {
				t.Errorf("SP-NODE-004, SP-KMS-001 or SP-VAULT-004 still fails after up:\n%s", r)
			}
			if st := dockerLines(t, "inspect", "--format", "{{.State.Status}}", stopped); len(st) != 1 || st[0] != "running" {
				t.Errorf("%s is %v after up, want running", stopped, st)
			}
			if r := h.execFor(5*time.Minute, "verify", "--cluster", test, "--check", "SP-NET-001"); r.code != 0 {
				t.Errorf("Cilium is not healthy on %s after the repair:\n%s", test, r)
			}
		})
		// Network policy weakened through the API, as a namespace owner
		// could: the probes see the traffic, not only the objects.
		// On kind, spec.network is Cilium's own kinds: one cluster-wide
		// default deny and a CiliumNetworkPolicy per side of each rule.
		_, superCfg := adminClient(t, paths.NewLayout(prodDir).SuperAdminKubeconfig())
		dyn := dynamic.NewForConfigOrDie(superCfg)
		ccnps := dyn.Resource(schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"})
		cnps := dyn.Resource(schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"})
		t.Run("cluster-wide default deny removed fails SP-NET-002 and SP-NET-004 at the gate", func(t *testing.T) {
			saved, err := ccnps.Get(ctx, "secprov-default-deny", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the CiliumClusterwideNetworkPolicy of default deny: %v", err)
			}
			if err := ccnps.Delete(ctx, "secprov-default-deny", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NET-002|SP-NET-004")
			if r.code != 1 || !strings.Contains(r.stdout, "default deny is not enforced") || !strings.Contains(r.stdout, "CiliumClusterwideNetworkPolicy/secprov-default-deny is missing") {
				t.Errorf("verify does not fail SP-NET-002 and SP-NET-004 at the gate with the cluster-wide default deny deleted:\n%s", r)
			}
			saved.SetResourceVersion("")
			saved.SetUID("")
			if _, err := ccnps.Create(ctx, saved, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("an allow rule widened to every port fails SP-NET-004 on the unlisted port", func(t *testing.T) {
			// The network guardrail refuses this edit to anyone it
			// judges; the bootstrap identity is exempt.
			type edit struct{ ns, name string }
			var undo []*unstructured.Unstructured
			for _, e := range []edit{{"payments", "secprov-allow-0-ingress"}, {"storefront", "secprov-allow-0-egress"}} {
				p, err := cnps.Namespace(e.ns).Get(ctx, e.name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				undo = append(undo, p.DeepCopy())
				for _, dir := range []string{"ingress", "egress"} {
					rules, _, _ := unstructured.NestedSlice(p.Object, "spec", dir)
					for i := range rules {
						delete(rules[i].(map[string]any), "toPorts")
					}
					if rules != nil {
						unstructured.SetNestedSlice(p.Object, rules, "spec", dir)
					}
				}
				if _, err := cnps.Namespace(e.ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NET-003|SP-NET-004")
			if r.code != 1 || !strings.Contains(r.stdout, "does not list") || !strings.Contains(r.stdout, "differs from what hardening renders") {
				t.Errorf("verify does not fail SP-NET-003 and SP-NET-004 (unlisted port) with allow rule 1 widened:\n%s", r)
			}
			for _, p := range undo {
				cur, err := cnps.Namespace(p.GetNamespace()).Get(ctx, p.GetName(), metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				cur.Object["spec"] = p.Object["spec"]
				if _, err := cnps.Namespace(p.GetNamespace()).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-NET-003|SP-NET-004"); r.code != 0 {
				t.Errorf("SP-NET-003/004 still fail with the policies restored:\n%s", r)
			}
		})
		// The network guardrail judges Cilium's own policies on kind: its
		// probe sends one to the world (refused) and verify judges the live
		// ones, such as one the exempt bootstrap identity created.
		t.Run("a CiliumNetworkPolicy sending to the world fails SP-ADM-004", func(t *testing.T) {
			r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-ADM-004", "-o", "json")
			if r.code != 0 || !strings.Contains(r.stdout, "CiliumNetworkPolicy") || !strings.Contains(r.stdout, "sending to the world") {
				t.Errorf("SP-ADM-004 on kind does not probe a CiliumNetworkPolicy:\n%s", r)
			}
			_, superCfg := adminClient(t, paths.NewLayout(prodDir).SuperAdminKubeconfig())
			cnps := dynamic.NewForConfigOrDie(superCfg).Resource(schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}).Namespace("payments")
			wide := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
				"metadata": map[string]any{"name": "e2e-wide"},
				"spec":     map[string]any{"endpointSelector": map[string]any{}, "egress": []any{map[string]any{"toEntities": []any{"world"}}}}}}
			if _, err := cnps.Create(ctx, wide, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cnps.Delete(ctx, "e2e-wide", metav1.DeleteOptions{}) }()
			r = h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-ADM-004")
			if r.code != 1 || !strings.Contains(r.stdout, "CiliumNetworkPolicy/payments/e2e-wide") {
				t.Errorf("verify does not fail SP-ADM-004 naming a live CiliumNetworkPolicy to the world:\n%s", r)
			}
		})
		t.Run("a test node on prod's network fails SP-ISO-003", func(t *testing.T) {
			testWorker := kind.WorkerNode(test, 1)
			must(t, exec.Command("docker", "network", "connect", kind.NetworkName(prod), testWorker))
			defer must(t, exec.Command("docker", "network", "disconnect", kind.NetworkName(prod), testWorker))
			r := h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-ISO-003")
			if r.code != 1 || !strings.Contains(r.stdout, "SP-ISO-003") {
				t.Errorf("verify does not fail SP-ISO-003 with a test node on prod's network:\n%s", r)
			}
			// A pod without policy reaches it too.
			r = h.execFor(5*time.Minute, "verify", "--cluster", prod, "--check", "SP-ISO-006")
			if r.code != 1 || !strings.Contains(r.stdout, "✗ SP-ISO-006") || !strings.Contains(r.stdout, "got open") {
				t.Errorf("verify does not fail SP-ISO-006 with a test node on prod's network:\n%s", r)
			}
		})
	})

	ph.run("down", func() {
		r := h.execFor(10*time.Minute, "down", "--cluster", prod, "--cluster", test)
		if r.code != 0 {
			t.Fatalf("down:\n%s", r)
		}
	})
	for _, name := range []string{prod, test} {
		if left := dockerLines(t, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster="+name, "--format", "{{.Names}}"); len(left) > 0 {
			t.Errorf("containers of %s left after down: %v", name, left)
		}
		if left := dockerLines(t, "network", "ls", "--filter", "name=^"+kind.NetworkName(name)+"$", "--format", "{{.Name}}"); len(left) > 0 {
			t.Errorf("network of %s left after down: %v", name, left)
		}
		if _, err := os.Stat(h.clusterDir(name)); !os.IsNotExist(err) {
			t.Errorf("state of %s left after down: %v", name, err)
		}
	}
}

// kindEtcdGet prints a raw etcd value of a kind cluster: etcdctl inside
// the etcd static pod's mount namespace on the control-plane node, as
// verify reads it.
func kindEtcdGet(t *testing.T, cluster, key string) []byte {
	t.Helper()
	node := kind.ControlPlaneNode(cluster)
	pid := strings.TrimSpace(string(must(t, exec.Command("docker", "exec", node, "pgrep", "-xo", "etcd"))))
	out := must(t, exec.Command("docker", "exec", node, "nsenter", "--target", pid, "--mount", "--",
		"etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
		"get", "--print-value-only", key))
	// etcdctl ends the value with a newline of its own.
	return bytes.TrimSuffix(out, []byte("\n"))
}

func must(t *testing.T, c *exec.Cmd) []byte {
	t.Helper()
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, stderr.String())
	}
	return out
}
