package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// kindFiles is where kind keeps its base image's files in its module.
const kindFiles = "images/base/files"

// kindFileMode gives each of kind's base-image files the mode kind's own
// image has: its scripts and the /kind/bin helpers executable, the rest
// (units, configs, sysctls, docs) read-only data.
func kindFileMode(rel string) int64 {
	if strings.HasPrefix(rel, "usr/local/bin/") || strings.HasPrefix(rel, "kind/bin/") {
		return 0o755
	}
	return 0o644
}

var (
	sandboxImageRE = regexp.MustCompile(`(?m)^(\s*sandbox_image\s*=\s*)"[^"]*"`)
	restrictOOMRE  = regexp.MustCompile(`(?m)^(\s*restrict_oom_score_adj\s*=\s*)(true|false)`)
)

// containerdConfig adapts kind's containerd config: the sandbox image is
// our pause image, and restrict_oom_score_adj is on, without which
// containerd in a node fails to start pods on hosts whose container
// runtime does not let it raise OOM scores (these cgroup-v1 machines).
func containerdConfig(kindConfig []byte, pause Ref) ([]byte, error) {
	s := string(kindConfig)
	if !sandboxImageRE.MatchString(s) {
		return nil, fmt.Errorf("kind's containerd config has no sandbox_image setting: the node recipe does not fit kind %s", KindVersion)
	}
	if !restrictOOMRE.MatchString(s) {
		return nil, fmt.Errorf("kind's containerd config has no restrict_oom_score_adj setting: the node recipe does not fit kind %s", KindVersion)
	}
	s = sandboxImageRE.ReplaceAllString(s, `${1}"`+pause.String()+`"`)
	s = restrictOOMRE.ReplaceAllString(s, "${1}true")
	return []byte(s), nil
}

// nodeSetup runs in the build container after the files are in place.
// It turns Debian's systemd into a container's init the way kind's base
// image does: nothing a package enabled starts, no udev or tmpfiles
// cleanup at boot, no kernel log in the journal, binfmt left alone (it is
// kernel-global); then enables the node's three services, exposes
// Debian's CNI plugins where kubelet and Cilium look, and derives
// containerd's base OCI spec from containerd's own default, with kind's
// hook that mounts the product name/uuid files and without rlimits.
const nodeSetup = `set -eu
rm -f /usr/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service
for d in multi-user local-fs basic; do rm -f /usr/lib/systemd/system/$d.target.wants/*; done
rm -f /usr/lib/systemd/system/sockets.target.wants/*udev* /usr/lib/systemd/system/sockets.target.wants/*initctl*
rm -f /etc/systemd/system/*.wants/*
printf 'ReadKMsg=no\n' >> /etc/systemd/journald.conf
systemctl enable containerd.service kubelet.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests /opt/cni/bin
for p in /usr/lib/cni/*; do ln -sf "$p" /opt/cni/bin/; done
ctr oci spec | jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}] | del(.process.rlimits)' > /etc/containerd/cri-base.json
jq -e '.hooks.createContainer | length > 0' /etc/containerd/cri-base.json >/dev/null
`

// preloadStart starts containerd in the build container and waits for it.
const preloadStart = `set -eu
containerd >/var/log/secprov-preload.log 2>&1 &
for i in $(seq 100); do
  if [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1; then exit 0; fi
  sleep 0.2
done
echo "containerd did not start:" >&2; tail -n 20 /var/log/secprov-preload.log >&2; exit 1
`

// preloadStop stops containerd and removes what only the build needed.
const preloadStop = `set -eu
pkill -x containerd || true
for i in $(seq 100); do pgrep -x containerd >/dev/null || break; sleep 0.1; done
rm -rf /run/containerd /var/log/secprov-preload.log /tmp/*
`

