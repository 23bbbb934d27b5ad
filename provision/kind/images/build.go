package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/toolchain"
)

// Options configure Build and Offline.
type Options struct {
	// CacheDir is secprov's cache root; images keep their rootfs tarballs,
	// wrapper builds and manifest in CacheDir/images. Default:
	// paths.CacheDir().
	CacheDir string
	Logger   *slog.Logger // default: discard
	Progress Progress     // default: none
	// DockerCommand and GoCommand default to "docker" and "go" on PATH.
	DockerCommand string
	GoCommand     string
	// DebianMirror is where debootstrap fetches packages. Default:
	// $SECPROV_DEBIAN_MIRROR, else DefaultDebianMirror.
	DebianMirror string
	// Tools finds the pinned Kubernetes and etcd binaries. Default: a
	// toolchain.Manager on CacheDir (which builds them if they are
	// missing).
	Tools Tools
	// Force rebuilds every image even when one with the same inputs exists
	// (rootfs tarballs and Go builds stay cached).
	Force bool
}

// Tools is the part of toolchain.Manager Build uses.
type Tools interface {
	Ensure(ctx context.Context, name string) (*toolchain.Installed, error)
}

// EventKind is the kind of a progress event.
type EventKind int

// Event kinds. Steps may run concurrently (downloads beside builds); each
// has one Start, any number of Step, and one Done, Cached or Failed.
const (
	EventStart  EventKind = iota // a step begins
	EventStep                    // a step reports what it is doing now (Detail)
	EventDone                    // a step did its work
	EventCached                  // a step found its result in the cache
	EventFailed                  // a step failed; Err says why
)

// Event reports progress on one build step.
type Event struct {
	Kind    EventKind
	Step    string // "rootfs node (debootstrap bookworm)", "image cilium-agent"…
	Detail  string
	Elapsed time.Duration
	Err     error
}

// Progress receives events, from several goroutines at once.
type Progress interface{ Event(Event) }

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Event)

// Event calls f(e).
func (f ProgressFunc) Event(e Event) { f(e) }

// builder holds one Build's state.
type builder struct {
	opts      Options
	dir       string // CacheDir/images
	log       *slog.Logger
	progress  Progress
	docker    docker
	goCmd     string
	goVersion string
	cc        string
	mirror    string

	mu      sync.Mutex
	modules map[string][2]string
	images  []Image
}

// ManifestPath is where the manifest of the last build is kept.
func ManifestPath(cacheDir string) string {
	return filepath.Join(cacheDir, "images", "manifest.json")
}

func (o Options) cacheDir() (string, error) {
	if o.CacheDir != "" {
		return filepath.Abs(o.CacheDir)
	}
	return paths.CacheDir()
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (o Options) dockerCmd() docker {
	cmd := o.DockerCommand
	if cmd == "" {
		cmd = "docker"
	}
	return docker{cmd: cmd, log: o.logger()}
}

func (b *builder) emit(e Event) {
	if b.progress != nil {
		b.progress.Event(e)
	}
}

// step runs fn as one reported step.
func (b *builder) step(name string, fn func() (cached bool, err error)) error {
	start := time.Now()
	b.emit(Event{Kind: EventStart, Step: name})
	cached, err := fn()
	e := Event{Step: name, Elapsed: time.Since(start)}
	switch {
	case err != nil:
		e.Kind, e.Err = EventFailed, err
	case cached:
		e.Kind = EventCached
	default:
		e.Kind = EventDone
	}
	b.emit(e)
	b.log.Info("images step", "step", name, "cached", cached, "elapsed", e.Elapsed.Round(time.Millisecond), "err", err)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (b *builder) record(im Image) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.images = append(b.images, im)
}

// group runs functions concurrently; the first error cancels the rest.
type group struct {
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	cancel context.CancelFunc
}

func (g *group) go_(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.once.Do(func() { g.err = err; g.cancel() })
		}
	}()
}

func (g *group) wait() error { g.wg.Wait(); return g.err }

