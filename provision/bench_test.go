package provision_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/local/proc"
	"secprov.dev/secprov/provision/paths"
)

func TestMain(m *testing.M) {
	reg, err := provision.Registry()
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

// upOnce brings bps up in a fresh state dir and returns how long up took
// (teardown not included).
func upOnce(b *testing.B, bins local.Binaries, bps []*blueprints.Blueprint) time.Duration {
	ctx := context.Background()
	eng, stateDir := enginetest.NewEngine(b, nil)
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, LocalBinaries: bins})
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
// toolchain: engine, PKI, config, etcd, API server, controller manager,
// scheduler and bootstrap objects.
func BenchmarkUpOne(b *testing.B) {
	bins, bps := localtest.Binaries(b), examples(b, "test.yaml")
	timed(b, func() time.Duration { return upOnce(b, bins, bps) })
}

// BenchmarkUpProdTest brings prod and test up together.
func BenchmarkUpProdTest(b *testing.B) {
	bins, bps := localtest.Binaries(b), examples(b, "prod.yaml", "test.yaml")
	timed(b, func() time.Duration { return upOnce(b, bins, bps) })
}

// BenchmarkUpVsFloor alternates the floor and one up in every iteration,
// so both see the same machine load, and reports their ratio.
func BenchmarkUpVsFloor(b *testing.B) {
	bins, bps := localtest.Binaries(b), examples(b, "test.yaml")
	var up, floor time.Duration
	for b.Loop() {
		floor += floorOnce(b, bins, bps[0])
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
	bins, bp := localtest.Binaries(b), examples(b, "test.yaml")[0]
	timed(b, func() time.Duration { return floorOnce(b, bins, bp) })
}

// floorOnce prepares PKI and config, then times starting etcd and
// kube-apiserver to /readyz.
func floorOnce(b *testing.B, bins local.Binaries, bp *blueprints.Blueprint) time.Duration {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "c")
	c := &local.Cluster{Blueprint: bp.Blueprint, Dir: dir, Binaries: bins}
	l := local.NewLayout(dir)
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
