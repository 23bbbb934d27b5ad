package toolchain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// tailLines is how much of a failed build's log an error quotes.
const tailLines = 20

// Builder runs one recipe in its wrapper module. Func steps receive it.
type Builder struct {
	Tool  Tool
	Dir   string    // the wrapper module
	Out   string    // the staging install root ("{out}" in Go steps)
	Log   io.Writer // the build log; commands' output goes here
	goCmd string
}

// Go runs one go command in the wrapper module, logging its command line
// and output, and returns its standard output.
func (b *Builder) Go(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.goCmd, args...)
	cmd.Dir = b.Dir
	cmd.Env = buildEnv(os.Environ(), env)
	var stdout bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, b.Log)
	cmd.Stderr = b.Log
	killGroupOnCancel(cmd)
	fmt.Fprintf(b.Log, "\n$ %s%s %s\n", envPrefix(env), b.goCmd, quoteArgs(args))
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		fmt.Fprintf(b.Log, "# failed after %s: %v\n", elapsed, err)
		if ctx.Err() != nil {
			return stdout.Bytes(), ctx.Err()
		}
		return stdout.Bytes(), fmt.Errorf("go %s: %w", args[0], err)
	}
	fmt.Fprintf(b.Log, "# ok after %s\n", elapsed)
	return stdout.Bytes(), nil
}

// buildEnv is the environment of recipe commands: the caller's, minus
// settings that would make a recipe depend on where it runs (a go.work
// above the cache, the user's GOFLAGS such as -mod=vendor), plus the
// recipe's own. GOFLAGS in extra is appended to -buildvcs=false, which keeps
// a cache inside a git checkout from stamping that checkout into binaries.
func buildEnv(base, extra []string) []string {
	flags := "-buildvcs=false"
	env := make([]string, 0, len(base)+len(extra)+2)
	for _, kv := range base {
		if strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOWORK=off")
	for _, kv := range extra {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			flags += " " + v
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOFLAGS="+flags)
}

func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return quoteArgs(env) + " "
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// BuildError says a recipe failed. It names the log and quotes its end, so
// the user sees the compiler's complaint without opening the file.
type BuildError struct {
	Tool, Version string
	Step          string
	Log           string
	Tail          []string
	Err           error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "building from the Go module proxy failed at step %q: %v\nfull log: %s", e.Step, e.Err, e.Log)
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines:\n  %s", len(e.Tail), strings.Join(e.Tail, "\n  "))
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// build runs t's recipe and commits the result. The caller holds the lock.
func (m *Manager) build(ctx context.Context, t Tool, tr *tracker) (*Installed, error) {
	goCmd, err := exec.LookPath(m.goCommand)
	if err != nil {
		return nil, fmt.Errorf("building from the Go module proxy needs the go command (Go 1.26 or newer): %w; install Go, or get the binaries another way (PATH, %s)", err, EnvMirror)
	}
	tr.phase(PhaseBuild)
	logPath := m.BuildLog(t)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating the build log: %w", err)
	}
	defer logf.Close()
	work, err := m.tempDir(t, "work")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	staging, err := m.tempDir(t, "tmp")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	if err := os.MkdirAll(filepath.Join(staging, t.BinDir), 0o755); err != nil {
		return nil, err
	}
	for name, content := range t.Recipe.Files {
		if err := writeRecipeFile(work, name, content); err != nil {
			return nil, fmt.Errorf("writing the wrapper module: %w", err)
		}
	}
	b := &Builder{Tool: t, Dir: work, Out: staging, Log: logf, goCmd: goCmd}
	goVersion := "unknown"
	if out, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(logf, "# secprov: building %s %s with %s (%s) in %s\n", t.Name, t.Version, goCmd, goVersion, work)

	fail := func(step string, err error) (*Installed, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if gomod, rerr := os.ReadFile(filepath.Join(work, "go.mod")); rerr == nil {
			fmt.Fprintf(logf, "\n# wrapper go.mod at the time of failure:\n%s", gomod)
		}
		_ = logf.Sync()
		// The go.mod dump is cut off the quoted tail, which should show the failure.
		return nil, &BuildError{Tool: t.Name, Version: t.Version, Step: step, Log: logPath, Tail: lastLines(logPath, tailLines, "# wrapper go.mod"), Err: err}
	}
	n := len(t.Recipe.Steps)
	for i, s := range t.Recipe.Steps {
		tr.step(PhaseBuild, fmt.Sprintf("%s [%d/%d]", s.Desc, i+1, n))
		m.log.Info("build step", "tool", t.Name, "step", s.Desc)
		var err error
		if s.Func != nil {
			fmt.Fprintf(logf, "\n# step: %s\n", s.Desc)
			err = s.Func(ctx, b)
		} else {
			args := make([]string, len(s.Go))
			for j, a := range s.Go {
				args[j] = strings.ReplaceAll(a, "{out}", staging)
			}
			_, err = b.Go(ctx, s.Env, args...)
		}
		if err != nil {
			return fail(s.Desc, err)
		}
	}
	if err := m.commit(ctx, t, staging, string(SourceBuild), []string{goVersion}, true); err != nil {
		return fail("check the result", err)
	}
	root := m.InstallRoot(t)
	return m.installed(t, SourceBuild, root, binPaths(t, root)), nil
}

func writeRecipeFile(dir, name, content string) error {
	clean := path.Clean(name)
	if clean != name || strings.HasPrefix(clean, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("recipe file name %q must be a clean relative path", name)
	}
	p := filepath.Join(dir, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// lastLines returns up to n last lines of the file before the first line
// starting with stop (if any), reading only its end.
func lastLines(file string, n int, stop string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(fi.Size()-window, io.SeekStart)
	}
	data, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	text := string(data)
	if stop != "" {
		if i := strings.LastIndex(text, "\n"+stop); i >= 0 {
			text = text[:i]
		}
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