// Build makes every offline image that is missing or whose inputs changed,
// writes the manifest and returns the offline set.
func Build(ctx context.Context, opts Options) (Set, error) {
	cache, err := opts.cacheDir()
	if err != nil {
		return Set{}, err
	}
	b := &builder{
		opts:     opts,
		dir:      filepath.Join(cache, "images"),
		log:      opts.logger(),
		progress: opts.Progress,
		docker:   opts.dockerCmd(),
		modules:  map[string][2]string{},
		mirror:   opts.DebianMirror,
	}
	if b.mirror == "" {
		b.mirror = os.Getenv(EnvDebianMirror)
	}
	if b.mirror == "" {
		b.mirror = DefaultDebianMirror
	}
	b.goCmd = opts.GoCommand
	if b.goCmd == "" {
		b.goCmd = "go"
	}
	if p, err := exec.LookPath(b.goCmd); err != nil {
		return Set{}, fmt.Errorf("offline images are built from the Go module proxy, and the go command is missing: %w; install Go 1.26 or newer", err)
	} else {
		b.goCmd = p
	}
	out, err := exec.CommandContext(ctx, b.goCmd, "env", "GOVERSION").Output()
	if err != nil {
		return Set{}, fmt.Errorf("%s env GOVERSION: %w", b.goCmd, err)
	}
	b.goVersion = strings.TrimSpace(string(out))
	b.cc = findCC()
	if err := b.docker.check(ctx); err != nil {
		return Set{}, err
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return Set{}, err
	}
	unlock, err := lockDir(ctx, filepath.Join(b.dir, "build.lock"))
	if err != nil {
		return Set{}, err
	}
	defer unlock()
	tools := opts.Tools
	if tools == nil {
		m, err := toolchain.New(toolchain.Options{CacheDir: cache, Logger: b.log})
		if err != nil {
			return Set{}, err
		}
		tools = m
	}
	set, err := b.build(ctx, tools)
	if err != nil {
		return Set{}, err
	}
	m := &Manifest{Schema: ManifestSchema, BuiltAt: time.Now().UTC().Truncate(time.Second), Set: set, Images: b.images}
	if err := WriteManifest(ManifestPath(cache), m); err != nil {
		return Set{}, err
	}
	return set, nil
}

// inputsOf is what the first phase produces for the image recipes.
type inputsOf struct {
	kube, etcd        *toolchain.Installed
	kubeSums          map[string]string // binary → sha256
	etcdSums          map[string]string
	kubeadmImages     kubeadmImages
	nodeRoot, cilRoot rootfs
	cilium, coredns   goOutput
	pauseBin          string
	pauseSum          string
	pauseComps        []Component
	kindDir, kindSum  string
	ciliumDir         string
}

func (b *builder) build(ctx context.Context, tools Tools) (Set, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var in inputsOf
	g := &group{cancel: cancel}

	// Phase 1: the network-bound root filesystems beside the CPU-bound
	// toolchain and Go builds.
	for _, spec := range []struct {
		spec rootfsSpec
		dst  *rootfs
	}{
		{rootfsSpec{name: "node", packages: nodePackages}, &in.nodeRoot},
		{rootfsSpec{name: "cilium", packages: ciliumPackages}, &in.cilRoot},
	} {
		g.go_(func() error {
			return b.step(fmt.Sprintf("rootfs %s (debootstrap %s %s)", spec.spec.name, DebianVariant, DebianSuite), func() (bool, error) {
				r, cached, err := b.ensureRootfs(ctx, spec.spec)
				*spec.dst = r
				return cached, err
			})
		})
	}
	g.go_(func() error { return b.compileInputs(ctx, tools, &in) })
	if err := g.wait(); err != nil {
		return Set{}, err
	}

	// Phase 2: the images, each skipped when it exists with its inputs.
	kube, err := b.kubeImages(ctx, &in)
	if err != nil {
		return Set{}, err
	}
	agent, operator, err := b.ciliumImages(ctx, &in)
	if err != nil {
		return Set{}, err
	}
	preload := append(kube, agent, operator)
	node, err := b.nodeImage(ctx, &in, preload)
	if err != nil {
		return Set{}, err
	}
	probe, err := b.probeImage(ctx)
	if err != nil {
		return Set{}, err
	}
	find := func(name string) Ref {
		for _, p := range preload {
			if p.name == name {
				return p.inNode
			}
		}
		return Ref{}
	}
	return Set{
		Offline:             true,
		Node:                node,
		CiliumAgent:         agent.inNode,
		CiliumOperator:      operator.inNode,
		KubeImageRepository: Repository,
		Etcd:                find("etcd"),
		CoreDNS:             find("coredns"),
		Pause:               find("pause"),
		Probe:               probe,
	}, nil
}

