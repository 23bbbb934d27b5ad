package provision_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"secprov.dev/secprov/blueprints/v1alpha1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/internal/pgtest"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/providers"
)

func TestMain(m *testing.M) {
	reg, err := provision.PluginRegistry(providers.Registry())
	if err != nil {
		panic(err)
	}
	enginetest.ServeIfPlugin(reg)
	os.Exit(m.Run())
}

func examples(tb testing.TB, names ...string) []*blueprints.Blueprint {
	tb.Helper()
	var files []string
	for _, n := range names {
		files = append(files, filepath.Join("..", "blueprints", "examples", n))
	}
	bps, err := blueprints.Load(files...)
	if err != nil {
		tb.Fatal(err)
	}
	return bps
}

// noVault turns blueprints into their Vault-less variant: secretbox and
// no workload secrets from Vault, so nothing but the control plane.
func noVault(bps []*blueprints.Blueprint) []*blueprints.Blueprint {
	off := false
	out := make([]*blueprints.Blueprint, len(bps))
	for i, bp := range bps {
		c := *bp
		c.Spec.EncryptionAtRest.Provider = v1alpha1.EncryptionSecretbox
		c.Spec.Vault.Enabled = &off
		out[i] = &c
	}
	return out
}

// upOnce brings bps up in a fresh state dir (its own local Vault, started
// by up when a blueprint needs it) and returns how long up took (teardown
// not included).
func upOnce(b *testing.B, bins cluster.Binaries, bps []*blueprints.Blueprint) time.Duration {
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins, VaultBinary: localtest.VaultBinary(b)})
	start := time.Now()
	for _, r := range p.Up(ctx, bps, nil) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	d := time.Since(start)
	names := make([]string, len(bps))
	for i, bp := range bps {
		names[i] = bp.Name()
	}
	for _, r := range p.Down(ctx, names, nil) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	return d
}

// timed runs f per iteration and reports its own timing as seconds/op, so
// untimed setup and teardown inside f do not count.
func timed(b *testing.B, f func() time.Duration) {
	var total time.Duration
	n := 0
	for b.Loop() {
		total += f()
		n++
	}
	b.ReportMetric(total.Seconds()/float64(n), "s/up")
}

// BenchmarkUpOne is `secprov up` of one local cluster with a warm
// toolchain: engine, local Vault (first start, init, unseal), PKI, config,
// transit key, KMS token and plugin, etcd, API server, controller manager,
// scheduler, bootstrap objects, KV mount, Kubernetes auth and roles.
func BenchmarkUpOne(b *testing.B) {
	bins, bps := localtest.Toolchain(b), examples(b, "test.yaml")
	timed(b, func() time.Duration { return upOnce(b, bins, bps) })
}

// BenchmarkUpOneNoVault is the same cluster without Vault (secretbox, no
// workload secrets): UpOne minus this is what up spends on Vault.
func BenchmarkUpOneNoVault(b *testing.B) {
	bins, bps := localtest.Toolchain(b), noVault(examples(b, "test.yaml"))
	timed(b, func() time.Duration { return upOnce(b, bins, bps) })
}

// BenchmarkSecretCreate measures secret writes on one local cluster,
// first encrypted with secretbox, then, after an up that switches the
// same cluster to vault-kms, through the KMS v2 plugin and Vault Transit.
// KMS v2 wraps one data key per API server (not per write) with Vault, so
// writes should cost about the same.
func BenchmarkSecretCreate(b *testing.B) {
	bins := localtest.Toolchain(b)
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins, VaultBinary: localtest.VaultBinary(b)})
	bp := examples(b, "test.yaml")[0]
	b.Cleanup(func() { p.Down(context.Background(), []string{bp.Name()}, nil) })
	for _, prov := range []string{v1alpha1.EncryptionSecretbox, v1alpha1.EncryptionVaultKMS} {
		bp.Spec.EncryptionAtRest.Provider = prov
		for _, r := range p.Up(ctx, []*blueprints.Blueprint{bp}, nil) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		t, err := provision.Target(providers.Registry(), stateDir, bp.Name())
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := t.RESTConfig()
		if err != nil {
			b.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 10000, 10000 // measure the server, not client-side throttling
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var n atomic.Int64
		create := func() error {
			name := fmt.Sprintf("bench-%s-%d", prov, n.Add(1))
			_, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"v": []byte(name)},
			}, metav1.CreateOptions{})
			return err
		}
		// Warm up the freshly (re)started API server untimed: the first
		// writes also pay for caches, connections and, with KMS v2, the
		// one data-key seed wrapped by Vault.
		for range 200 {
			if err := create(); err != nil {
				b.Fatal(err)
			}
		}
		throughput(b, prov, "secrets/s", create)
		t.(interface{ Close() error }).Close()
	}
}

