// Package engine runs secprov's inline Pulumi programs through the
// Automation API: one stack per blueprint (cluster), state in a Pulumi
// backend (a private file backend under the state dir by default), secrets
// encrypted with a passphrase, and secprov's own binary as the only
// resource provider plugin — nothing is ever downloaded.
//
// Layout under the state dir (all private to the user):
//
//	passphrase          generated state passphrase (unless SECPROV_PASSPHRASE is set)
//	pulumi/             default file backend: .pulumi/stacks, history, backups, locks
//	pulumi-home/        PULUMI_HOME (engine caches, workspace selections)
//	plugins/            pulumi-resource-secprov -> the running secprov binary
//	workspaces/<stack>/ Pulumi.yaml and Pulumi.<stack>.yaml (encryption salt)
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

// ProjectName is the Pulumi project every secprov stack belongs to.
const ProjectName = "secprov"

// EnvState names the environment variable the CLI reads a backend URL from
// (same meaning as its --state flag).
const EnvState = "SECPROV_STATE"

// Config configures an Engine.
type Config struct {
	// PulumiRoot is the Pulumi toolchain directory; the CLI is
	// PulumiRoot/bin/pulumi.
	PulumiRoot string
	// PulumiVersion, when the caller has already verified it (the
	// toolchain has), saves running `pulumi version` (≈0.2 s).
	PulumiVersion string
	// StateDir is secprov's state root (see the package documentation).
	StateDir string
	// Backend is any Pulumi backend URL (file://, s3://, gs://, azblob://,
	// https://api.pulumi.com). Empty means file://<StateDir>/pulumi.
	Backend string
	// Passphrase encrypts secrets in the state. Zero means
	// ResolvePassphrase(StateDir, ""): the generated one.
	Passphrase Passphrase
	// PluginExecutable is the binary the engine starts as the secprov
	// provider. Empty means this process's own executable; tests point it
	// at their test binary.
	PluginExecutable string
	// Log receives the engine's own progress (recovery actions, timings).
	// Nil discards.
	Log *slog.Logger
}

// Engine runs operations on secprov's stacks. It is safe for concurrent
// use on different stacks; operations on one stack are serialised by the
// backend's lock.
type Engine struct {
	cfg        Config
	cmd        *command
	home       string
	pluginDir  string
	workRoot   string
	backendDir string // the file backend's directory, "" for other backends
	log        *slog.Logger

	secretsMu sync.Mutex
	secrets   []string // Vault tokens the engine was given, redacted from its output

	pgOnce  sync.Once // the postgres backend's pool, see postgres()
	pgDB    *sql.DB
	pgTable string
	pgErr   error
}

// stackNameRE is what a blueprint name must look like to name a stack.
var stackNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// New prepares the state dir and the provider plugin link and checks the
// Pulumi CLI. It does not contact the backend.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("engine: no state directory configured")
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = stateDir
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := paths.EnsurePrivateDir(stateDir); err != nil {
		return nil, fmt.Errorf("preparing state directory %s: %w", stateDir, err)
	}
	e := &Engine{
		cfg:       cfg,
		home:      filepath.Join(stateDir, "pulumi-home"),
		pluginDir: filepath.Join(stateDir, "plugins"),
		workRoot:  filepath.Join(stateDir, "workspaces"),
		log:       cfg.Log,
	}
	if err := CheckBackendURL(e.cfg.Backend); err != nil {
		return nil, err
	}
	if e.cfg.Backend == "" {
		e.backendDir = defaultBackendDir(stateDir)
		e.cfg.Backend = fileURL(e.backendDir)
	} else if dir, ok := fileBackendDir(e.cfg.Backend); ok {
		e.backendDir = dir
	}
	for _, d := range []string{e.home, e.pluginDir, e.workRoot} {
		if err := paths.EnsurePrivateDir(d); err != nil {
			return nil, fmt.Errorf("preparing %s: %w", d, err)
		}
	}
	if e.backendDir != "" {
		if err := paths.EnsurePrivateDir(e.backendDir); err != nil {
			return nil, fmt.Errorf("preparing the file backend %s: %w", e.backendDir, err)
		}
	}
	if e.cfg.Passphrase.IsZero() {
		if e.cfg.Passphrase, err = ResolvePassphrase(stateDir, ""); err != nil {
			return nil, err
		}
	}
	if err := e.linkPlugin(); err != nil {
		return nil, err
	}
	if e.cmd, err = newCommand(ctx, cfg.PulumiRoot, e.home, cfg.PulumiVersion, e.log); err != nil {
		return nil, err
	}
	return e, nil
}

// Backend is the backend URL in use.
func (e *Engine) Backend() string { return e.cfg.Backend }

// BackendShown is the backend URL with its password replaced, for
// messages.
func (e *Engine) BackendShown() string { return redactURL(e.cfg.Backend) }

