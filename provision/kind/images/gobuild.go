package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"secprov.dev/secprov/provision/toolchain"
)

// goRecipe builds binaries in a throw-away wrapper module, so the
// dependency graphs of Cilium or CoreDNS never meet secprov's. Like the
// toolchain's recipes, but with every command of one build in one `go
// build` so shared packages compile once.
type goRecipe struct {
	name  string
	files map[string]string // wrapper module files
	// steps are go commands run in the wrapper; "{out}" is the output dir.
	steps [][]string
	env   []string
	// bins are the binaries the build must leave in {out}.
	bins   []string
	inputs Inputs
}

// goOutput is a finished build: its binaries and their digests.
type goOutput struct {
	Dir    string            `json:"-"`
	SHA256 map[string]string `json:"sha256"`
	Go     string            `json:"go"`
}

func (o goOutput) bin(name string) string { return filepath.Join(o.Dir, name) }

// goEnv is the environment of wrapper builds: the user's, minus settings
// that would tie the result to where it runs.
func goEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "GOWORK=off", "GOFLAGS=-buildvcs=false"), extra...)
}

// ensureGo returns the cached output of r, building it when there is none.
func (b *builder) ensureGo(ctx context.Context, r goRecipe) (goOutput, bool, error) {
	r.inputs.Add("go.version", b.goVersion)
	r.inputs.Add("go.steps", fmt.Sprint(r.steps))
	r.inputs.Add("go.env", strings.Join(r.env, " "))
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.inputs.Add("file:"+n, bytesSHA256([]byte(r.files[n])))
	}
	digest := r.inputs.Digest()
	root := filepath.Join(b.dir, "go", r.name+"-"+digest[:shortDigestLen])
	stamp := filepath.Join(root, "build.json")
	out := goOutput{Dir: filepath.Join(root, "bin")}
	if raw, err := os.ReadFile(stamp); err == nil && json.Unmarshal(raw, &out) == nil && out.verify(r.bins) == nil {
		return out, true, nil
	}
	if err := os.RemoveAll(root); err != nil {
		return out, false, err
	}
	work := filepath.Join(root, "module")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return out, false, err
	}
	for _, n := range names {
		p := filepath.Join(work, filepath.FromSlash(path.Clean(n)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return out, false, err
		}
		if err := os.WriteFile(p, []byte(r.files[n]), 0o644); err != nil {
			return out, false, err
		}
	}
	tmpOut := filepath.Join(root, "bin.tmp")
	if err := os.MkdirAll(tmpOut, 0o755); err != nil {
		return out, false, err
	}
	logPath := filepath.Join(root, "build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return out, false, err
	}
	defer logf.Close()
	for _, s := range r.steps {
		args := make([]string, len(s))
		for i, a := range s {
			args[i] = strings.ReplaceAll(a, "{out}", tmpOut)
		}
		b.emit(Event{Kind: EventStep, Step: "go " + r.name, Detail: "go " + args[0]})
		if err := b.runGo(ctx, work, r.env, logf, args...); err != nil {
			return out, false, fmt.Errorf("building %s in its wrapper module: %w; full log: %s%s", r.name, err, logPath, logTail(logPath))
		}
	}
	if err := os.Rename(tmpOut, out.Dir); err != nil {
		return out, false, err
	}
	out.SHA256 = map[string]string{}
	out.Go = b.goVersion
	for _, bin := range r.bins {
		sum, err := toolchain.FileSHA256(out.bin(bin))
		if err != nil {
			return out, false, fmt.Errorf("%s: the build did not produce %s: %w", r.name, bin, err)
		}
		out.SHA256[bin] = sum
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return out, false, err
	}
	// The module is kept: its go.sum says exactly which dependency
	// versions went into the binaries.
	return out, false, os.WriteFile(stamp, raw, 0o644)
}

// verify checks that every binary is there with its recorded digest.
func (o goOutput) verify(bins []string) error {
	for _, bin := range bins {
		want := o.SHA256[bin]
		if want == "" {
			return fmt.Errorf("%s not recorded", bin)
		}
		got, err := toolchain.FileSHA256(o.bin(bin))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s changed since it was built", bin)
		}
	}
	return nil
}

func (b *builder) runGo(ctx context.Context, dir string, env []string, log io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, b.goCmd, args...)
	cmd.Dir = dir
	cmd.Env = goEnv(env)
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintf(log, "\n$ %s %s %s\n", strings.Join(env, " "), b.goCmd, strings.Join(args, " "))
	start := time.Now()
	err := cmd.Run()
	fmt.Fprintf(log, "# exit %v after %s\n", err, time.Since(start).Round(100*time.Millisecond))
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("go %s: %w", args[0], err)
	}
	return nil
}

// moduleDir downloads mod@version through the module proxy (or finds it
// in the module cache) and returns its directory and its go.sum hash.
func (b *builder) moduleDir(ctx context.Context, mod, version string) (dir, sum string, err error) {
	key := mod + "@" + version
	b.mu.Lock()
	if m, ok := b.modules[key]; ok {
		b.mu.Unlock()
		return m[0], m[1], nil
	}
	b.mu.Unlock()
	tmp, err := os.MkdirTemp("", "secprov-moddl-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, b.goCmd, "mod", "download", "-json", key)
	cmd.Dir = tmp
	cmd.Env = goEnv([]string{"GO111MODULE=on"})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Sum, Error string }
	if jerr := json.Unmarshal(stdout.Bytes(), &info); jerr != nil || info.Dir == "" {
		msg := info.Error
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		return "", "", fmt.Errorf("downloading the Go module %s: %v %s; check the Go module proxy (GOPROXY) is reachable", key, runErr, msg)
	}
	b.mu.Lock()
	b.modules[key] = [2]string{info.Dir, info.Sum}
	b.mu.Unlock()
	return info.Dir, info.Sum, nil
}

// logTail quotes the last lines of a build log for an error message.
func logTail(file string) string {
	raw, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\nlast lines:\n  " + strings.Join(lines, "\n  ")
}
