package images

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Debian is where the images' root filesystems come from.
const (
	DebianSuite   = "bookworm"
	DebianVariant = "minbase"
	// DefaultDebianMirror is used unless Options.DebianMirror or
	// SECPROV_DEBIAN_MIRROR names another.
	DefaultDebianMirror = "http://deb.debian.org/debian"
	EnvDebianMirror     = "SECPROV_DEBIAN_MIRROR"
)

// rootfsSpec is one Debian root filesystem: debootstrap's minbase plus
// the listed packages (and what they depend on).
type rootfsSpec struct {
	name     string
	packages []string
}

// nodePackages are what kind's base image installs that Debian bookworm
// has, plus the container runtime kind builds itself (bookworm's
// containerd 1.6 reads kind's version-2 config).
var nodePackages = []string{
	"systemd", "conntrack", "iptables", "nftables", "iproute2", "ethtool",
	"util-linux", "mount", "kmod", "libseccomp2", "pigz", "bash",
	"ca-certificates", "jq", "procps",
	"containerd", "runc", "containernetworking-plugins",
}

// ciliumPackages are what Cilium's agent runs: LLVM 19 to compile the
// datapath at run time (the version Cilium ships), and the networking
// tools its scripts call.
var ciliumPackages = []string{
	"clang-19", "llvm-19", "iproute2", "iptables", "ipset", "kmod",
	"ca-certificates", "bash",
}

func (s rootfsSpec) inputs() Inputs {
	var in Inputs
	pk := append([]string(nil), s.packages...)
	sort.Strings(pk)
	in.Add("debian.suite", DebianSuite)
	in.Add("debian.variant", DebianVariant)
	in.Add("debian.include", strings.Join(pk, ","))
	return in
}

// rootfs is a built root filesystem tarball and the versions of the
// packages in it.
type rootfs struct {
	spec     rootfsSpec
	digest   string
	tarball  string
	packages map[string]string // package → version, every installed package
}

// sbom lists the requested packages with their installed versions.
func (r rootfs) sbom() []Component {
	var out []Component
	for _, p := range r.spec.packages {
		out = append(out, Component{Name: p, Version: r.packages[p], Source: "debian " + DebianSuite})
	}
	return out
}

// ensureRootfs returns the cached tarball for spec, running debootstrap
// when there is none.
func (b *builder) ensureRootfs(ctx context.Context, spec rootfsSpec) (rootfs, bool, error) {
	in := spec.inputs()
	r := rootfs{spec: spec, digest: in.Digest()}
	base := filepath.Join(b.dir, "rootfs", spec.name+"-"+r.digest[:shortDigestLen])
	r.tarball = base + ".tar"
	pkgFile := base + ".packages.json"
	if pk, err := readPackages(pkgFile); err == nil {
		if _, err := os.Stat(r.tarball); err == nil {
			r.packages = pk
			return r, true, nil
		}
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return r, false, errors.New("building a root filesystem needs debootstrap: install it (Debian: apt-get install debootstrap)")
	}
	if os.Geteuid() != 0 {
		return r, false, errors.New("debootstrap must run as root: run `secprov images build` as root (or with sudo)")
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return r, false, err
	}
	work, err := os.MkdirTemp(filepath.Dir(base), ".debootstrap-"+spec.name+"-")
	if err != nil {
		return r, false, err
	}
	defer os.RemoveAll(work)
	target := filepath.Join(work, "root")
	logPath := base + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return r, false, err
	}
	defer logf.Close()
	args := []string{
		"--variant=" + DebianVariant,
		"--include=" + strings.Join(spec.packages, ","),
		DebianSuite, target, b.mirror,
	}
	fmt.Fprintf(logf, "$ debootstrap %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return r, false, ctx.Err()
		}
		return r, false, fmt.Errorf("debootstrap %s failed: %w; see %s (debootstrap's own log is in the target's debootstrap/debootstrap.log)", spec.name, err, logPath)
	}
	// The package cache and lists are only for installing; an image never runs apt.
	for _, p := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		if err := clearDir(filepath.Join(target, p)); err != nil {
			return r, false, err
		}
	}
	pk, err := installedPackages(ctx, target)
	if err != nil {
		return r, false, err
	}
	for _, p := range spec.packages {
		if pk[p] == "" {
			return r, false, fmt.Errorf("debootstrap %s: package %s is not installed; see %s", spec.name, p, logPath)
		}
	}
	tmpTar := filepath.Join(work, "rootfs.tar")
	// Numeric owners and xattrs (file capabilities) as installed. /dev,
	// /proc and /sys are mounted by the container runtime.
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./run/*",
		"-C", target, "-cf", tmpTar, ".")
	var errb bytes.Buffer
	tarCmd.Stderr = &errb
	if err := tarCmd.Run(); err != nil {
		return r, false, fmt.Errorf("packing the %s rootfs: %w: %s", spec.name, err, strings.TrimSpace(errb.String()))
	}
	if err := os.Rename(tmpTar, r.tarball); err != nil {
		return r, false, err
	}
	raw, err := json.MarshalIndent(pk, "", "  ")
	if err != nil {
		return r, false, err
	}
	if err := os.WriteFile(pkgFile, raw, 0o644); err != nil {
		return r, false, err
	}
	r.packages = pk
	return r, false, nil
}

func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == "partial" || e.Name() == "lock" || e.Name() == "auxfiles" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// installedPackages reads the rootfs's dpkg database.
func installedPackages(ctx context.Context, root string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the rootfs's packages (dpkg-query): %w", err)
	}
	pk := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) == 3 && strings.HasPrefix(f[2], "ii") {
			pk[f[0]] = f[1]
		}
	}
	return pk, sc.Err()
}

func readPackages(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var pk map[string]string
	if err := json.Unmarshal(b, &pk); err != nil {
		return nil, err
	}
	return pk, nil
}
