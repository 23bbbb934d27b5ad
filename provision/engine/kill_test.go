//go:build linux

package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// TestKilledUpConverges kills an `up` in the middle of a resource's Create
// and proves the job gets finished: once with the engine killed too (its
// lock is left: the next `up` reports it, Unlock clears it and the
// pending create, and `up` then redoes the create), once with only secprov
// killed (the engine must notice and stop by itself; if it left its lock,
// the same unlock applies).
func TestKilledUpConverges(t *testing.T) {
	root := enginetest.PulumiRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		killEngine bool
	}{
		{"secprov and engine killed", true},
		{"only secprov killed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := filepath.Join(t.TempDir(), "state")
			path := filepath.Join(t.TempDir(), "f.conf")
			marker := filepath.Join(t.TempDir(), "create-started")
			const stack = "killed"
			files := map[string]enginetest.FileInputs{"f": {Path: path, Content: "converged\n"}}
			cfg, _ := json.Marshal(childConfig{PulumiRoot: root, StateDir: stateDir, Stack: stack, Files: files})

			child := exec.Command(exe)
			child.Env = append(os.Environ(), envChildUp+"="+string(cfg), enginetest.EnvBlockCreate+"="+marker)
			var stderr bytes.Buffer
			child.Stderr = &stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the child's Create to start", 2*time.Minute, func() bool {
				_, err := os.Stat(marker)
				return err == nil
			})
			enginePid := lockPid(t, stateDir)
			if tc.killEngine {
				if err := syscall.Kill(enginePid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			waitFor(t, "the engine process to exit", time.Minute, func() bool {
				return syscall.Kill(enginePid, 0) != nil || isZombie(enginePid)
			})
			if tc.killEngine && lockFiles(t, stateDir) == 0 {
				t.Fatalf("the killed engine left no lock; the test no longer exercises stale-lock recovery")
			}
			if _, err := os.Stat(path); err == nil {
				t.Fatalf("the blocked Create wrote the file; the test no longer exercises an interrupted create")
			}

			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			e, err := engine.New(context.Background(), engine.Config{PulumiRoot: root, StateDir: stateDir, PluginExecutable: exe, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			// A lock is left whenever the engine died holding it (always
			// when killed; when it stops by itself it may not release it).
			if lockFiles(t, stateDir) > 0 {
				_, err := e.Up(context.Background(), stack, fileProgram(files), engine.Options{})
				var locked *engine.LockedError
				if !errors.As(err, &locked) || !strings.Contains(err.Error(), "no longer running") {
					t.Fatalf("up with the killed engine's lock left: %v, want a LockedError naming the dead holder", err)
				}
				rep, err := e.Unlock(context.Background(), stack, false)
				if err != nil || len(rep.Removed) != 1 {
					t.Fatalf("unlock: %+v, %v", rep, err)
				}
			}
			res, err := e.Up(context.Background(), stack, fileProgram(files), engine.Options{})
			if err != nil {
				t.Fatalf("up after the kill: %v\nchild stderr: %s", err, stderr.String())
			}
			if res.Counts[engine.OpCreate] != 1 {
				t.Errorf("counts = %v, want the interrupted create redone", res.Counts)
			}
			t.Logf("recovery log:\n%s", logs.String())
			if tc.killEngine {
				for _, want := range []string{"removed a stack lock", "operation=creating"} {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("recovery log lacks %q", want)
					}
				}
			}
			if b, _ := os.ReadFile(path); string(b) != "converged\n" {
				t.Errorf("file = %q after the rerun", b)
			}
			st, err := e.State(context.Background(), stack)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Pending) != 0 || len(st.Resources) != 1 {
				t.Errorf("state after rerun: %d pending ops, %d resources; want 0 and 1", len(st.Pending), len(st.Resources))
			}
			if lockFiles(t, stateDir) != 0 {
				t.Errorf("a lock is left after a clean up")
			}
			res, err = e.Up(context.Background(), stack, fileProgram(files), engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			onlySame(t, res.Counts)
		})
	}
}

func lockGlob(stateDir string) string {
	return filepath.Join(stateDir, "pulumi", ".pulumi", "locks", "*", engine.ProjectName, "*", "*.json")
}

func lockFiles(t *testing.T, stateDir string) int {
	m, err := filepath.Glob(lockGlob(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// lockPid reads the engine's pid from the stack lock it holds.
func lockPid(t *testing.T, stateDir string) int {
	t.Helper()
	var pid int
	waitFor(t, "the stack lock", 30*time.Second, func() bool {
		m, _ := filepath.Glob(lockGlob(stateDir))
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var l struct{ Pid int }
			if json.Unmarshal(b, &l) == nil && l.Pid > 0 {
				pid = l.Pid
				return true
			}
		}
		return false
	})
	return pid
}

// isZombie reports whether pid has exited but not been reaped (its parent
// was the killed child, so init reaps it eventually).
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

func itoa(i int) string { return strconv.Itoa(i) }