// BenchmarkUpProdTest brings prod and test up together.
func BenchmarkUpProdTest(b *testing.B) {
	bins, bps := localtest.Toolchain(b), examples(b, "prod.yaml", "test.yaml")
	timed(b, func() time.Duration { return upOnce(b, bins, bps) })
}

// BenchmarkNoopUpStateBackends: prod and test (the examples, with Vault)
// are brought up twice, once with their state in the default file backend
// and once in a real PostgreSQL (Pulumi's DIY postgres backend, on
// loopback); each iteration then runs a no-op up of prod + test on each,
// in alternating order, and reports both and their ratio.
func BenchmarkNoopUpStateBackends(b *testing.B) {
	bins := localtest.Toolchain(b)
	pg := pgtest.Start(b)
	ctx := context.Background()
	bps := examples(b, "prod.yaml", "test.yaml")
	quiet := slog.New(slog.DiscardHandler)
	newProv := func(cfg engine.Config) *provision.Provisioner {
		eng, stateDir := enginetest.NewEngineWith(b, quiet, cfg)
		p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins, VaultBinary: localtest.VaultBinary(b)})
		b.Cleanup(func() { p.Down(context.Background(), []string{"shop-prod", "shop-test"}, nil) })
		return p
	}
	file := newProv(engine.Config{})
	postgres := newProv(engine.Config{Backend: pg.URL, Passphrase: engine.NewPassphrase("bench passphrase")})
	up := func(p *provision.Provisioner, noop bool) time.Duration {
		start := time.Now()
		for _, r := range p.Up(ctx, bps, nil) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
			if noop && (r.Result.Counts[engine.OpCreate]+r.Result.Counts[engine.OpUpdate]+r.Result.Counts[engine.OpDelete]+r.Result.Counts[engine.OpReplace] > 0) {
				b.Fatalf("%s: a no-op up changed %v", r.Cluster, r.Result.Counts)
			}
		}
		return time.Since(start)
	}
	up(file, false)
	up(postgres, false)
	var tf, tp time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 { // alternate the order, so neither always goes first
			tf += up(file, true)
			tp += up(postgres, true)
		} else {
			tp += up(postgres, true)
			tf += up(file, true)
		}
		n++
	}
	b.ReportMetric(tf.Seconds()/float64(n), "file-s/op")
	b.ReportMetric(tp.Seconds()/float64(n), "postgres-s/op")
	b.ReportMetric(tp.Seconds()/tf.Seconds(), "postgres/file")
}

// BenchmarkUpVsFloor alternates the floor and one up in every iteration,
// so both see the same machine load, and reports their ratio. Both are the
// Vault-less variant: the floor is the bare control plane.
func BenchmarkUpVsFloor(b *testing.B) {
	bins, bps := localtest.Toolchain(b), noVault(examples(b, "test.yaml"))
	var up, floor time.Duration
	for b.Loop() {
		floor += floorOnce(b, localtest.Binaries(b), bps[0])
		up += upOnce(b, bins, bps)
	}
	b.ReportMetric(up.Seconds()/float64(b.N), "up-s/op")
	b.ReportMetric(floor.Seconds()/float64(b.N), "floor-s/op")
	b.ReportMetric(up.Seconds()/floor.Seconds(), "up/floor")
}

// BenchmarkFloorEtcdAPIServer starts the same etcd and kube-apiserver by
// hand, with the same flags and an existing PKI, to /readyz: the floor
// that up cannot beat.
func BenchmarkFloorEtcdAPIServer(b *testing.B) {
	bins, bp := localtest.Binaries(b), noVault(examples(b, "test.yaml"))[0]
	timed(b, func() time.Duration { return floorOnce(b, bins, bp) })
}

