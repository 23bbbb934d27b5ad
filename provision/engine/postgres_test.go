//go:build linux

package engine_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/internal/pgtest"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// pgEngine is an engine over its own state dir with state in backend.
func pgEngine(t *testing.T, root, backend, pass string) (*engine.Engine, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	e, err := engine.New(context.Background(), engine.Config{PulumiRoot: root, StateDir: stateDir, Backend: backend,
		Passphrase: engine.NewPassphrase(pass), PluginExecutable: exe})
	if err != nil {
		t.Fatal(err)
	}
	return e, stateDir
}

// TestPostgresBackend runs the engine against a real PostgreSQL through the
// pinned Pulumi engine's DIY postgres:// backend: a second state dir on
// the same backend sees the stack and its secrets, and no secret byte
// reaches the database or any state file in clear.
func TestPostgresBackend(t *testing.T) {
	root := enginetest.PulumiRoot(t)
	pg := pgtest.Start(t)
	ctx := context.Background()
	const pass = "correct horse battery staple 42"
	const canary = "CANARY-6b1f0e4c9a-secret-value"
	a, dirA := pgEngine(t, root, pg.URL, pass)
	b, dirB := pgEngine(t, root, pg.URL, pass)

	path := filepath.Join(t.TempDir(), "f.conf")
	files := map[string]enginetest.FileInputs{"f": {Path: path, Content: "hello\n"}}
	program := func(ctx *pulumi.Context) error {
		if err := fileProgram(files)(ctx); err != nil {
			return err
		}
		ctx.Export("token", pulumi.ToSecret(pulumi.String(canary)))
		return nil
	}
	if _, err := a.Preview(ctx, "prod", program, engine.Options{}); err != nil {
		t.Fatalf("preview: %v", err)
	}
	res, err := a.Up(ctx, "prod", program, engine.Options{})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if res.Counts[engine.OpCreate] != 1 {
		t.Errorf("counts = %v", res.Counts)
	}

	stacks, err := b.ListStacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stacks) != 1 || stacks[0].Name != "prod" {
		t.Fatalf("second state dir lists %+v, want prod", stacks)
	}
	outs, err := b.Outputs(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if o := outs["token"]; o.Value != canary || !o.Secret {
		t.Errorf("token output from the second state dir = %+v", o)
	}
	st, err := b.State(ctx, "prod")
	if err != nil || len(st.Resources) != 1 {
		t.Fatalf("state from the second state dir: %v, %+v", err, st)
	}
	res, err = b.Up(ctx, "prod", program, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	onlySame(t, res.Counts)

	// No canary and no passphrase in the database: every row, with the
	// DIY backend's base64 blobs decoded (and gunzipped).
	dump := pg.Dump(t)
	rows := strings.Split(strings.TrimSpace(pg.Psql(t, "secprov", "SELECT key || ' ' || (data->>'data') FROM pulumi_state")), "\n")
	if len(rows) < 3 {
		t.Fatalf("the state table has %d rows; the test no longer sees the state", len(rows))
	}
	var decoded bytes.Buffer
	sawState := false
	for _, row := range rows {
		key, b64, _ := strings.Cut(row, " ")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("row %s: %v", key, err)
		}
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(key, "/stacks/") && bytes.Contains(raw, []byte(`"ciphertext"`)) {
			sawState = true
		}
		decoded.Write(raw)
	}
	if !sawState {
		t.Fatalf("no stack checkpoint with an encrypted secret among the rows; the canary check proves nothing")
	}
	for what, text := range map[string]string{"pg_dump": dump, "decoded rows": decoded.String()} {
		for _, secret := range []string{canary, pass, base64.StdEncoding.EncodeToString([]byte(canary))} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret in clear (%.12s…)", what, secret)
			}
		}
	}
	for _, dir := range []string{dirA, dirB} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(canary)) {
				t.Errorf("%s holds the canary in clear", p)
			}
			return nil
		})
	}

	if _, err := b.Destroy(ctx, "prod", engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveStack(ctx, "prod", false); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresLockMatrix proves the lock behaviour with real processes on
// a PostgreSQL backend: of two concurrent ups on one stack exactly one
// proceeds and the other names the holder; unlock refuses while the holder
// runs; a SIGKILLed holder's lock is reported and unlock clears it; ups of
// different stacks proceed together.
func TestPostgresLockMatrix(t *testing.T) {
	root := enginetest.PulumiRoot(t)
	pg := pgtest.Start(t)
	ctx := context.Background()
	const pass = "lock matrix passphrase"
	e, _ := pgEngine(t, root, pg.URL, pass)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type child struct {
		cmd    *exec.Cmd
		stderr *bytes.Buffer
		done   chan error
	}
	start := func(stack, marker string) *child {
		files := map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f"), Content: "x\n"}}
		cfg, _ := json.Marshal(childConfig{PulumiRoot: root, StateDir: filepath.Join(t.TempDir(), "state"), Stack: stack,
			Files: files, Backend: pg.URL, Passphrase: pass})
		c := &child{cmd: exec.Command(exe), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
		c.cmd.Env = append(os.Environ(), envChildUp+"="+string(cfg))
		if marker != "" {
			c.cmd.Env = append(c.cmd.Env, enginetest.EnvBlockCreate+"="+marker)
		}
		c.cmd.Stderr = c.stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { c.done <- c.cmd.Wait() }()
		return c
	}

	// Both stacks exist first, so the racing ups below contend on the
	// lock rather than on creating the stack.
	for _, s := range []string{"alpha", "beta"} {
		if _, err := e.Up(ctx, s, emptyRun, engine.Options{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("concurrent ups on one stack", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "create-started")
		c1, c2 := start("alpha", marker), start("alpha", marker)
		var loser *child
		var holder *child
		select {
		case err := <-c1.done:
			loser, holder = c1, c2
			c1.done <- err
		case err := <-c2.done:
			loser, holder = c2, c1
			c2.done <- err
		case <-time.After(2 * time.Minute):
			t.Fatal("neither up finished or failed")
		}
		if err := <-loser.done; err == nil {
			t.Fatalf("both ups proceeded")
		}
		msg := loser.stderr.String()
		t.Logf("the second up failed with:\n%s", msg)
		host, _ := os.Hostname()
		for _, want := range []string{"is locked by another run", "@" + host, "pid ", "since ", "secprov state unlock --cluster alpha"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the lock error lacks %q", want)
			}
		}
		waitFor(t, "the holder's Create to start", time.Minute, func() bool {
			_, err := os.Stat(marker)
			return err == nil
		})

		// Unlock refused while the holder runs on this host.
		rep, err := e.Unlock(ctx, "alpha", true)
		if err == nil || len(rep.Removed) != 0 || !strings.Contains(err.Error(), "still running on this host") {
			t.Fatalf("unlock while the holder runs: removed %v, err %v", rep.Removed, err)
		}
		t.Logf("unlock while the holder runs: %v", err)

		// Kill the holder and its engine as a crash would.
		locks, err := e.Locks(ctx, "alpha")
		if err != nil || len(locks) != 1 {
			t.Fatalf("locks = %v, %v", locks, err)
		}
		_ = syscall.Kill(locks[0].Pid, syscall.SIGKILL)
		_ = holder.cmd.Process.Kill()
		<-holder.done
		waitFor(t, "the engine to exit", time.Minute, func() bool {
			return syscall.Kill(locks[0].Pid, 0) != nil || isZombie(locks[0].Pid)
		})
		locks, err = e.Locks(ctx, "alpha")
		if err != nil || len(locks) != 1 || locks[0].Alive() {
			t.Fatalf("after SIGKILL: locks %v, %v; want one dead holder", locks, err)
		}
		t.Logf("the killed holder's lock: %s", locks[0])

		// The next up (another state directory, as a teammate's) reports
		// the dead holder and how to clear it, and changes nothing.
		files := map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f"), Content: "x\n"}}
		_, err = e.Up(ctx, "alpha", fileProgram(files), engine.Options{})
		var locked *engine.LockedError
		if !errors.As(err, &locked) {
			t.Fatalf("up after the holder was killed: %v, want a LockedError", err)
		}
		for _, want := range []string{"no longer running", "was interrupted", "secprov state unlock --cluster alpha"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the dead holder's lock error lacks %q:\n%v", want, err)
			}
		}
		t.Logf("the next up: %v", err)
		if locks, _ = e.Locks(ctx, "alpha"); len(locks) != 1 {
			t.Fatalf("the next up changed the lock records: %v", locks)
		}

		rep, err = e.Unlock(ctx, "alpha", false)
		if err != nil || len(rep.Removed) != 1 {
			t.Fatalf("unlock of the dead holder: removed %v, err %v", rep.Removed, err)
		}
		if len(rep.Pending) != 1 || rep.Pending[0].Type != "creating" {
			t.Errorf("unlock cleared pending %v, want the killed run's create", rep.Pending)
		}
		if locks, _ = e.Locks(ctx, "alpha"); len(locks) != 0 {
			t.Fatalf("locks left after unlock: %v", locks)
		}
		res, err := e.Up(ctx, "alpha", fileProgram(files), engine.Options{})
		if err != nil {
			t.Fatalf("up after unlock: %v", err)
		}
		if res.Counts[engine.OpCreate] != 1 {
			t.Errorf("up after unlock: counts %v, want the interrupted create redone", res.Counts)
		}
	})

	t.Run("ups on different stacks proceed together", func(t *testing.T) {
		c1, c2 := start("alpha", ""), start("beta", "")
		for _, c := range []*child{c1, c2} {
			select {
			case err := <-c.done:
				if err != nil {
					t.Errorf("up failed: %v\n%s", err, c.stderr)
				}
			case <-time.After(3 * time.Minute):
				t.Fatal("up did not finish")
			}
		}
	})
}

func emptyRun(*pulumi.Context) error { return nil }

// TestPostgresBackendFaults: a wrong password, a port nobody listens on
// and a misspelt scheme each stop the engine with an error that names the
// backend (its password redacted) and what to do, and create nothing.
func TestPostgresBackendFaults(t *testing.T) {
	root := enginetest.PulumiRoot(t)
	pg := pgtest.Start(t)
	ctx := context.Background()
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-the-password-"+pw[:4])
	closed := *u
	closed.Host = "127.0.0.1:1"
	for _, tc := range []struct {
		name, backend string
		want          []string
	}{
		{"wrong password", wrong.String(), []string{"refused the credentials", "REDACTED@127.0.0.1"}},
		{"nothing listening", closed.String(), []string{"cannot be reached", "127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := pgEngine(t, root, tc.backend, "faults passphrase")
			_, err := e.ListStacks(ctx)
			if err == nil {
				t.Fatal("listing stacks succeeded")
			}
			_, uerr := e.Up(ctx, "prod", emptyRun, engine.Options{})
			for _, err := range []error{err, uerr} {
				if err == nil {
					t.Fatal("up succeeded")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "not-the-password") {
					t.Errorf("error shows a password:\n%v", err)
				}
			}
			t.Logf("%s: %v", tc.name, uerr)
		})
	}
	if rows := pg.Psql(t, "secprov", "select count(*) from pg_tables where tablename = 'pulumi_state'"); strings.TrimSpace(rows) != "0" {
		t.Errorf("a failed run created the state table")
	}
	exe, _ := os.Executable()
	_, err = engine.New(ctx, engine.Config{PulumiRoot: root, StateDir: t.TempDir(), PluginExecutable: exe,
		Backend: strings.Replace(pg.URL, "postgres://", "postgress://", 1), Passphrase: engine.NewPassphrase("x")})
	if err == nil || !strings.Contains(err.Error(), `scheme "postgress" is not a Pulumi backend`) || strings.Contains(err.Error(), pw) {
		t.Errorf("a misspelt scheme: %v", err)
	}
}
