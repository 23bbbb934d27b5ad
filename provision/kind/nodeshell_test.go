package kind

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// localShell runs the node shell's loop on this machine: the protocol,
// quoting and error paths are the same as through docker exec.
func localShell() *nodeShell {
	return &nodeShell{node: "local", command: func() *exec.Cmd { return exec.Command("sh", "-c", shellLoop) }}
}

func TestNodeShell(t *testing.T) {
	dir := t.TempDir()
	weird := filepath.Join(dir, "it's a $(file) `x`\nname")
	content := []byte("binary\x00\xff\nlines\n")
	if err := os.WriteFile(weird, content, 0o640); err != nil {
		t.Fatal(err)
	}
	s := localShell()
	defer s.close()
	ctx := context.Background()

	out, err := s.run(ctx, "cat", "--", weird)
	if err != nil || !bytes.Equal(out, content) {
		t.Fatalf("cat: %q, %v; want %q", out, err, content)
	}
	out, err = s.run(ctx, "stat", "-L", "-c", "%a", "--", weird)
	if err != nil || strings.TrimSpace(string(out)) != "640" {
		t.Fatalf("stat: %q, %v", out, err)
	}
	_, err = s.run(ctx, "cat", "--", filepath.Join(dir, "missing"))
	var de *dockerError
	if !errors.As(err, &de) || !strings.Contains(de.stderr, "No such file") {
		t.Fatalf("missing file: %v, want a *dockerError saying No such file", err)
	}
	if fe := nodeFileError("missing", err); !errors.Is(fe, os.ErrNotExist) {
		t.Errorf("nodeFileError = %v, want fs.ErrNotExist", fe)
	}

	// Concurrent callers are served one at a time, each its own answer.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strings.Repeat("x", i)
			out, err := s.run(ctx, "printf", "%s", want)
			if err != nil || string(out) != want {
				t.Errorf("printf %d: %q, %v", i, out, err)
			}
		}()
	}
	wg.Wait()

	// A command that outlives its context ends the shell; the next call
	// starts a fresh one.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.run(short, "sleep", "5"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep: %v, want deadline exceeded", err)
	}
	if out, err := s.run(ctx, "echo", "again"); err != nil || string(out) != "again\n" {
		t.Fatalf("after a timeout: %q, %v", out, err)
	}
}
