package toolchain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"secprov.dev/secprov/provision/paths"
)

// Environment variables read by New when the matching option is unset.
const (
	EnvMirror     = "SECPROV_TOOLS_MIRROR"      // mirror root URL for release downloads
	EnvNoDownload = "SECPROV_TOOLS_NO_DOWNLOAD" // "1" or "true": never download
)

// Options configure a Manager. The zero value resolves the pinned tools in
// the default cache with every source enabled.
type Options struct {
	// CacheDir is the cache root; tools live in CacheDir/tools. Default:
	// paths.CacheDir().
	CacheDir string
	Logger   *slog.Logger // default: discard
	Progress Progress     // default: none
	// Tools replaces the pinned table (tests register small tools).
	Tools []Tool

	// NoPath skips looking for the tools on PATH.
	NoPath bool
	// PathDirs are searched instead of $PATH when non-nil.
	PathDirs []string

	// NoDownload skips official releases (also set by
	// SECPROV_TOOLS_NO_DOWNLOAD=1).
	NoDownload bool
	// Mirror is a root URL replacing the publishers' hosts: an artifact
	// https://HOST/PATH is fetched from Mirror/HOST/PATH. Default:
	// $SECPROV_TOOLS_MIRROR. Must be https.
	Mirror string
	// HTTPClient is used for downloads. Default: a client with a short dial
	// timeout, so an offline machine falls through to building quickly, and
	// that refuses redirects to plain http.
	HTTPClient *http.Client

	// NoBuild skips building from the Go module proxy.
	NoBuild bool
	// GoCommand is the go command used for builds. Default: "go" on PATH.
	GoCommand string

	// GOOS and GOARCH choose the release platform. Default: this binary's.
	GOOS, GOARCH string
}

// Manager finds, downloads or builds pinned tools. It is safe for concurrent
// use, and several Managers (in one process or many) may share a cache.
type Manager struct {
	toolsDir   string
	log        *slog.Logger
	progress   Progress
	tools      map[string]Tool
	order      []string
	noPath     bool
	pathDirs   []string
	noDownload bool
	mirror     string
	client     *http.Client
	noBuild    bool
	goCommand  string
	goos       string
	goarch     string
}

// Installed is a tool ready to run.
type Installed struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  Source `json:"source"`
	// Dir is where the tool was found: its cache install directory, or for a
	// PATH hit the directory of its first binary.
	Dir string `json:"dir"`
	// Root is the install root in the cache, Root/<BinDir>/<binary> being the
	// binaries. Set for cache installs and for pulumi found on PATH (linked
	// into the cache); pass it as auto.PulumiCommandOptions.Root.
	Root string `json:"root,omitempty"`
	// Bin maps each binary name to its absolute path.
	Bin map[string]string `json:"bin"`
}

