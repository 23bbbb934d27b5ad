package images

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"sort"

	"secprov.dev/secprov/provision/toolchain"
)

// ciliumScripts are the scripts the chart runs in the agent image, from
// the Cilium module: module path → image path.
var ciliumScripts = map[string]string{
	"images/cilium/init-container.sh":      "/init-container.sh",
	"plugins/cilium-cni/install-plugin.sh": "/install-plugin.sh",
	"plugins/cilium-cni/cni-uninstall.sh":  "/cni-uninstall.sh",
}

// ciliumBPFSkip leaves out of /var/lib/cilium/bpf what Cilium's own
// install leaves out: tests and build files the loader never reads.
func ciliumBPFSkip(rel string, dir bool) bool {
	switch {
	case dir && (rel == "tests" || rel == "complexity-tests" || rel == "custom"):
		return true
	case !dir && (rel == "Makefile" || rel == "Makefile.bpf" || rel == ".gitignore"):
		return true
	}
	return false
}

// llvmTools are the names Cilium's loader calls, linked to Debian's
// versioned LLVM 19 binaries.
var llvmTools = map[string]string{
	"/usr/local/bin/clang": "/usr/bin/clang-19",
	"/usr/local/bin/llc":   "/usr/bin/llc-19",
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ciliumImages builds the agent (Debian + LLVM + the binaries, scripts and
// BPF sources) and the generic operator.
func (b *builder) ciliumImages(ctx context.Context, in *inputsOf) (agent, operator preloaded, err error) {
	ciliumComp := func(bin string) Component {
		return Component{Name: path.Base(ciliumBinaries[bin]), Version: CiliumVersion, Source: "go module github.com/cilium/cilium", SHA256: in.cilium.SHA256[bin]}
	}
	var inputs Inputs
	inputs.Add("rootfs", in.cilRoot.digest)
	comps := in.cilRoot.sbom()
	for _, bin := range sortedKeys(ciliumBinaries) {
		if bin == "operator" {
			continue
		}
		inputs.Add("bin.sha256:"+bin, in.cilium.SHA256[bin])
		comps = append(comps, ciliumComp(bin))
	}
	for _, src := range sortedKeys(ciliumScripts) {
		s, err := toolchain.FileSHA256(filepath.Join(in.ciliumDir, src))
		if err != nil {
			return agent, operator, err
		}
		inputs.Add("script:"+src, s)
	}
	inputs.Add("module", "github.com/cilium/cilium@"+CiliumVersion) // bpf/ and the scripts
	comps = append(comps, Component{Name: "bpf", Version: CiliumVersion, Source: "go module github.com/cilium/cilium (bpf/)"})
	repo := Repository + "/cilium"
	tag, err := b.importImage(ctx, imageRecipe{
		name: "cilium-agent", ref: Ref{Repository: repo, Tag: CiliumVersion}, inputs: inputs, comps: comps,
		changes: []string{
			"ENV " + binPath,
			"ENV HUBBLE_SERVER=unix:///var/run/cilium/hubble.sock",
			"ENV INITSYSTEM=SYSTEMD",
			"WORKDIR /home/cilium",
			`CMD ["/usr/bin/cilium-dbg"]`,
		},
		write: func(l *layer) error {
			f, err := os.Open(in.cilRoot.tarball)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := l.copyTar(f); err != nil {
				return err
			}
			for _, bin := range sortedKeys(ciliumBinaries) {
				if bin == "operator" {
					continue
				}
				if err := l.file(ciliumBinaries[bin], 0o755, in.cilium.bin(bin)); err != nil {
					return err
				}
			}
			// The chart's probes call the agent's CLI by its old name.
			if err := l.symlink("/usr/bin/cilium", "cilium-dbg"); err != nil {
				return err
			}
			for _, link := range sortedKeys(llvmTools) {
				if err := l.symlink(link, llvmTools[link]); err != nil {
					return err
				}
			}
			for _, src := range sortedKeys(ciliumScripts) {
				if err := l.file(ciliumScripts[src], 0o755, filepath.Join(in.ciliumDir, src)); err != nil {
					return err
				}
			}
			if err := l.dir("/home/cilium", 0o755); err != nil {
				return err
			}
			return l.tree("/var/lib/cilium/bpf", filepath.Join(in.ciliumDir, "bpf"),
				func(string) int64 { return 0o644 }, ciliumBPFSkip)
		},
	})
	if err != nil {
		return agent, operator, err
	}
	agent = preloaded{name: "cilium-agent", ref: Ref{Repository: repo, Tag: tag}, inputs: inputs.Digest()}
	agent.inNode = agent.ref

	var opInputs Inputs
	opInputs.Add("bin.sha256:operator", in.cilium.SHA256["operator"])
	opRepo := Repository + "/cilium-operator-generic"
	opTag, err := b.importImage(ctx, imageRecipe{
		name: "cilium-operator", ref: Ref{Repository: opRepo, Tag: CiliumVersion}, inputs: opInputs,
		comps:   []Component{ciliumComp("operator")},
		changes: []string{"ENV " + binPath, `ENTRYPOINT ["/usr/bin/cilium-operator-generic"]`},
		write: func(l *layer) error {
			if err := minimalFiles(l); err != nil {
				return err
			}
			return l.file(ciliumBinaries["operator"], 0o755, in.cilium.bin("operator"))
		},
	})
	if err != nil {
		return agent, operator, err
	}
	operator = preloaded{name: "cilium-operator", ref: Ref{Repository: opRepo, Tag: opTag}, inputs: opInputs.Digest()}
	operator.inNode = operator.ref
	return agent, operator, nil
}