// floorOnce prepares PKI and config, then times starting etcd and
// kube-apiserver to /readyz.
func floorOnce(b *testing.B, bins local.Binaries, bp *blueprints.Blueprint) time.Duration {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "c")
	c := &local.Cluster{Blueprint: bp.Blueprint, Dir: dir, Binaries: bins}
	l := paths.NewLayout(dir)
	for _, d := range []string{dir, l.ConfigDir(), l.LogDir(), l.RunDir()} {
		if err := paths.EnsurePrivateDir(d); err != nil {
			b.Fatal(err)
		}
	}
	ports, err := c.Ports()
	if err != nil {
		b.Fatal(err)
	}
	cp := c.ControlPlane(ports)
	bundle, err := pki.Ensure(l.PKIDir(), pki.Options{ClusterName: bp.Name(), ServiceCIDR: bp.Spec.Network.ServiceCIDR})
	if err != nil {
		b.Fatal(err)
	}
	if err := local.WriteConfigForBenchmark(dir, bp.Spec); err != nil {
		b.Fatal(err)
	}
	tlsCfg := func(ca, cert, key string) *tls.Config {
		pool := x509.NewCertPool()
		data, _ := os.ReadFile(ca)
		pool.AppendCertsFromPEM(data)
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			b.Fatal(err)
		}
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}
	}
	startProc := func(name, bin string, args []string) {
		if _, err := proc.Start(proc.Spec{Name: name, Path: bin, Args: args, LogFile: l.LogFile(name), PidFile: l.PidFile(name)}); err != nil {
			b.Fatal(err)
		}
	}
	etcdTLS := tlsCfg(bundle.EtcdCACert, bundle.EtcdSelfClientCert, bundle.EtcdSelfClientKey)
	apiTLS := tlsCfg(bundle.CACert, bundle.SuperAdminCert, bundle.SuperAdminKey)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	startProc(local.Etcd, bins.Etcd, cp.EtcdFlags().Args())
	if err := proc.WaitReady(wctx, proc.HTTPSReady(fmt.Sprintf("https://127.0.0.1:%d/health", ports.EtcdClient), etcdTLS), 50*time.Millisecond, l.PidFile(local.Etcd)); err != nil {
		b.Fatal(err)
	}
	startProc(local.APIServer, bins.APIServer, cp.APIServerFlags().Args())
	if err := proc.WaitReady(wctx, proc.HTTPSReady(fmt.Sprintf("https://127.0.0.1:%d/readyz", ports.APIServer), apiTLS), 50*time.Millisecond, l.PidFile(local.APIServer)); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if err := local.StopAll(ctx, l); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkGuardrails measures what the admission guardrails cost and how
