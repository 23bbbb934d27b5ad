package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"secprov.dev/secprov/provision/toolchain"
)

const wrapperGo = "go 1.26.0"

// Cilium's module needs two stand-ins (ENVIRONMENT.md): mcs-api's
// controllers module is not served (Cilium uses one constant of it), and
// gobgp is required at a pseudo-version the proxy does not serve.
const (
	gobgpModule  = "github.com/osrg/gobgp/v4"
	gobgpVersion = "v4.8.0"
)

// ciliumPackages are built in one go build. The output names are the last
// path elements; ciliumBinaries maps them to the names the chart calls.
var ciliumPackagesBuilt = []string{
	"daemon", "operator", "cilium-dbg", "cilium-health",
	"cilium-health/responder", "plugins/cilium-cni", "tools/mount", "tools/sysctlfix",
}

// ciliumBinaries: build output name → installed path in the images.
var ciliumBinaries = map[string]string{
	"daemon":     "/usr/bin/cilium-agent",
	"cilium-dbg": "/usr/bin/cilium-dbg",
	// cilium-health calls itself by this name; the chart's probes too.
	"cilium-health": "/usr/bin/cilium-health",
	"responder":     "/usr/bin/cilium-health-responder",
	"mount":         "/usr/bin/cilium-mount",
	"sysctlfix":     "/usr/bin/cilium-sysctlfix",
	"cilium-cni":    "/opt/cni/bin/cilium-cni",
	"operator":      "/usr/bin/cilium-operator-generic",
}

func ciliumRecipe(version string) goRecipe {
	var pkgs, bins []string
	for _, p := range ciliumPackagesBuilt {
		pkgs = append(pkgs, "github.com/cilium/cilium/"+p)
		bins = append(bins, p[strings.LastIndexByte(p, '/')+1:])
	}
	var imports strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&imports, "\t_ %q\n", p)
	}
	r := goRecipe{
		name: "cilium",
		files: map[string]string{
			"go.mod": "module secprov-images/cilium\n\n" + wrapperGo + "\n\n" +
				"require github.com/cilium/cilium " + version + "\n\n" +
				"replace sigs.k8s.io/mcs-api/controllers => ./mcsapi-controllers\n\n" +
				"replace " + gobgpModule + " => " + gobgpModule + " " + gobgpVersion + "\n",
			"tools.go":                  "//go:build tools\n\n// Package tools pins the Cilium commands for go mod tidy.\npackage tools\n\nimport (\n" + imports.String() + ")\n",
			"mcsapi-controllers/go.mod": "module sigs.k8s.io/mcs-api/controllers\n\n" + wrapperGo + "\n",
			"mcsapi-controllers/controllers.go": "// Package controllers stands in for sigs.k8s.io/mcs-api/controllers,\n" +
				"// which the module proxy does not serve: Cilium reads one constant.\npackage controllers\n\n" +
				"// DerivedServiceAnnotation is the Multi-Cluster Services API's annotation naming\n" +
				"// the Service derived from a ServiceImport.\n" +
				"const DerivedServiceAnnotation = \"multicluster.kubernetes.io/derived-service\"\n",
		},
		steps: [][]string{
			{"mod", "tidy"},
			append([]string{"build", "-trimpath", "-tags", "osusergo,ipam_provider_operator",
				"-ldflags", "-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=" + strings.TrimPrefix(version, "v") + " secprov'",
				"-o", "{out}/"}, pkgs...),
		},
		env:  []string{"CGO_ENABLED=0"},
		bins: bins,
	}
	r.inputs.Add("module", "github.com/cilium/cilium@"+version)
	return r
}

// coreDNSRecipe builds CoreDNS, and with goPause a minimal pause program
// too (when no C compiler is there for the upstream one), in one go build.
func coreDNSRecipe(version string, goPause bool) goRecipe {
	r := goRecipe{
		name: "coredns",
		files: map[string]string{
			"go.mod":              "module secprov-images/coredns\n\n" + wrapperGo + "\n\nrequire github.com/coredns/coredns " + version + "\n",
			"cmd/coredns/main.go": coreDNSMain(),
		},
		steps: [][]string{{"mod", "tidy"}},
		env:   []string{"CGO_ENABLED=0"},
		bins:  []string{"coredns"},
	}
	build := []string{"build", "-trimpath", "-ldflags", "-s -w -X github.com/coredns/coredns/coremain.GitCommit=" + version, "-o", "{out}/", "./cmd/coredns"}
	if goPause {
		r.files["cmd/pause/main.go"] = goPauseSource
		build = append(build, "./cmd/pause")
		r.bins = append(r.bins, "pause")
	}
	r.steps = append(r.steps, build)
	r.inputs.Add("module", "github.com/coredns/coredns@"+version)
	return r
}