// compileInputs builds Cilium, readies the toolchain, asks kubeadm which
// images it wants and runs the remaining Go and C builds, one after another
// (they compete for CPU).
func (b *builder) compileInputs(ctx context.Context, tools Tools, in *inputsOf) error {
	ensure := func(name, version string, dst **toolchain.Installed, sums *map[string]string) error {
		return b.step(fmt.Sprintf("toolchain %s %s", name, version), func() (bool, error) {
			ins, err := tools.Ensure(ctx, name)
			if err != nil {
				return false, err
			}
			if ins.Version != version {
				return false, fmt.Errorf("the toolchain has %s %s, the images need %s", name, ins.Version, version)
			}
			*dst = ins
			*sums = map[string]string{}
			for bin, p := range ins.Bin {
				s, err := toolchain.FileSHA256(p)
				if err != nil {
					return false, err
				}
				(*sums)[bin] = s
			}
			return ins.Source == toolchain.SourceCache || ins.Source == toolchain.SourcePath, nil
		})
	}
	// Cilium first: it needs nothing from the toolchain, so on a fresh
	// machine it compiles while another secprov (make tools) is still
	// building the toolchain that the steps below wait for.
	if err := b.step("module sigs.k8s.io/kind "+KindVersion, func() (bool, error) {
		var err error
		in.kindDir, in.kindSum, err = b.moduleDir(ctx, "sigs.k8s.io/kind", KindVersion)
		return false, err
	}); err != nil {
		return err
	}
	if err := b.step("go build cilium "+CiliumVersion+" (8 commands)", func() (bool, error) {
		var err error
		if in.ciliumDir, _, err = b.moduleDir(ctx, "github.com/cilium/cilium", CiliumVersion); err != nil {
			return false, err
		}
		out, cached, err := b.ensureGo(ctx, ciliumRecipe(CiliumVersion))
		in.cilium = out
		return cached, err
	}); err != nil {
		return err
	}
	if err := ensure("kubernetes", KubernetesVersion, &in.kube, &in.kubeSums); err != nil {
		return err
	}
	for _, bin := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubeadm", "kubectl"} {
		if in.kube.Bin[bin] == "" {
			return fmt.Errorf("the toolchain's kubernetes %s has no %s: run `secprov tools install kubernetes` with a secprov that builds the node binaries", KubernetesVersion, bin)
		}
	}
	if err := ensure("etcd", EtcdVersion, &in.etcd, &in.etcdSums); err != nil {
		return err
	}
	if err := b.step("kubeadm config images list", func() (bool, error) {
		ki, err := listKubeadmImages(ctx, in.kube.Bin["kubeadm"], KubernetesVersion)
		in.kubeadmImages = ki
		return false, err
	}); err != nil {
		return err
	}
	kubeDir, _, err := b.moduleDir(ctx, "k8s.io/kubernetes", KubernetesVersion)
	if err != nil {
		return err
	}
	cPause := b.cc != "" && hasPauseSource(kubeDir)
	desc := "go build coredns " + in.kubeadmImages.coreDNSTag
	if !cPause {
		desc += " and pause"
	}
	if err := b.step(desc, func() (bool, error) {
		out, cached, err := b.ensureGo(ctx, coreDNSRecipe(in.kubeadmImages.coreDNSTag, !cPause))
		in.coredns = out
		return cached, err
	}); err != nil {
		return err
	}
	if !cPause {
		in.pauseBin = in.coredns.bin("pause")
		in.pauseSum = in.coredns.SHA256["pause"]
		in.pauseComps = []Component{{Name: "pause", Version: in.kubeadmImages.pauseTag, Source: "secprov's Go pause (no C compiler or pause source here)", SHA256: in.pauseSum}}
		return nil
	}
	return b.step("cc -static pause "+in.kubeadmImages.pauseTag, func() (bool, error) {
		bin, sum, comps, cached, err := b.cPause(ctx, KubernetesVersion, in.kubeadmImages.pauseTag)
		in.pauseBin, in.pauseSum, in.pauseComps = bin, sum, comps
		return cached, err
	})
}