// fast verify judges a big cluster. On one local prod cluster (image
// allow-list and digests required): server-side dry-run Pod creates/s with
// the guardrails bound, then with their bindings deleted (same cluster,
// same run); then 200 namespaces with 2,000 PodTemplates, and the time of
// the four guardrail checks over all of it.
func BenchmarkGuardrails(b *testing.B) {
	bins := localtest.Toolchain(b)
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins})
	bp := noVault(examples(b, "prod.yaml"))[0]
	b.Cleanup(func() { p.Down(context.Background(), []string{bp.Name()}, nil) })
	up := func() {
		for _, r := range p.Up(ctx, []*blueprints.Blueprint{bp}, nil) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	up()
	t, err := provision.Target(providers.Registry(), stateDir, bp.Name())
	if err != nil {
		b.Fatal(err)
	}
	defer t.(interface{ Close() error }).Close()
	cfg, err := t.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 10000, 10000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	no, yes := false, true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "registry.example.com/shop/app@sha256:" + strings.Repeat("ab", 32), SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}}}}}
	create := func() error {
		_, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	foreign := pod.DeepCopy()
	foreign.Spec.Containers[0].Image = "nginx:latest"
	enforced := func() bool {
		_, err := cs.CoreV1().Pods("default").Create(ctx, foreign, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil
	}
	waitFor := func(want bool) {
		for deadline := time.Now().Add(30 * time.Second); enforced() != want; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("guardrails enforced = %v after 30 s, want %v", !want, want)
			}
		}
	}
	rate := func(name string) {
		for start := time.Now(); time.Since(start) < 3*time.Second; { // warm up
			if err := create(); err != nil {
				b.Fatal(err)
			}
		}
		throughput(b, name, "pods/s", create)
	}
	vb := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	unbind := func() {
		bindings, err := vb.List(ctx, metav1.ListOptions{LabelSelector: hardening.ControlLabel})
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range bindings.Items {
			if err := vb.Delete(ctx, x.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		waitFor(false)
	}
	rebind := func() { // up puts the bindings back
		up()
		waitFor(true)
	}
	// ABBA, so neither side gains from the API server warming up, after
	// the controllers have settled from creating the cluster (its first
	// seconds are measurably slower).
	settle := func() {
		for start := time.Now(); time.Since(start) < 15*time.Second; {
			if err := create(); err != nil {
				b.Fatal(err)
			}
		}
	}
	waitFor(true)
	settle()
	rate("with-guardrails")
	unbind()
	settle()
	rate("without-guardrails")
	rate("without-guardrails")
	rebind()
	settle()
	rate("with-guardrails")

	// 200 namespaces and 2,000 compliant PodTemplates (10 each), and the
	// guardrail checks over all of it.
	for i := range 200 {
		ns := fmt.Sprintf("bench-%03d", i)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for j := range 10 {
			if _, err := cs.CoreV1().PodTemplates(ns).Create(ctx, &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%d", j)},
				Template: corev1.PodTemplateSpec{Spec: pod.Spec}}, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var checks []verify.Check
	for _, c := range verify.Checks() {
		if strings.HasPrefix(string(c.ID), "SP-ADM-") {
			checks = append(checks, c)
		}
	}
	b.Run("verify-200ns-2000templates", func(b *testing.B) {
		for range b.N {
			rep := verify.Run(ctx, t, checks, verify.Options{})
			for _, r := range rep.Results {
				if r.Status != verify.StatusPass {
					b.Fatalf("%s: %s %s", r.ID, r.Status, r.Reason)
				}
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	})
}

// throughput runs create from 4×GOMAXPROCS goroutines as sub-benchmark
// name and reports the rate in unit.
func throughput(b *testing.B, name, unit string, create func() error) {
	b.Run(name, func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := create(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	})
}

// BenchmarkAllowRules100 is spec.network.allow at scale on one local
// cluster (prod example, no Vault): each iteration applies 100 allow rules
// (200 NetworkPolicies, an ingress and an egress each) with up, then plans
// a change to one of them, then times a no-op up of the same cluster as the
// baseline of the same run, and finally removes the rules (untimed).
func BenchmarkAllowRules100(b *testing.B) {
	bins := localtest.Toolchain(b)
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: providers.Registry(), Binaries: bins})
	base := noVault(examples(b, "prod.yaml"))[0]
	b.Cleanup(func() { p.Down(context.Background(), []string{base.Name()}, nil) })
	with := func(rules []v1alpha1.AllowRule) *blueprints.Blueprint {
		c := *base
		c.Spec.Network.Allow = rules
		return &c
	}
	rules := func(changed int) []v1alpha1.AllowRule {
		out := make([]v1alpha1.AllowRule, 100)
		for i := range out {
			port := 20000 + i
			if i == changed {
				port = 30000
			}
			out[i] = v1alpha1.AllowRule{From: v1alpha1.Peer{Namespace: "storefront"},
				To: v1alpha1.Destination{Namespace: "payments", Ports: []int{port}, Protocol: "TCP"}}
		}
		return out
	}
	run := func(f func(context.Context, []*blueprints.Blueprint, func(provision.ClusterEvent)) []provision.ClusterResult, bp *blueprints.Blueprint) time.Duration {
		start := time.Now()
		for _, r := range f(ctx, []*blueprints.Blueprint{bp}, nil) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		return time.Since(start)
	}
	none := with(nil)
	run(p.Up, none)
	var apply, plan, noop time.Duration
	n := 0
	for b.Loop() {
		apply += run(p.Up, with(rules(-1)))
		plan += run(p.Plan, with(rules(50)))
		noop += run(p.Up, with(rules(-1)))
		run(p.Up, none)
		n++
	}
	b.ReportMetric(apply.Seconds()/float64(n), "apply100-s/op")
	b.ReportMetric(plan.Seconds()/float64(n), "plan1-s/op")
	b.ReportMetric(noop.Seconds()/float64(n), "noop-s/op")
	b.ReportMetric(apply.Seconds()/noop.Seconds(), "apply100/noop")
}