// Status describes a tool without changing anything.
type Status struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	State   string            `json:"state"` // "installed" or "missing"
	Source  Source            `json:"source,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	Root    string            `json:"root,omitempty"`
	Bin     map[string]string `json:"bin,omitempty"`
	Problem string            `json:"problem,omitempty"` // why it is missing
}

// States reported in Status.
const (
	StateInstalled = "installed"
	StateMissing   = "missing"
)

// New validates opts and returns a Manager. It does not touch the cache.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		log:        opts.Logger,
		progress:   opts.Progress,
		noPath:     opts.NoPath,
		pathDirs:   opts.PathDirs,
		noDownload: opts.NoDownload,
		mirror:     opts.Mirror,
		client:     opts.HTTPClient,
		noBuild:    opts.NoBuild,
		goCommand:  opts.GoCommand,
		goos:       opts.GOOS,
		goarch:     opts.GOARCH,
		tools:      map[string]Tool{},
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = paths.CacheDir(); err != nil {
			return nil, err
		}
	}
	cache, err := filepath.Abs(cache)
	if err != nil {
		return nil, fmt.Errorf("cache directory %q: %w", opts.CacheDir, err)
	}
	m.toolsDir = filepath.Join(cache, "tools")
	if m.pathDirs == nil {
		m.pathDirs = filepath.SplitList(os.Getenv("PATH"))
	}
	if v := os.Getenv(EnvNoDownload); v == "1" || strings.EqualFold(v, "true") {
		m.noDownload = true
	}
	if m.mirror == "" {
		m.mirror = os.Getenv(EnvMirror)
	}
	if m.mirror != "" {
		u, err := url.Parse(m.mirror)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("tools mirror %q must be an https:// URL (set by the Mirror option or %s)", m.mirror, EnvMirror)
		}
		m.mirror = strings.TrimRight(m.mirror, "/")
	}
	if m.client == nil {
		m.client = defaultHTTPClient()
	}
	if m.goCommand == "" {
		m.goCommand = "go"
	}
	if m.goos == "" {
		m.goos = runtime.GOOS
	}
	if m.goarch == "" {
		m.goarch = runtime.GOARCH
	}
	tools := opts.Tools
	if tools == nil {
		tools = Pinned()
	}
	for _, t := range tools {
		if err := validateTool(t); err != nil {
			return nil, err
		}
		if _, dup := m.tools[t.Name]; dup {
			return nil, fmt.Errorf("tool %q is listed twice", t.Name)
		}
		m.tools[t.Name] = t
		m.order = append(m.order, t.Name)
	}
	return m, nil
}

func validateTool(t Tool) error {
	for _, s := range []string{t.Name, t.Version} {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) || strings.HasPrefix(s, ".") {
			return fmt.Errorf("tool %q version %q: names and versions must be plain path elements", t.Name, t.Version)
		}
	}
	if len(t.Binaries) == 0 {
		return fmt.Errorf("tool %q has no binaries", t.Name)
	}
	for _, b := range t.Binaries {
		if b.Name == "" || strings.ContainsAny(b.Name, `/\`) || b.VersionRE == nil {
			return fmt.Errorf("tool %q: binary %q needs a plain name and a version pattern", t.Name, b.Name)
		}
	}
	return nil
}

// Tools returns the tools this Manager knows, in table order.
func (m *Manager) Tools() []Tool {
	out := make([]Tool, 0, len(m.order))
	for _, n := range m.order {
		out = append(out, m.tools[n])
	}
	return out
}

// DefaultNames are the tools installed when none are named: all but the
// optional ones.
func (m *Manager) DefaultNames() []string {
	var names []string
	for _, n := range m.order {
		if !m.tools[n].Optional {
			names = append(names, n)
		}
	}
	return names
}

// Tool returns the named tool.
func (m *Manager) Tool(name string) (Tool, error) {
	t, ok := m.tools[name]
	if !ok {
		return Tool{}, fmt.Errorf("unknown tool %q: known tools are %s", name, toolNames(m.tools))
	}
	return t, nil
}

// InstallRoot is where the cache keeps a tool: <cache>/tools/<name>/<version>.
func (m *Manager) InstallRoot(t Tool) string {
	return filepath.Join(m.toolsDir, t.Name, t.Version)
}

// BuildLog is where the output of a tool's last build is kept.
func (m *Manager) BuildLog(t Tool) string {
	return filepath.Join(m.toolsDir, t.Name, t.Version+".build.log")
}

// Ensure makes the named tool ready (PATH, cache, download, build, in that
// order) and returns where its binaries are.
func (m *Manager) Ensure(ctx context.Context, name string) (*Installed, error) {
	t, err := m.Tool(name)
	if err != nil {
		return nil, err
	}
	tr := &tracker{p: m.progress, tool: t, start: time.Now()}
	ins, err := m.ensure(ctx, t, tr)
	if err != nil {
		err = fmt.Errorf("%s %s: %w", t.Name, t.Version, err)
		tr.emit(Event{Kind: EventFailed, Err: err})
		return nil, err
	}
	tr.emit(Event{Kind: EventDone, Installed: ins})
	return ins, nil
}

// EnsureAll ensures the named tools (DefaultNames when none are given) one
// after another — builds are memory-hungry, so never in parallel — and
// returns those that are ready with an error joining every failure.
func (m *Manager) EnsureAll(ctx context.Context, names ...string) ([]*Installed, error) {
	if len(names) == 0 {
		names = m.DefaultNames()
	}
	for _, n := range names {
		if _, err := m.Tool(n); err != nil {
			return nil, err
		}
	}
	var out []*Installed
	var errs []error
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		ins, err := m.Ensure(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ins)
	}
	return out, errors.Join(errs...)
}

func (m *Manager) ensure(ctx context.Context, t Tool, tr *tracker) (*Installed, error) {
	var reasons []error
	if m.noPath {
		reasons = append(reasons, errors.New("PATH: lookup disabled"))
	} else {
		bins, err := lookPath(t, m.pathDirs)
		if err == nil {
			err = checkVersions(ctx, t, bins)
		}
		if err == nil {
			ins := &Installed{
				Name: t.Name, Version: t.Version, Source: SourcePath,
				Dir: filepath.Dir(bins[t.Binaries[0].Name]), Bin: bins,
			}
			if t.BinDir != "" {
				root, err := m.linkIntoCache(ctx, t, bins, tr)
				if err != nil {
					return nil, err
				}
				ins.Root = root
			}
			return ins, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m.log.Debug("tool not usable from PATH", "tool", t.Name, "reason", err)
		reasons = append(reasons, fmt.Errorf("PATH: %w", err))
	}

	root := m.InstallRoot(t)
	if bins, err := checkInstallDir(ctx, t, root, true); err == nil {
		return m.installed(t, SourceCache, root, bins), nil
	}
	unlock, err := m.lock(ctx, t, tr)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have installed it while we waited for the lock.
	bins, err := checkInstallDir(ctx, t, root, true)
	if err == nil {
		return m.installed(t, SourceCache, root, bins), nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, errNotInstalled) {
		reasons = append(reasons, fmt.Errorf("cache: nothing in %s", root))
	} else {
		m.log.Warn("cached tool is unusable and will be replaced", "tool", t.Name, "dir", root, "reason", err)
		reasons = append(reasons, fmt.Errorf("cache: %w", err))
	}
	m.removeStale(t)
	return m.install(ctx, t, tr, reasons)
}

// install downloads or builds t; the caller holds the lock.
func (m *Manager) install(ctx context.Context, t Tool, tr *tracker, reasons []error) (*Installed, error) {
	switch {
	case m.noDownload:
		reasons = append(reasons, errors.New("download: disabled"))
	case t.Release == nil:
		reasons = append(reasons, errors.New("download: no official release known"))
	default:
		ins, err := m.download(ctx, t, tr)
		if err == nil {
			return ins, nil
		}
		var ue *unavailableError
		if !errors.As(err, &ue) || ctx.Err() != nil {
			return nil, err // tampered or corrupt artifacts must not be papered over by a build
		}
		m.log.Info("official release not available; building instead", "tool", t.Name, "reason", err)
		reasons = append(reasons, fmt.Errorf("download: %w", err))
	}
	switch {
	case m.noBuild:
		reasons = append(reasons, errors.New("build: disabled"))
	case t.Recipe == nil:
		reasons = append(reasons, errors.New("build: no recipe"))
	default:
		ins, err := m.build(ctx, t, tr)
		if err != nil {
			return nil, err
		}
		return ins, nil
	}
	return nil, &NotAvailableError{Tool: t.Name, Reasons: reasons}
}

// NotAvailableError says no enabled source could provide a tool; Reasons
// has one entry per source ("PATH: …", "cache: …", "download: …", "build: …").
type NotAvailableError struct {
	Tool    string
	Reasons []error
}

func (e *NotAvailableError) Error() string {
	r := make([]string, len(e.Reasons))
	for i, err := range e.Reasons {
		r[i] = err.Error()
	}
	return fmt.Sprintf("not available and nothing left to try (%s): put the binaries on PATH, allow downloads or builds, or run 'secprov tools install %s' where they are allowed",
		strings.Join(r, "; "), e.Tool)
}

func (e *NotAvailableError) Unwrap() []error { return e.Reasons }

func (m *Manager) installed(t Tool, src Source, root string, bins map[string]string) *Installed {
	return &Installed{Name: t.Name, Version: t.Version, Source: src, Dir: root, Root: root, Bin: bins}
}

// linkIntoCache gives a tool found on PATH the cache layout (pulumi: the
// Automation API wants ROOT/bin/pulumi) by symlinking its binaries, unless
// the cache already holds a working install of the same version.
func (m *Manager) linkIntoCache(ctx context.Context, t Tool, bins map[string]string, tr *tracker) (string, error) {
	root := m.InstallRoot(t)
	if _, err := checkInstallDir(ctx, t, root, true); err == nil {
		return root, nil
	}
	unlock, err := m.lock(ctx, t, tr)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := checkInstallDir(ctx, t, root, true); err == nil {
		return root, nil
	}
	m.removeStale(t)
	tr.phase(PhaseLinking)
	staging, err := m.tempDir(t, "tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	if err := os.MkdirAll(filepath.Join(staging, t.BinDir), 0o755); err != nil {
		return "", err
	}
	var origin []string
	for _, b := range t.Binaries {
		if err := os.Symlink(bins[b.Name], filepath.Join(staging, t.BinDir, b.Name)); err != nil {
			return "", fmt.Errorf("linking %s into the cache: %w", bins[b.Name], err)
		}
		origin = append(origin, bins[b.Name])
	}
	// The targets were just checked; checking the links again would only
	// start the binaries a second time.
	if err := m.commit(ctx, t, staging, "path-link", origin, false); err != nil {
		return "", err
	}
	return root, nil
}

// List reports every tool's state without installing, linking or writing
// anything.
func (m *Manager) List(ctx context.Context) []Status {
	var out []Status
	for _, n := range m.order {
		t := m.tools[n]
		st := Status{Name: t.Name, Version: t.Version, State: StateMissing}
		var pathProblem string
		if !m.noPath {
			bins, err := lookPath(t, m.pathDirs)
			if err == nil {
				err = checkVersions(ctx, t, bins)
			}
			if err == nil {
				st.State, st.Source, st.Bin = StateInstalled, SourcePath, bins
				st.Dir = filepath.Dir(bins[t.Binaries[0].Name])
				out = append(out, st)
				continue
			}
			pathProblem = err.Error()
		}
		root := m.InstallRoot(t)
		bins, err := checkInstallDir(ctx, t, root, false)
		if err == nil {
			st.State, st.Source, st.Bin, st.Dir, st.Root = StateInstalled, SourceCache, bins, root, root
			out = append(out, st)
			continue
		}
		st.Problem = err.Error()
		if errors.Is(err, errNotInstalled) {
			st.Problem = "not in the cache (" + root + ")"
		}
		if pathProblem != "" {
			st.Problem = pathProblem + "; " + st.Problem
		}
		out = append(out, st)
	}
	return out
}

// lock takes the tool's install lock, creating its cache directory.
func (m *Manager) lock(ctx context.Context, t Tool, tr *tracker) (func(), error) {
	dir := filepath.Join(m.toolsDir, t.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the tool cache %s: %w (set %s to a writable directory)", dir, err, paths.EnvCache)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, t.Version+".lock"), func() {
		m.log.Info("waiting for another process installing the tool", "tool", t.Name)
		tr.phase(PhaseWaiting)
	})
	if err != nil {
		return nil, fmt.Errorf("locking the cache for %s: %w", t.Name, err)
	}
	return unlock, nil
}

// tempDir makes a hidden staging or work directory beside the install root,
// on the same file system so the final rename is atomic.
func (m *Manager) tempDir(t Tool, kind string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(m.toolsDir, t.Name), "."+t.Version+"."+kind+"-")
	if err != nil {
		return "", fmt.Errorf("creating a %s directory for %s: %w", kind, t.Name, err)
	}
	return d, nil
}

// removeStale deletes temp directories left by a process that died while
// installing. Only the lock holder creates them, so the caller (holding the
// lock) knows none is in use.
func (m *Manager) removeStale(t Tool) {
	for _, kind := range []string{"tmp", "work", "old"} {
		matches, _ := filepath.Glob(filepath.Join(m.toolsDir, t.Name, "."+t.Version+"."+kind+"-*"))
		for _, d := range matches {
			m.log.Debug("removing a leftover directory", "dir", d)
			_ = os.RemoveAll(d)
		}
	}
}

// commit checks a staged install, marks it and renames it into place,
// replacing whatever (unusable) install was there.
func (m *Manager) commit(ctx context.Context, t Tool, staging, source string, origin []string, probe bool) error {
	bins := binPaths(t, staging)
	for _, b := range t.Binaries {
		p := bins[b.Name]
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("the %s lacks %s: %w", source, b.Name, err)
		}
		if fi.Mode().IsRegular() {
			if err := os.Chmod(p, 0o755); err != nil {
				return err
			}
		}
	}
	if probe {
		if err := checkVersions(ctx, t, bins); err != nil {
			return fmt.Errorf("the %s result fails its version check: %w", source, err)
		}
	}
	if err := writeMarker(staging, t, source, origin); err != nil {
		return fmt.Errorf("recording the install: %w", err)
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	root := m.InstallRoot(t)
	var old string
	if _, err := os.Lstat(root); err == nil {
		old = filepath.Join(m.toolsDir, t.Name, fmt.Sprintf(".%s.old-%d", t.Version, time.Now().UnixNano()))
		if err := os.Rename(root, old); err != nil {
			return fmt.Errorf("moving the unusable install %s aside: %w", root, err)
		}
	}
	if err := os.Rename(staging, root); err != nil {
		if old != "" {
			_ = os.Rename(old, root)
		}
		return fmt.Errorf("moving the install into %s: %w", root, err)
	}
	if old != "" {
		_ = os.RemoveAll(old)
	}
	m.log.Info("tool installed", "tool", t.Name, "version", t.Version, "source", source, "dir", root)
	return nil
}
