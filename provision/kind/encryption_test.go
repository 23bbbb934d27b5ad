package kind

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"testing/fstest"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write([]byte(s))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestKernelEncryption: WireGuard is found loaded, built in, or as an
// installed module; a kernel without it (these CI machines') says why.
func TestKernelEncryption(t *testing.T) {
	rel := &fstest.MapFile{Data: []byte("6.18.44-test\n")}
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want bool
		why  string
	}{
		{"loaded", fstest.MapFS{"sys/module/wireguard/version": {Data: []byte("1.0.0")}}, true, "module is loaded"},
		{"built in", fstest.MapFS{"proc/sys/kernel/osrelease": rel, "proc/config.gz": {Data: gzipped(t, "CONFIG_XFRM=y\nCONFIG_WIREGUARD=y\n")}}, true, "built in"},
		{"module installed", fstest.MapFS{"proc/sys/kernel/osrelease": rel, "proc/config.gz": {Data: gzipped(t, "CONFIG_WIREGUARD=m\n")},
			"lib/modules/6.18.44-test/modules.dep": {Data: []byte("kernel/drivers/net/wireguard/wireguard.ko: kernel/lib/crypto/libcurve25519.ko\n")}}, true, "installed under"},
		{"module not installed", fstest.MapFS{"proc/sys/kernel/osrelease": rel, "proc/config.gz": {Data: gzipped(t, "CONFIG_WIREGUARD=m\n")}}, false, "has no wireguard.ko"},
		{"not set", fstest.MapFS{"proc/sys/kernel/osrelease": rel, "proc/config.gz": {Data: gzipped(t, "# CONFIG_WIREGUARD is not set\nCONFIG_XFRM=y\n")}}, false, "kernel 6.18.44-test is built without WireGuard"},
		{"no config, module shipped", fstest.MapFS{"proc/sys/kernel/osrelease": rel,
			"lib/modules/6.18.44-test/modules.builtin": {Data: []byte("kernel/drivers/net/wireguard/wireguard.ko\n")}}, true, "ships wireguard.ko"},
		{"nothing to read", fstest.MapFS{"proc/sys/kernel/osrelease": rel}, false, "cannot be read"},
		{"corrupt config", fstest.MapFS{"proc/sys/kernel/osrelease": rel, "proc/config.gz": {Data: []byte("not gzip")}}, false, "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kernelEncryptionIn(tc.fs)
			if got.WireGuard != tc.want || !strings.Contains(got.Why, tc.why) {
				t.Errorf("got %+v, want WireGuard %v and a reason with %q", got, tc.want, tc.why)
			}
		})
	}
}

// TestResolveTransparentEncryption: unset is the strongest mode the
// kernel has; wireguard on a kernel without it is refused, saying why and
// what to do.
func TestResolveTransparentEncryption(t *testing.T) {
	with := kernelEncryption{WireGuard: true, Why: "built in"}
	without := kernelEncryption{Why: "kernel 6.18 is built without WireGuard"}
	spec := func(cni, mode string) v1alpha1.Spec {
		var s v1alpha1.Spec
		s.Network.CNI, s.Network.TransparentEncryption = cni, mode
		return s
	}
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.Spec
		k         kernelEncryption
		want, err string
	}{
		{"unset with wireguard", spec("cilium", ""), with, "wireguard", ""},
		{"unset without", spec("cilium", ""), without, "none", ""},
		{"wireguard with", spec("cilium", "wireguard"), with, "wireguard", ""},
		{"wireguard without", spec("cilium", "wireguard"), without, "", "built without WireGuard: run on a kernel with WireGuard, or set transparentEncryption: none and add an exception for SP-NET-005"},
		{"none", spec("cilium", "none"), with, "none", ""},
		{"no cni", spec("none", ""), with, "none", ""},
		{"wireguard without cilium", spec("none", "wireguard"), with, "", "which is Cilium's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveTransparentEncryption(tc.spec, tc.k)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want one with %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Fatalf("mode %q, want %q", got, tc.want)
			}
		})
	}
}
