package review

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"secprov.dev/secprov/blueprints"
)

// The secret a planted link points at; no report may carry a byte of it.
const planted = "s.PLANTED-CI-TOKEN-0815"

// TestNoOutsideBytesInAnyFormat plants links out of the reviewed tree the
// ways a pull request can (a file, a relative path, a linked directory)
// and a FIFO, reviews the tree, and checks that no output format carries
// the secret's content or its location.
func TestNoOutsideBytesInAnyFormat(t *testing.T) {
	top := t.TempDir()
	repo, outside := filepath.Join(top, "repo"), filepath.Join(top, "outside")
	for _, d := range []string{filepath.Join(repo, "bp"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// YAML-looking so that a loader that read it would quote it in a
	// syntax or schema error.
	secret := filepath.Join(outside, "token")
	if err := os.WriteFile(secret, []byte("apiVersion: "+planted+"\nkind: ["+planted+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := exampleFiles(t)
	if err := os.WriteFile(filepath.Join(repo, "bp", "prod.yaml"), ex["prod.yaml"], 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"bp/a.yaml":    secret,
		"bp/b.yaml":    "../../outside/token",
		"bp/out":       outside,
		"bp/c.yaml":    "out/token",
		"direct.yaml":  secret,
		"bp/dang.yaml": filepath.Join(outside, "missing"),
	} {
		if err := os.Symlink(target, filepath.Join(repo, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(repo, "bp", "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(repo)
	bps, loadErr := blueprints.Load("bp", "direct.yaml")
	if len(bps) != 1 {
		t.Fatalf("loaded %d blueprints; want prod.yaml alone", len(bps))
	}
	report := NewReport(bps, Review(bps, Options{Now: testNow}), loadErr)
	if len(report.Errors) != 6 {
		t.Errorf("%d load errors; want 6 (4 links out, 1 dangling, 1 FIFO): %v", len(report.Errors), report.Errors)
	}
	for _, f := range []Format{FormatText, FormatJSON, FormatSARIF, FormatMarkdown} {
		var buf bytes.Buffer
		if err := Write(&buf, report, f, WriteOptions{Verbose: true, SrcRoot: repo}); err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{planted, "PLANTED", outside, "outside/token"} {
			if strings.Contains(buf.String(), leak) {
				t.Errorf("%s report contains %q", f, leak)
			}
		}
	}
}

// sameNetworkSpellings returns ways to write the IPv4 prefix p.
func sameNetworkSpellings(p netip.Prefix) []string {
	a := p.Addr().As4()
	mapped := netip.PrefixFrom(netip.AddrFrom16(netip.AddrFrom4(a).As16()), p.Bits()+96)
	return []string{
		p.String(),
		mapped.String(),
		strings.ToUpper(mapped.String()),
		fmt.Sprintf("0:0:0:0:0:ffff:%02x%02x:%02x%02x/%d", a[0], a[1], a[2], a[3], p.Bits()+96),
		fmt.Sprintf("::FFFF:%d.%d.%d.%d/%d", a[0], a[1], a[2], a[3], p.Bits()+96),
	}
}

// sameVaultSpellings returns ways to write https://host[:port].
func sameVaultSpellings(host string, port int) []string {
	hp := host
	if port != 443 {
		hp = fmt.Sprintf("%s:%d", host, port)
	}
	return []string{
		"https://" + hp,
		"https://" + hp + "/",
		"HTTPS://" + strings.ToUpper(hp),
		fmt.Sprintf("https://%s:%d", host, port),
		fmt.Sprintf("https://%s.:%05d//", host, port),
		fmt.Sprintf("https://%s:%d/.", strings.ToUpper(host[:1])+host[1:], port),
	}
}

func isolationPair(prodNet, testNet, prodVault, testVault string) map[string][]byte {
	doc := func(name, env, pod, svc, vault string) []byte {
		return fmt.Appendf(nil, `apiVersion: secprov.dev/v1alpha1
kind: Blueprint
metadata: {name: %s}
spec:
  environment: %s
  network: {podCIDR: %q, serviceCIDR: %q}
  vault: {address: %q}
`, name, env, pod, svc, vault)
	}
	// Service networks of their own, so only the pod networks can collide.
	return map[string][]byte{
		"a-prod.yaml": doc("shop-prod", "prod", prodNet, "100.64.0.0/16", prodVault),
		"b-test.yaml": doc("shop-test", "test", testNet, "100.65.0.0/16", testVault),
	}
}

func rulesHit(fs []Finding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[string(f.Rule)] = true
	}
	return m
}

// TestIsolationSeesThroughSpellings: the same network or Vault written
// another way is still shared between environments.
func TestIsolationSeesThroughSpellings(t *testing.T) {
	p := netip.MustParsePrefix("10.70.0.0/16")
	for _, a := range sameNetworkSpellings(p) {
		for _, b := range sameNetworkSpellings(p) {
			bps := loadFiles(t, isolationPair(a, b, "https://vault-prod.example.com", "https://vault-test.example.com"))
			if !rulesHit(Review(bps, Options{Now: testNow}))["SP-ISO-003"] {
				t.Errorf("prod %s and test %s: no SP-ISO-003", a, b)
			}
		}
	}
	for _, a := range sameVaultSpellings("vault.example.com", 443) {
		for _, b := range sameVaultSpellings("vault.example.com", 443) {
			files := isolationPair("10.70.0.0/16", "10.71.0.0/16", a, b)
			// Same mount names in the same Vault.
			for n := range files {
				files[n] = bytes.Replace(files[n], []byte("vault: {"), []byte("vault: {kvMount: kv, "), 1)
			}
			if !rulesHit(Review(loadFiles(t, files), Options{Now: testNow}))["SP-ISO-002"] {
				t.Errorf("prod Vault %s and test Vault %s: no SP-ISO-002", a, b)
			}
		}
	}
}

// FuzzEquivalentSpellings: random equivalent spellings of one network or
// one Vault address are judged the same by review, and distinct ones are
// not confused.
func FuzzEquivalentSpellings(f *testing.F) {
	f.Add(uint32(0x0a460000), uint8(16), uint8(0), uint8(1), "vault.example.com", uint16(8200), uint8(0), uint8(4))
	f.Add(uint32(0xac100000), uint8(20), uint8(2), uint8(4), "v", uint16(443), uint8(1), uint8(5))
	f.Fuzz(func(t *testing.T, addr uint32, bits, sa, sb uint8, host string, port uint16, va, vb uint8) {
		bits = 8 + bits%17 // the pod CIDR range, /8 to /24
		a4 := netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
		p, _ := a4.Prefix(int(bits))
		if p.Addr().IsLoopback() || p.Addr().IsMulticast() || p.Addr().IsLinkLocalUnicast() || p.Addr().IsUnspecified() || p.Addr().As4()[0] == 0 || p.Addr().As4()[0] >= 224 || p.Overlaps(netip.MustParsePrefix("169.254.0.0/16")) || p.Overlaps(netip.MustParsePrefix("127.0.0.0/8")) || p.Overlaps(netip.MustParsePrefix("100.64.0.0/10")) {
			return
		}
		host = strings.ToLower(host)
		if host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || len(host) > 40 {
			return
		}
		if port == 0 {
			port = 1
		}
		nets, vaults := sameNetworkSpellings(p), sameVaultSpellings(host+".example", int(port))
		files := isolationPair(nets[int(sa)%len(nets)], nets[int(sb)%len(nets)], vaults[int(va)%len(vaults)], vaults[int(vb)%len(vaults)])
		for n := range files {
			files[n] = bytes.Replace(files[n], []byte("vault: {"), []byte("vault: {kvMount: kv, "), 1)
		}
		var bps []*blueprints.Blueprint
		for _, n := range []string{"a-prod.yaml", "b-test.yaml"} {
			got, err := blueprints.LoadBytes(n, files[n])
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			bps = append(bps, got...)
		}
		if bps[0].Spec.Network.PodCIDR != bps[1].Spec.Network.PodCIDR || bps[0].Spec.Vault.Address != bps[1].Spec.Vault.Address {
			t.Fatalf("loader kept two spellings: %q vs %q, %q vs %q", bps[0].Spec.Network.PodCIDR, bps[1].Spec.Network.PodCIDR, bps[0].Spec.Vault.Address, bps[1].Spec.Vault.Address)
		}
		hit := rulesHit(Review(bps, Options{Now: testNow}))
		if !hit["SP-ISO-003"] || !hit["SP-ISO-002"] {
			t.Fatalf("prod %s / %s and test %s / %s: SP-ISO-003 %v, SP-ISO-002 %v",
				nets[int(sa)%len(nets)], vaults[int(va)%len(vaults)], nets[int(sb)%len(nets)], vaults[int(vb)%len(vaults)], hit["SP-ISO-003"], hit["SP-ISO-002"])
		}
		// A different port is a different Vault.
		other := isolationPair("10.1.0.0/16", "10.2.0.0/16", vaults[0], fmt.Sprintf("https://%s.example:%d", host, int(port)%65535+1))
		for n := range other {
			other[n] = bytes.Replace(other[n], []byte("vault: {"), []byte("vault: {kvMount: kv, "), 1)
		}
		if rulesHit(Review(loadFiles(t, other), Options{Now: testNow}))["SP-ISO-002"] && int(port)%65535+1 != int(port) {
			t.Fatalf("port %d and %d judged the same Vault", port, int(port)%65535+1)
		}
	})
}