// nodeImage builds the kind node image in two steps: a base image (the
// Debian rootfs, kind's files, the node binaries) imported from one tar
// stream, then a build container from it where systemd is adapted and the
// images are imported into containerd's k8s.io namespace, committed with
// kind's entrypoint.
func (b *builder) nodeImage(ctx context.Context, in *inputsOf, preload []preloaded) (Ref, error) {
	filesDir := filepath.Join(in.kindDir, kindFiles)
	var pause Ref
	for _, p := range preload {
		if p.name == "pause" {
			pause = p.inNode
		}
	}
	kindConfig, err := os.ReadFile(filepath.Join(filesDir, "etc", "containerd", "config.toml"))
	if err != nil {
		return Ref{}, fmt.Errorf("kind %s module: %w", KindVersion, err)
	}
	config, err := containerdConfig(kindConfig, pause)
	if err != nil {
		return Ref{}, err
	}

	var baseIn Inputs
	baseIn.Add("rootfs", in.nodeRoot.digest)
	baseIn.Add("module:sigs.k8s.io/kind", KindVersion+" "+in.kindSum)
	baseIn.Add("containerd.config", bytesSHA256(config))
	baseIn.Add("kubernetes", KubernetesVersion)
	comps := in.nodeRoot.sbom()
	for _, bin := range []string{"kubelet", "kubeadm", "kubectl"} {
		baseIn.Add("bin.sha256:"+bin, in.kubeSums[bin])
		comps = append(comps, Component{Name: bin, Version: KubernetesVersion, Source: "toolchain (" + string(in.kube.Source) + ")", SHA256: in.kubeSums[bin]})
	}
	comps = append(comps, Component{Name: "kind base files", Version: KindVersion, Source: "go module sigs.k8s.io/kind (" + kindFiles + ")", SHA256: in.kindSum})
	baseRepo := Repository + "/node-base"
	baseTag, err := b.importImage(ctx, imageRecipe{
		name: "node-base", ref: Ref{Repository: baseRepo, Tag: KubernetesVersion}, inputs: baseIn,
		intermediate: true,
		changes:      []string{"ENV " + binPath},
		write: func(l *layer) error {
			f, err := os.Open(in.nodeRoot.tarball)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := l.copyTar(f); err != nil {
				return err
			}
			// kind's files, at their places: LICENSES/, etc/, kind/, usr/local/bin/.
			if err := l.tree("/", filesDir, kindFileMode, func(rel string, dir bool) bool {
				return rel == "etc/containerd/config.toml"
			}); err != nil {
				return err
			}
			if err := l.bytes("/etc/containerd/config.toml", 0o644, config); err != nil {
				return err
			}
			if err := l.bytes("/kind/version", 0o644, []byte(KubernetesVersion)); err != nil {
				return err
			}
			for _, bin := range []string{"kubelet", "kubeadm", "kubectl"} {
				// kind's kubelet unit runs /usr/bin/kubelet.
				if err := l.file("/usr/bin/"+bin, 0o755, in.kube.Bin[bin]); err != nil {
					return err
				}
			}
			// kind's units run containerd from /usr/local/bin; Debian
			// installs it in /usr/bin.
			for _, c := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
				if err := l.symlink("/usr/local/bin/"+c, "/usr/bin/"+c); err != nil {
					return err
				}
			}
			return l.symlink("/usr/sbin/init", "/usr/lib/systemd/systemd")
		},
	})
	if err != nil {
		return Ref{}, err
	}
	base := Ref{Repository: baseRepo, Tag: baseTag}

	var nodeIn Inputs
	nodeIn.Add("base", baseIn.Digest())
	nodeIn.Add("setup", bytesSHA256([]byte(nodeSetup+preloadStart+preloadStop)))
	var names []string
	for _, p := range preload {
		nodeIn.Add("preload:"+p.name, p.inNode.String()+" "+p.inputs)
		names = append(names, p.name)
	}
	digest := nodeIn.Digest()
	ref := Ref{Repository: Repository + "/node", Tag: DigestTag(KubernetesVersion, digest)}
	err = b.step("image node (preload "+fmt.Sprint(len(preload))+" images)", func() (bool, error) {
		info, ok, err := b.docker.current(ctx, ref.String(), digest)
		if err != nil {
			return false, err
		}
		cached := ok && !b.opts.Force
		if !cached {
			if err := b.commitNode(ctx, base, ref, digest, preload); err != nil {
				return false, err
			}
			if info, _, err = b.docker.inspect(ctx, ref.String()); err != nil {
				return false, err
			}
		}
		b.record(Image{Name: "node", Ref: ref, ID: info.ID, Inputs: digest, Size: info.Size, Preloaded: names, Components: comps})
		return cached, nil
	})
	return ref, err
}