// coreDNSPlugins are the plugins the CoreDNS image registers: those of
// kubeadm's (and kind's) Corefile, plus log and hosts. CoreDNS's default
// build registers every plugin it has, which pulls in the AWS, Azure and
// Google SDKs, etcd and tracing clients: a third of the build, for
// plugins a kind cluster's Corefile never names.
var coreDNSPlugins = []string{"cache", "errors", "forward", "health", "hosts", "kubernetes", "loadbalance", "log", "loop", "metrics", "ready", "reload"}

// coreDNSMain registers coreDNSPlugins, in the order CoreDNS's directive
// list gives them at run time, and runs CoreDNS.
func coreDNSMain() string {
	var b strings.Builder
	b.WriteString("// Command coredns is CoreDNS built from its published module with the\n// plugins a kubeadm Corefile uses.\npackage main\n\nimport (\n")
	for _, p := range coreDNSPlugins {
		fmt.Fprintf(&b, "\t_ \"github.com/coredns/coredns/plugin/%s\"\n", p)
	}
	b.WriteString("\n\t\"github.com/coredns/coredns/coremain\"\n)\n\nfunc main() { coremain.Run() }\n")
	return b.String()
}

// goPauseSource is a sandbox holder: sleep until told to stop, and reap
// any orphans, as the pause container's init must.
const goPauseSource = `// Command pause holds a pod's namespaces open until it is signalled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not running as PID 1\n")
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
	}
}
`

// cPause builds Kubernetes' own pause program (build/pause/linux/pause.c
// in the k8s.io/kubernetes module) statically with the host's C compiler,
// cached by the source's digest and the compiler's version.
func (b *builder) cPause(ctx context.Context, kubeVersion, pauseVersion string) (bin, sum string, comps []Component, cached bool, err error) {
	dir, _, err := b.moduleDir(ctx, "k8s.io/kubernetes", kubeVersion)
	if err != nil {
		return "", "", nil, false, err
	}
	src := filepath.Join(dir, "build", "pause", "linux", "pause.c")
	srcSum, err := toolchain.FileSHA256(src)
	if err != nil {
		return "", "", nil, false, fmt.Errorf("the k8s.io/kubernetes %s module has no pause source: %w", kubeVersion, err)
	}
	ccVersion, err := exec.CommandContext(ctx, b.cc, "-dumpfullversion").Output()
	if err != nil {
		return "", "", nil, false, fmt.Errorf("%s -dumpfullversion: %w", b.cc, err)
	}
	cv := strings.TrimSpace(string(ccVersion))
	var in Inputs
	in.Add("pause.c", srcSum)
	in.Add("cc", b.cc+" "+cv)
	in.Add("version", pauseVersion)
	digest := in.Digest()
	out := filepath.Join(b.dir, "pause", "pause-"+digest[:shortDigestLen])
	comps = []Component{
		{Name: "pause.c", Version: kubeVersion, Source: "go module k8s.io/kubernetes (build/pause/linux)", SHA256: srcSum},
		{Name: "cc", Version: cv, Source: "host " + b.cc},
	}
	if s, err := toolchain.FileSHA256(out); err == nil {
		return out, s, append(comps, Component{Name: "pause", Version: pauseVersion, Source: "built with " + b.cc + " -static", SHA256: s}), true, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", "", nil, false, err
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, b.cc, "-Os", "-Wall", "-Werror", "-static",
		"-DVERSION=v"+pauseVersion+"-secprov", "-o", tmp, src)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", "", nil, false, fmt.Errorf("compiling pause with %s -static: %w: %s (install libc6-dev for a static libc)", b.cc, err, strings.TrimSpace(errb.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", "", nil, false, err
	}
	s, err := toolchain.FileSHA256(out)
	if err != nil {
		return "", "", nil, false, err
	}
	return out, s, append(comps, Component{Name: "pause", Version: pauseVersion, Source: "built with " + b.cc + " -static", SHA256: s}), false, nil
}

// findCC returns the C compiler for pause, or "" when there is none.
func findCC() string {
	for _, c := range []string{"gcc", "cc"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// hasPauseSource reports whether the kubernetes module carries pause.c.
func hasPauseSource(moduleDir string) bool {
	_, err := os.Stat(filepath.Join(moduleDir, "build", "pause", "linux", "pause.c"))
	return err == nil
}