// KindVersion is the kind module whose base-image files the node image
// carries; it must match the kind library secprov creates clusters with.
const KindVersion = "v0.33.0"

// kubeadmImages is what `kubeadm config images list` says it will ask for.
type kubeadmImages struct {
	all        []string
	coreDNSTag string
	pauseTag   string
}

func listKubeadmImages(ctx context.Context, kubeadm, version string) (kubeadmImages, error) {
	cmd := exec.CommandContext(ctx, kubeadm, "config", "images", "list", "--kubernetes-version", version, "--image-repository", Repository)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return kubeadmImages{}, fmt.Errorf("kubeadm config images list: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return parseKubeadmImages(out.String())
}

func parseKubeadmImages(out string) (kubeadmImages, error) {
	var ki kubeadmImages
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ki.all = append(ki.all, line)
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			continue
		}
		repo, tag := line[:i], line[i+1:]
		switch repo {
		case Repository + "/coredns":
			ki.coreDNSTag = tag
		case Repository + "/pause":
			ki.pauseTag = tag
		}
	}
	var errs []error
	if ki.coreDNSTag == "" {
		errs = append(errs, errors.New("names no CoreDNS image"))
	}
	if ki.pauseTag == "" {
		errs = append(errs, errors.New("names no pause image"))
	}
	if err := errors.Join(errs...); err != nil {
		return ki, fmt.Errorf("kubeadm config images list %w:\n%s", err, out)
	}
	return ki, nil
}

// preloaded is an image built for the node: its own tag and the name the
// node knows it by (what kubeadm or the Cilium chart asks for).
type preloaded struct {
	name   string
	ref    Ref
	inNode Ref
	inputs string
}

// imageRecipe is one image made with `docker import` from a tar stream.
type imageRecipe struct {
	name    string
	ref     Ref
	alias   Ref // second tag (zero for none)
	inputs  Inputs
	changes []string
	comps   []Component
	write   func(l *layer) error
	// intermediate images are not part of the set nor the manifest.
	intermediate bool
}

// importImage builds r unless its tag exists with the same inputs.
func (b *builder) importImage(ctx context.Context, r imageRecipe) (string, error) {
	digest := r.inputs.Digest()
	r.ref.Tag = DigestTag(r.ref.Tag, digest)
	err := b.step("image "+r.name, func() (bool, error) {
		info, ok, err := b.docker.current(ctx, r.ref.String(), digest)
		if err != nil {
			return false, err
		}
		cached := ok && !b.opts.Force
		if !cached {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeLayer(pw, r.write)) }()
			changes := append(r.changes, "LABEL "+LabelInputs+"="+digest)
			if err := b.docker.importTar(ctx, pr, r.ref.String(), changes); err != nil {
				pr.CloseWithError(err)
				return false, err
			}
			if info, _, err = b.docker.inspect(ctx, r.ref.String()); err != nil {
				return false, err
			}
		}
		im := Image{Name: r.name, Ref: r.ref, ID: info.ID, Inputs: digest, Size: info.Size, Components: r.comps}
		if r.alias.Repository != "" {
			if err := b.docker.tag(ctx, r.ref.String(), r.alias.String()); err != nil {
				return false, err
			}
			im.Aliases = []Ref{r.alias}
		}
		if !r.intermediate {
			b.record(im)
		}
		return cached, nil
	})
	return r.ref.Tag, err
}

