package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

func TestMain(m *testing.M) {
	// The engine starts this test binary as pulumi-resource-secprov.
	enginetest.ServeIfPlugin(enginetest.Registry())
	// TestKilledUpConverges runs an `up` in a child copy of this binary.
	if os.Getenv(envChildUp) != "" {
		os.Exit(childUp())
	}
	os.Exit(m.Run())
}

// fileProgram declares one secprov:test:File per entry of files (name ->
// inputs).
func fileProgram(files map[string]enginetest.FileInputs) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			r, err := engine.Resource(ctx, enginetest.FileToken, n, files[n])
			if err != nil {
				return err
			}
			ctx.Export(n+"-sha256", r.String("sha256"))
		}
		return nil
	}
}

// recorder keeps progress events for assertions.
type recorder struct {
	mu     sync.Mutex
	events []engine.Event
}

func (r *recorder) on(e engine.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds(name string) []engine.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.EventKind
	for _, e := range r.events {
		if e.Name == name && e.Kind != engine.Diagnostic {
			out = append(out, e.Kind)
		}
	}
	return out
}

func (r *recorder) has(kind engine.EventKind, name, msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Kind == kind && e.Name == name && strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

func onlySame(t *testing.T, counts map[engine.Op]int) {
	t.Helper()
	for op, n := range counts {
		if op != engine.OpSame && n != 0 {
			t.Errorf("counts = %v, want only %q", counts, engine.OpSame)
		}
	}
}

func TestLifecycle(t *testing.T) {
	e, stateDir := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.conf")
	const stack = "lifecycle"
	inputs := enginetest.FileInputs{Path: a, Content: "one\n", Mode: 0o640}
	prog := func() pulumi.RunFunc { return fileProgram(map[string]enginetest.FileInputs{"a": inputs}) }

	t.Run("preview of a new stack plans one create", func(t *testing.T) {
		plan, err := e.Preview(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Resources) != 1 || plan.Resources[0].Op != engine.OpCreate || plan.Resources[0].Type != enginetest.FileToken {
			t.Fatalf("plan = %+v, want one create of %s", plan.Resources, enginetest.FileToken)
		}
		if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("preview touched the file: %v", err)
		}
	})

	t.Run("up creates", func(t *testing.T) {
		rec := &recorder{}
		res, err := e.Up(ctx, stack, prog(), engine.Options{OnEvent: rec.on})
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts[engine.OpCreate] != 1 {
			t.Errorf("counts = %v, want 1 create", res.Counts)
		}
		b, err := os.ReadFile(a)
		if err != nil || string(b) != "one\n" {
			t.Fatalf("file = %q, %v; want %q", b, err, "one\n")
		}
		if fi, _ := os.Stat(a); fi.Mode().Perm() != 0o640 {
			t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
		}
		if got := rec.kinds("a"); !slices.Equal(got, []engine.EventKind{engine.StepStarted, engine.StepDone}) {
			t.Errorf("progress events for a = %v, want started, done", got)
		}
		if !rec.has(engine.Diagnostic, "a", "wrote file path="+a) {
			t.Errorf("the kind's log line did not reach the event stream: %+v", rec.events)
		}
		if out := res.Outputs["a-sha256"]; out.Value == "" || out.Value == nil {
			t.Errorf("stack output a-sha256 = %+v, want the file's digest", out)
		}
		outs, err := e.Outputs(ctx, stack)
		if err != nil {
			t.Fatal(err)
		}
		if outs["a-sha256"] != res.Outputs["a-sha256"] {
			t.Errorf("Outputs = %+v, Up reported %+v", outs, res.Outputs)
		}
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		before, _ := os.Stat(a)
		res, err := e.Up(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		onlySame(t, res.Counts)
		if res.Counts[engine.OpSame] != 1 {
			t.Errorf("counts = %v, want 1 same", res.Counts)
		}
		after, _ := os.Stat(a)
		if !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("a no-op up rewrote the file")
		}
		plan, err := e.Preview(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if plan.HasChanges() {
			t.Errorf("preview after up has changes: %+v", plan.Resources)
		}
	})

	t.Run("content change is one in-place update", func(t *testing.T) {
		inputs.Content = "two\n"
		plan, err := e.Preview(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := []engine.PropertyChange{{Path: "content", Kind: engine.ChangeUpdate}}
		if len(plan.Resources) != 1 || plan.Resources[0].Op != engine.OpUpdate || !slices.Equal(plan.Resources[0].Changes, want) {
			t.Fatalf("plan = %+v, want one update of content", plan.Resources)
		}
		if _, err := e.Up(ctx, stack, prog(), engine.Options{}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(a); string(b) != "two\n" {
			t.Errorf("file = %q after update", b)
		}
	})

	b := filepath.Join(dir, "b.conf")
	t.Run("path change replaces and deletes the old file", func(t *testing.T) {
		inputs.Path = b
		plan, err := e.Preview(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := []engine.PropertyChange{{Path: "path", Kind: engine.ChangeUpdate, Replace: true}}
		if len(plan.Resources) != 1 || plan.Resources[0].Op != engine.OpReplace || !slices.Equal(plan.Resources[0].Changes, want) {
			t.Fatalf("plan = %+v, want one replace because of path", plan.Resources)
		}
		res, err := e.Up(ctx, stack, prog(), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts[engine.OpReplace] != 1 {
			t.Errorf("counts = %v, want 1 replace", res.Counts)
		}
		if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("old file still there after replace: %v", err)
		}
		if got, _ := os.ReadFile(b); string(got) != "two\n" {
			t.Errorf("new file = %q", got)
		}
	})

	t.Run("check failure names the property", func(t *testing.T) {
		bad := map[string]enginetest.FileInputs{"a": {Path: "relative/x", Content: "x"}}
		_, err := e.Preview(ctx, stack, fileProgram(bad), engine.Options{})
		var ee *engine.Error
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v, want *engine.Error", err)
		}
		msg := err.Error()
		t.Logf("the user sees:\n%s", msg)
		for _, want := range []string{"path", "must be an absolute path", enginetest.FileToken, "Nothing was changed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not mention %q:\n%s", want, msg)
			}
		}
		if strings.Contains(msg, "stdout:") || len(msg) > 1500 {
			t.Errorf("error carries the engine's output dump:\n%s", msg)
		}
	})

	t.Run("state lists the resource", func(t *testing.T) {
		st, err := e.State(ctx, stack)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Resources) != 1 || st.Resources[0].ID != b {
			t.Errorf("state resources = %+v, want the one file with id %s", st.Resources, b)
		}
	})

	t.Run("destroy deletes and empties the state", func(t *testing.T) {
		res, err := e.Destroy(ctx, stack, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts[engine.OpDelete] != 1 {
			t.Errorf("counts = %v, want 1 delete", res.Counts)
		}
		if _, err := os.Stat(b); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("file still there after destroy: %v", err)
		}
		st, err := e.State(ctx, stack)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Resources) != 0 {
			t.Errorf("state still has resources: %+v", st.Resources)
		}
	})

	t.Run("state files are private", func(t *testing.T) {
		assertPrivate(t, stateDir)
	})

	t.Run("stacks are listed and removed", func(t *testing.T) {
		stacks, err := e.ListStacks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stacks) != 1 || stacks[0].Name != stack {
			t.Fatalf("stacks = %+v, want [%s]", stacks, stack)
		}
		if err := e.RemoveStack(ctx, stack, false); err != nil {
			t.Fatal(err)
		}
		if stacks, _ := e.ListStacks(ctx); len(stacks) != 0 {
			t.Errorf("stacks after remove = %+v", stacks)
		}
		if _, err := e.Destroy(ctx, stack, engine.Options{}); err != nil {
			t.Errorf("destroying a removed stack: %v, want no-op", err)
		}
	})
}

