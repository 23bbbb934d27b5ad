package kind

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// kernelEncryption is what the nodes' kernel (the host's: kind nodes are
// containers) offers Cilium's transparent encryption.
type kernelEncryption struct {
	WireGuard bool
	// Why says how WireGuard's presence or absence was established.
	Why string
}

// hostKernelEncryption reads this host's kernel; a remote Docker engine's
// kernel cannot be read from here.
func hostKernelEncryption() kernelEncryption {
	if !localEngine() {
		return kernelEncryption{Why: "the Docker engine is remote (DOCKER_HOST), so its kernel cannot be read from here"}
	}
	return kernelEncryptionIn(os.DirFS("/"))
}

// HostWireGuard reports whether the nodes of a kind cluster made here get
// WireGuard from the kernel they share, and how that was established.
func HostWireGuard() (bool, string) {
	k := hostKernelEncryption()
	return k.WireGuard, k.Why
}

// kernelEncryptionIn judges the kernel whose /proc, /sys and /lib/modules
// are in root: WireGuard is there when its module is loaded or built in
// (sys/module/wireguard), or the kernel's configuration has it built in or
// as a module that is installed.
func kernelEncryptionIn(root fs.FS) kernelEncryption {
	if _, err := fs.Stat(root, "sys/module/wireguard"); err == nil {
		return kernelEncryption{WireGuard: true, Why: "the wireguard module is loaded (/sys/module/wireguard)"}
	}
	release := "unknown"
	if b, err := fs.ReadFile(root, "proc/sys/kernel/osrelease"); err == nil {
		release = strings.TrimSpace(string(b))
	}
	modules := "lib/modules/" + release
	setting, err := kernelConfig(root, "CONFIG_WIREGUARD")
	switch {
	case err != nil:
		if installed(root, modules) {
			return kernelEncryption{WireGuard: true, Why: fmt.Sprintf("kernel %s ships wireguard.ko (%s)", release, "/"+modules)}
		}
		return kernelEncryption{Why: fmt.Sprintf("kernel %s has no wireguard module loaded or installed, and its configuration cannot be read (%v)", release, err)}
	case setting == "y":
		return kernelEncryption{WireGuard: true, Why: fmt.Sprintf("kernel %s has WireGuard built in (CONFIG_WIREGUARD=y)", release)}
	case setting == "m" && installed(root, modules):
		return kernelEncryption{WireGuard: true, Why: fmt.Sprintf("kernel %s has WireGuard as a module, installed under /%s", release, modules)}
	case setting == "m":
		return kernelEncryption{Why: fmt.Sprintf("kernel %s builds WireGuard as a module (CONFIG_WIREGUARD=m) but /%s has no wireguard.ko", release, modules)}
	}
	return kernelEncryption{Why: fmt.Sprintf("kernel %s is built without WireGuard (CONFIG_WIREGUARD is not set in /proc/config.gz)", release)}
}

// kernelConfig is the value of option in /proc/config.gz ("y", "m", or ""
// when it is not set).
func kernelConfig(root fs.FS, option string) (string, error) {
	f, err := root.Open("proc/config.gz")
	if err != nil {
		return "", err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("/proc/config.gz: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(z, 8<<20))
	if err != nil {
		return "", fmt.Errorf("/proc/config.gz: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), option+"="); ok {
			return v, nil
		}
	}
	return "", nil
}

// installed reports whether the modules directory lists wireguard.ko
// (modules.dep) or has it built in (modules.builtin).
func installed(root fs.FS, modules string) bool {
	for _, list := range []string{"modules.dep", "modules.builtin"} {
		b, err := fs.ReadFile(root, modules+"/"+list)
		if err == nil && bytes.Contains(b, []byte("/wireguard.ko")) {
			return true
		}
	}
	return false
}

// resolveTransparentEncryption turns spec.network.transparentEncryption
// into the mode the cluster runs: unset is the strongest the kernel
// offers; a mode the kernel lacks is refused before anything is created.
// kind takes wireguard or none (the loader refuses ipsec on kind).
func resolveTransparentEncryption(spec v1alpha1.Spec, k kernelEncryption) (string, error) {
	want := spec.Network.TransparentEncryption
	if spec.Network.CNI != v1alpha1.CNICilium {
		if want != "" && want != v1alpha1.TransparentEncryptionNone {
			return "", fmt.Errorf("spec.network.transparentEncryption is %s, which is Cilium's, and spec.network.cni is %q", want, spec.Network.CNI)
		}
		return v1alpha1.TransparentEncryptionNone, nil
	}
	switch want {
	case "":
		if k.WireGuard {
			return v1alpha1.TransparentEncryptionWireGuard, nil
		}
		return v1alpha1.TransparentEncryptionNone, nil
	case v1alpha1.TransparentEncryptionWireGuard:
		if !k.WireGuard {
			return "", fmt.Errorf("spec.network.transparentEncryption is wireguard, but the nodes share this host's kernel and %s: "+
				"run on a kernel with WireGuard, or set transparentEncryption: none and add an exception for %s saying why", k.Why, blueprints.NetworkEncrypted)
		}
		return want, nil
	case v1alpha1.TransparentEncryptionNone:
		return want, nil
	}
	return "", errors.New("spec.network.transparentEncryption: kind takes wireguard or none")
}