// linkPlugin makes plugins/pulumi-resource-secprov point at the provider
// binary. The engine finds it there through the project's
// plugins.providers setting, so it never searches PATH or downloads.
func (e *Engine) linkPlugin() error {
	exe := e.cfg.PluginExecutable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the secprov executable to serve as the Pulumi provider: %w", err)
		}
	}
	exe, err := filepath.Abs(exe)
	if err != nil {
		return err
	}
	link := filepath.Join(e.pluginDir, provider.PluginName)
	if cur, err := os.Readlink(link); err == nil && cur == exe {
		return nil
	}
	// Build the new link beside the old one and rename it into place, so a
	// concurrent engine never sees a missing plugin.
	tmp := fmt.Sprintf("%s.tmp%d", link, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(exe, tmp); err != nil {
		// No symlinks (some filesystems, Windows without privilege): copy.
		if cerr := copyFile(exe, tmp, 0o700); cerr != nil {
			return fmt.Errorf("installing the provider plugin at %s: symlink failed (%v), copy failed: %w", link, err, cerr)
		}
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("installing the provider plugin at %s: %w", link, err)
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// project is the Pulumi.yaml every workspace gets.
func (e *Engine) project() workspace.Project {
	return workspace.Project{
		Name:    tokens.PackageName(ProjectName),
		Runtime: workspace.NewProjectRuntimeInfo("go", nil),
		Plugins: &workspace.Plugins{
			Providers: []workspace.PluginOptions{{Name: provider.Package, Path: e.pluginDir}},
		},
	}
}

// env is the engine's environment for stack operations.
func (e *Engine) env() map[string]string {
	// The rest (no update check, no download, ...) is set by the command
	// for every invocation.
	return map[string]string{
		"PULUMI_BACKEND_URL":       e.cfg.Backend,
		"PULUMI_CONFIG_PASSPHRASE": e.cfg.Passphrase.Reveal(),
	}
}

func (e *Engine) workspaceOptions(stack string) ([]auto.LocalWorkspaceOption, error) {
	dir := filepath.Join(e.workRoot, stack)
	if err := paths.EnsurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("preparing the workspace for stack %q: %w", stack, err)
	}
	// The SDK writes Pulumi.yaml from this process with mode 0644, but
	// keeps the mode of an existing file: create it private first.
	projFile := filepath.Join(dir, "Pulumi.yaml")
	f, err := os.OpenFile(projFile, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("preparing the workspace for stack %q: %w", stack, err)
	}
	f.Close()
	if err := os.Chmod(projFile, 0o600); err != nil {
		return nil, fmt.Errorf("preparing the workspace for stack %q: %w", stack, err)
	}
	env := e.env()
	sec, _, err := e.stackSecrets(stack)
	if err != nil {
		return nil, err
	}
	if sec.IsVault() {
		venv, err := vaultEnv(sec)
		if err != nil {
			return nil, fmt.Errorf("stack %q: %w", stack, err)
		}
		e.remember(venv["VAULT_SERVER_TOKEN"])
		maps.Copy(env, venv)
	}
	return []auto.LocalWorkspaceOption{
		auto.WorkDir(dir),
		auto.Pulumi(e.cmd),
		auto.PulumiHome(e.home),
		auto.Project(e.project()),
		auto.EnvVars(env),
		auto.SecretsProvider(sec.provider()),
	}, nil
}

func checkStackName(stack string) error {
	if !stackNameRE.MatchString(stack) {
		return fmt.Errorf("%q cannot name a stack: use letters, digits, '-', '_' and '.', starting with a letter or digit", stack)
	}
	return nil
}

// upsertStack selects the stack, creating it if needed, with program as
// its inline source.
func (e *Engine) upsertStack(ctx context.Context, stack string, program pulumi.RunFunc) (auto.Stack, error) {
	if err := checkStackName(stack); err != nil {
		return auto.Stack{}, err
	}
	opts, err := e.workspaceOptions(stack)
	if err != nil {
		return auto.Stack{}, err
	}
	var s auto.Stack
	if e.stackAbsent(ctx, stack) {
		// A new stack on the file backend: `stack init` alone, without
		// the failing `stack select` that Upsert tries first (≈0.2 s).
		s, err = auto.NewStackInlineSource(ctx, stack, ProjectName, program, opts...)
		if auto.IsCreateStack409Error(err) {
			s, err = auto.UpsertStackInlineSource(ctx, stack, ProjectName, program, opts...)
		}
	} else {
		s, err = auto.UpsertStackInlineSource(e.knownStack(ctx, stack), stack, ProjectName, program, opts...)
	}
	if err != nil {
		return auto.Stack{}, e.wrap("opening", stack, err, nil, "")
	}
	return s, nil
}

// ErrNoStack reports an operation on a stack that does not exist.
var ErrNoStack = errors.New("no such stack")

// selectStack selects an existing stack; ErrNoStack if there is none.
func (e *Engine) selectStack(ctx context.Context, stack string) (auto.Stack, error) {
	if err := checkStackName(stack); err != nil {
		return auto.Stack{}, err
	}
	opts, err := e.workspaceOptions(stack)
	if err != nil {
		return auto.Stack{}, err
	}
	s, err := auto.SelectStackInlineSource(e.knownStack(ctx, stack), stack, ProjectName, emptyProgram, opts...)
	if err != nil {
		if auto.IsSelectStack404Error(err) {
			return auto.Stack{}, fmt.Errorf("stack %q in %s: %w", stack, redactURL(e.cfg.Backend), ErrNoStack)
		}
		return auto.Stack{}, e.wrap("opening", stack, err, nil, "")
	}
	return s, nil
}

// stackAbsent reports whether the backend certainly has no such stack;
// false when unsure.
func (e *Engine) stackAbsent(ctx context.Context, stack string) bool {
	exists, sure := e.stackExists(ctx, stack)
	return sure && !exists
}

// stackExists looks for the stack's checkpoint without the Pulumi CLI:
// a file in a file backend, a row in a postgres backend's table. sure is
// false for other backends or when the lookup failed.
func (e *Engine) stackExists(ctx context.Context, stack string) (exists, sure bool) {
	switch {
	case e.backendDir != "":
		return !stackFileAbsent(e.backendDir, stack), true
	case isPostgres(e.cfg.Backend):
		ok, err := e.pgStackExists(ctx, stack)
		return ok, err == nil
	}
	return false, false
}

// StackAbsent reports, without the Pulumi CLI, whether the backend
// certainly has no such stack: backend is what Config.Backend would be
// ("" for the default file backend under stateDir). Only a file backend
// can tell; for any other it returns false. The CLI uses it to refuse an
// unknown cluster before it obtains the toolchain.
func StackAbsent(stateDir, backend, stack string) bool {
	if checkStackName(stack) != nil {
		return true // no stack can have this name
	}
	dir := defaultBackendDir(stateDir)
	if backend != "" {
		d, ok := fileBackendDir(backend)
		if !ok {
			return false
		}
		dir = d
	}
	return stackFileAbsent(dir, stack)
}

func defaultBackendDir(stateDir string) string { return filepath.Join(stateDir, "pulumi") }

// stackFile is the checkpoint of a stack in a file backend (".gz" added
// when the backend gzips).
func stackFile(backendDir, stack string) string {
	return filepath.Join(backendDir, ".pulumi", "stacks", ProjectName, stack+".json")
}

// pgStackKey is the same checkpoint's key in a postgres backend's table.
func pgStackKey(backend, stack string) string {
	return pgKeyPrefix(backend) + path.Join(".pulumi", "stacks", ProjectName, stack+".json")
}

func stackFileAbsent(backendDir, stack string) bool {
	base := stackFile(backendDir, stack)
	for _, p := range []string{base, base + ".gz"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// knownStack skips the engine's `stack select` (≈0.15 s) when the
// backend shows that the stack exists: selecting only checks existence,
// since every command names the stack explicitly.
func (e *Engine) knownStack(ctx context.Context, stack string) context.Context {
	if exists, sure := e.stackExists(ctx, stack); sure && exists {
		return withLocalAnswers(ctx, map[string]string{"stack select": ""})
	}
	return ctx
}

func emptyProgram(*pulumi.Context) error { return nil }

func fileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// fileBackendDir returns the directory of a file:// backend URL.
func fileBackendDir(backend string) (string, bool) {
	if !strings.HasPrefix(backend, "file://") {
		return "", false
	}
	u, err := url.Parse(backend)
	if err != nil {
		return "", false
	}
	p := u.Path
	if u.Host == "~" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", false
		}
		p = filepath.Join(home, p)
	} else if u.Host == "." {
		p = strings.TrimPrefix(p, "/")
	}
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return "", false
	}
	return abs, true
}

// redactURL hides credentials a backend URL may carry.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}

// backendSchemes are the backend URL schemes the pinned engine serves.
var backendSchemes = []string{"file", "s3", "gs", "azblob", "postgres", "postgresql", "https", "http"}

// CheckBackendURL refuses a backend URL the engine would misread: an
// unknown scheme (a typo like postgress://) would otherwise be taken for
// a Pulumi Cloud URL and fail asking for an access token.
func CheckBackendURL(backend string) error {
	if backend == "" {
		return nil
	}
	u, err := url.Parse(backend)
	if err != nil {
		return fmt.Errorf("state backend URL %s: %w", redactURL(backend), err)
	}
	if !slices.Contains(backendSchemes, strings.ToLower(u.Scheme)) {
		return fmt.Errorf("state backend URL %s: scheme %q is not a Pulumi backend: use file://DIR, s3://BUCKET, gs://BUCKET, azblob://CONTAINER, postgres://USER@HOST:PORT/DB or https:// (Pulumi Cloud)",
			redactURL(backend), u.Scheme)
	}
	if u.Scheme != "file" && u.Host == "" {
		return fmt.Errorf("state backend URL %s names no host or bucket", redactURL(backend))
	}
	return nil
}