// assertPrivate fails for anything under dir that group or others can
// read, write or enter.
func assertPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		n++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group/other access", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d entries under %s: did the engine write its state elsewhere?", n, dir)
	}
}

func TestSecretInputsAreEncryptedInState(t *testing.T) {
	e, stateDir := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "token")
	const secret = "s3cr3t-token-value"
	prog := func(ctx *pulumi.Context) error {
		_, err := engine.Resource(ctx, enginetest.FileToken, "token", map[string]any{
			"path":    path,
			"content": pulumi.ToSecret(pulumi.String(secret)),
		})
		return err
	}
	if _, err := e.Up(ctx, "secrets", prog, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != secret {
		t.Fatalf("the provider got %q, want the decrypted secret", b)
	}
	err := filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret in clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.State(ctx, "secrets")
	if err != nil {
		t.Fatal(err)
	}
	if leaked := st.Resources[0].Outputs["secretsInEnv"]; leaked != nil {
		t.Errorf("the provider process could read %v from its environment", leaked)
	}
	// The passphrase never shows in what the engine reports either.
	pass, err := os.ReadFile(filepath.Join(stateDir, engine.PassphraseFile))
	if err != nil {
		t.Fatal(err)
	}
	_, perr := e.Preview(ctx, "secrets", func(ctx *pulumi.Context) error {
		_, err := engine.Resource(ctx, enginetest.FileToken, "bad", map[string]any{"path": "rel"})
		return err
	}, engine.Options{})
	if perr == nil || strings.Contains(perr.Error(), strings.TrimSpace(string(pass))) {
		t.Errorf("preview error = %v; want an error without the passphrase", perr)
	}
}

// childUp runs one `up` from the configuration in envChildUp; the parent
// test kills it midway.
func childUp() int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(envChildUp)), &cfg); err != nil {
		return 3
	}
	exe, _ := os.Executable()
	e, err := engine.New(context.Background(), engine.Config{PulumiRoot: cfg.PulumiRoot, StateDir: cfg.StateDir, PluginExecutable: exe,
		Backend: cfg.Backend, Passphrase: engine.NewPassphrase(cfg.Passphrase)})
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 4
	}
	_, err = e.Up(context.Background(), cfg.Stack, fileProgram(cfg.Files), engine.Options{})
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	return 0
}

const envChildUp = "SECPROV_TEST_CHILD_UP"

type childConfig struct {
	PulumiRoot string
	StateDir   string
	Stack      string
	Files      map[string]enginetest.FileInputs
	// Backend and Passphrase are optional (default: the state dir's).
	Backend, Passphrase string
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