func (b *builder) commitNode(ctx context.Context, base, ref Ref, digest string, preload []preloaded) error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("secprov-images-build-%d-%s", time.Now().Unix(), hex.EncodeToString(rnd[:]))
	// docker commit (before Docker 25) cannot set a stop signal, but keeps
	// the one of the image the container runs: so the build container runs
	// an image that has it. systemd stops on SIGRTMIN+3 (SIGTERM makes it
	// re-execute itself).
	withSignal := Ref{Repository: Repository + "/node-build", Tag: name}
	dockerfile := "FROM " + base.String() + "\nSTOPSIGNAL SIGRTMIN+3\n"
	if _, err := b.docker.runEnv(ctx, []string{"DOCKER_BUILDKIT=0"}, strings.NewReader(dockerfile), "build", "-q", "-t", withSignal.String(), "-"); err != nil {
		return fmt.Errorf("setting the node's stop signal: %w", err)
	}
	defer func() { _, _ = b.docker.run(context.Background(), nil, "rmi", withSignal.String()) }()
	// Like kind's node-image builder: a plain (unprivileged) container
	// that only sleeps, worked on with exec, then committed.
	if _, err := b.docker.run(ctx, nil, "run", "-d", "--name", name, "--entrypoint", "sleep",
		"--security-opt", "seccomp=unconfined", withSignal.String(), "infinity"); err != nil {
		return fmt.Errorf("starting the build container: %w", err)
	}
	defer b.docker.removeContainer(name)
	step := func(detail string) { b.emit(Event{Kind: EventStep, Step: "image node", Detail: detail}) }
	step("adapting systemd")
	if _, err := b.docker.exec(ctx, name, nil, "bash", "-c", nodeSetup); err != nil {
		return fmt.Errorf("node setup: %w", err)
	}
	step("starting containerd")
	if _, err := b.docker.exec(ctx, name, nil, "bash", "-c", preloadStart); err != nil {
		return err
	}
	for _, p := range preload {
		step("importing " + p.inNode.String())
		if err := b.importInto(ctx, name, p.inNode); err != nil {
			return fmt.Errorf("preloading %s: %w", p.inNode, err)
		}
	}
	out, err := b.docker.exec(ctx, name, nil, "ctr", "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, p := range preload {
		if !have[p.inNode.String()] {
			return fmt.Errorf("%s is not in the node's containerd after the import (it has: %s)", p.inNode, strings.Join(strings.Fields(string(out)), ", "))
		}
	}
	step("stopping containerd")
	if _, err := b.docker.exec(ctx, name, nil, "bash", "-c", preloadStop); err != nil {
		return err
	}
	step("committing")
	_, err = b.docker.run(ctx, nil, "commit",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"--change", "ENV container=docker",
		"--change", "LABEL "+LabelInputs+"="+digest,
		name, ref.String())
	return err
}

// importInto streams `docker save ref` into the build container's
// containerd, unpacked lazily on first use as kind does (the layers are
// not stored twice), and pins it so kubelet's image GC keeps it.
func (b *builder) importInto(ctx context.Context, container string, ref Ref) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(b.docker.save(ctx, pw, ref.String())) }()
	_, err := b.docker.exec(ctx, container, pr, "ctr", "-n", "k8s.io", "images", "import", "--no-unpack", "-")
	pr.CloseWithError(err)
	if err != nil {
		return err
	}
	_, err = b.docker.exec(ctx, container, nil, "ctr", "-n", "k8s.io", "images", "label", ref.String(), "io.cri-containerd.pinned=pinned")
	return err
}
