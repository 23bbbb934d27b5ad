package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// TestPartialCreateFailureIsRecordedAndFinished: Create wrote the file,
// then failed. The resource must be in the state (not orphaned), the next
// up must finish it in place, and destroy must delete it.
func TestPartialCreateFailureIsRecordedAndFinished(t *testing.T) {
	e, _ := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f")
	in := enginetest.FileInputs{Path: path, Content: "x", FailCreate: true}
	prog := func() pulumi.RunFunc { return fileProgram(map[string]enginetest.FileInputs{"f": in}) }

	_, err := e.Up(ctx, "partial", prog(), engine.Options{})
	if err == nil || !strings.Contains(err.Error(), "failCreate is set") {
		t.Fatalf("up = %v, want the kind's failure", err)
	}
	st, err := e.State(ctx, "partial")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Resources) != 1 || st.Resources[0].ID != path || len(st.Resources[0].InitErrors) == 0 {
		t.Fatalf("state = %+v, want the half-made file recorded with its init error", st.Resources)
	}

	in.FailCreate = false
	res, err := e.Up(ctx, "partial", prog(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[engine.OpUpdate] != 1 {
		t.Errorf("counts = %v, want the recorded resource finished by an update", res.Counts)
	}
	if st, _ := e.State(ctx, "partial"); len(st.Resources) != 1 || len(st.Resources[0].InitErrors) != 0 {
		t.Errorf("state after the fix = %+v, want one healthy resource", st.Resources)
	}
	if _, err := e.Destroy(ctx, "partial", engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left after destroy: %v", err)
	}
}

// TestCancelStopsABlockedCreate: cancelling the context of an up whose
// Create blocks must end the up promptly, and the next up converges.
func TestCancelStopsABlockedCreate(t *testing.T) {
	e, _ := enginetest.NewEngine(t, nil)
	marker := filepath.Join(t.TempDir(), "started")
	t.Setenv(enginetest.EnvBlockCreate, marker) // read by the provider the engine starts
	path := filepath.Join(t.TempDir(), "f")
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: path, Content: "x"}})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.Up(ctx, "cancel", prog, engine.Options{})
		errc <- err
	}()
	waitFor(t, "Create to start", time.Minute, func() bool { _, err := os.Stat(marker); return err == nil })
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a cancelled up reported success")
		}
		t.Logf("cancelled up returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(45 * time.Second):
		t.Fatal("up still running 45s after cancel")
	}

	os.Unsetenv(enginetest.EnvBlockCreate)
	res, err := e.Up(context.Background(), "cancel", prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[engine.OpCreate] != 1 {
		t.Errorf("counts = %v, want the cancelled create redone", res.Counts)
	}
}

// TestRefreshRepairsDrift: a file deleted or edited behind secprov's back
// is recreated or rewritten by `up` with Refresh; without Refresh the
// state is trusted.
func TestRefreshRepairsDrift(t *testing.T) {
	e, _ := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f")
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: path, Content: "wanted"}})
	if _, err := e.Up(ctx, "drift", prog, engine.Options{}); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := e.Up(ctx, "drift", prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	onlySame(t, res.Counts)
	plan, err := e.Preview(ctx, "drift", prog, engine.Options{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Resources) != 1 || plan.Resources[0].Op != engine.OpUpdate ||
		!slices.Equal(plan.Resources[0].Changes, []engine.PropertyChange{{Path: "content", Kind: engine.ChangeUpdate}}) {
		t.Errorf("refreshing preview = %+v, want an update of content", plan.Resources)
	}
	if _, err := e.Up(ctx, "drift", prog, engine.Options{Refresh: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "wanted" {
		t.Errorf("content after refresh+up = %q, want it repaired", b)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res, err = e.Up(ctx, "drift", prog, engine.Options{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[engine.OpCreate] != 1 {
		t.Errorf("counts = %v, want the deleted file recreated", res.Counts)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file not recreated: %v", err)
	}
}

// TestDependentInputsAreUnknownInPreview: b's content is a's digest. On a
// new stack the preview can't know it (Check must not fail on it); up
// fills it in, in order.
func TestDependentInputsAreUnknownInPreview(t *testing.T) {
	e, _ := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	prog := func(ctx *pulumi.Context) error {
		a, err := engine.Resource(ctx, enginetest.FileToken, "a", enginetest.FileInputs{Path: filepath.Join(dir, "a"), Content: "hello"})
		if err != nil {
			return err
		}
		_, err = engine.Resource(ctx, enginetest.FileToken, "b", map[string]any{
			"path":    filepath.Join(dir, "b"),
			"content": a.String("sha256"),
		})
		return err
	}
	plan, err := e.Preview(ctx, "deps", prog, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Counts[engine.OpCreate] != 2 {
		t.Fatalf("plan = %+v, want two creates", plan.Resources)
	}
	if _, err := e.Up(ctx, "deps", prog, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "b"))
	if len(b) != 64 {
		t.Errorf("b = %q, want a's sha256", b)
	}
}

// TestWrongPassphraseSaysWhatToDo: a state encrypted with one passphrase,
// opened with another, fails fast with a hint and without either
// passphrase in the message.
func TestWrongPassphraseSaysWhatToDo(t *testing.T) {
	e, stateDir := enginetest.NewEngine(t, nil)
	ctx := context.Background()
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f"), Content: "x"}})
	if _, err := e.Up(ctx, "pass", prog, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	const wrong = "not-the-passphrase-0123456789"
	other, err := engine.New(ctx, engine.Config{PulumiRoot: enginetest.PulumiRoot(t), StateDir: stateDir,
		PluginExecutable: exe, Passphrase: engine.NewPassphrase(wrong)})
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for name, op := range map[string]func() error{
		"preview": func() error { _, err := other.Preview(tctx, "pass", prog, engine.Options{}); return err },
		"up":      func() error { _, err := other.Up(tctx, "pass", prog, engine.Options{}); return err },
	} {
		err := op()
		if err == nil {
			t.Fatalf("%s with the wrong passphrase succeeded", name)
		}
		msg := err.Error()
		t.Logf("%s: %s", name, msg)
		if !strings.Contains(msg, engine.EnvPassphrase) {
			t.Errorf("%s error does not tell the user to set %s:\n%s", name, engine.EnvPassphrase, msg)
		}
		stored, _ := os.ReadFile(filepath.Join(stateDir, engine.PassphraseFile))
		if strings.Contains(msg, wrong) || strings.Contains(msg, strings.TrimSpace(string(stored))) {
			t.Errorf("%s error shows a passphrase:\n%s", name, msg)
		}
	}
}