// minimalFiles are what a single static binary's image needs besides it.
func minimalFiles(l *layer) error {
	if err := l.dir("/tmp", 0o1777); err != nil {
		return err
	}
	if err := l.bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")); err != nil {
		return err
	}
	return l.bytes("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
}

const binPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// kubeImages builds the control-plane, etcd, CoreDNS and pause images,
// tagged as kubeadm will ask for them.
func (b *builder) kubeImages(ctx context.Context, in *inputsOf) ([]preloaded, error) {
	type spec struct {
		name, version, bin, sum, source string
		extra                           map[string]string // more binaries: name → path
		entrypoint                      string
		user                            string
		comps                           []Component
	}
	var specs []spec
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		specs = append(specs, spec{name: c, version: KubernetesVersion, bin: in.kube.Bin[c], sum: in.kubeSums[c],
			source: "toolchain (" + string(in.kube.Source) + ")", entrypoint: "/usr/local/bin/" + c})
	}
	specs = append(specs,
		spec{name: "etcd", version: EtcdVersion, bin: in.etcd.Bin["etcd"], sum: in.etcdSums["etcd"],
			source: "toolchain (" + string(in.etcd.Source) + ")", entrypoint: "/usr/local/bin/etcd",
			extra: map[string]string{"etcdctl": in.etcd.Bin["etcdctl"]}},
		spec{name: "coredns", version: in.kubeadmImages.coreDNSTag, bin: in.coredns.bin("coredns"), sum: in.coredns.SHA256["coredns"],
			source: "go module github.com/coredns/coredns (plugins: " + strings.Join(coreDNSPlugins, ", ") + ")", entrypoint: "/coredns"},
		spec{name: "pause", version: in.kubeadmImages.pauseTag, bin: in.pauseBin, sum: in.pauseSum,
			entrypoint: "/pause", user: "65535:65535", comps: in.pauseComps},
	)
	var out []preloaded
	for _, s := range specs {
		var inputs Inputs
		inputs.Add("image", s.name)
		inputs.Add("version", s.version)
		inputs.Add("bin.sha256", s.sum)
		comps := s.comps
		if comps == nil {
			comps = []Component{{Name: s.name, Version: s.version, Source: s.source, SHA256: s.sum}}
		}
		var extraNames []string
		for n := range s.extra {
			extraNames = append(extraNames, n)
		}
		sort.Strings(extraNames)
		for _, n := range extraNames {
			inputs.Add("bin.sha256:"+n, in.etcdSums[n])
			comps = append(comps, Component{Name: n, Version: s.version, Source: s.source, SHA256: in.etcdSums[n]})
		}
		changes := []string{"ENV " + binPath, `ENTRYPOINT ["` + s.entrypoint + `"]`}
		if s.user != "" {
			changes = append(changes, "USER "+s.user)
		}
		repo := Repository + "/" + s.name
		alias := Ref{Repository: repo, Tag: s.version}
		tag, err := b.importImage(ctx, imageRecipe{
			name: s.name, ref: Ref{Repository: repo, Tag: s.version}, alias: alias,
			inputs: inputs, changes: changes, comps: comps,
			write: func(l *layer) error {
				if err := minimalFiles(l); err != nil {
					return err
				}
				if err := l.file(s.entrypoint, 0o755, s.bin); err != nil {
					return err
				}
				for n, p := range s.extra {
					if err := l.file("/usr/local/bin/"+n, 0o755, p); err != nil {
						return err
					}
				}
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
		out = append(out, preloaded{name: s.name, ref: Ref{Repository: repo, Tag: tag}, inNode: alias, inputs: inputs.Digest()})
	}
	return out, nil
}
