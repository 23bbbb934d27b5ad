package kind

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// nodeShell is one long-lived shell in a node container (docker exec -i)
// that runs commands one at a time. verify reads dozens of node files and
// stats; a docker exec each costs a container exec round trip and, with
// two clusters coming up on two cores, seconds. Through one shell each
// read is a fork in the node.
//
// Protocol: secprov writes one line, the quoted command in base64 (so a
// path with a newline stays one line); the shell answers with three
// lines: its standard output and standard error, each base64, and its
// exit status.
type nodeShell struct {
	node string
	// command starts the shell; nil: docker exec -i into node.
	command func() *exec.Cmd

	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	dead error // set when the shell died; the next call starts another
}

// shellLoop reads commands and answers as the protocol says. The outputs
// go through files, so a command's binary output and exit status survive.
const shellLoop = `o=$(mktemp) e=$(mktemp) || exit 1
trap 'rm -f "$o" "$e"' EXIT
while IFS= read -r line; do
  cmd=$(printf '%s' "$line" | base64 -d) && eval "$cmd" >"$o" 2>"$e" </dev/null; rc=$?
  base64 -w0 <"$o"; echo; base64 -w0 <"$e"; echo; echo "$rc"
done`

func (s *nodeShell) start() error {
	cmd := exec.Command(dockerCommand, "exec", "-i", s.node, "sh", "-c", shellLoop)
	if s.command != nil {
		cmd = s.command()
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("docker exec %s: %w", s.node, err)
	}
	s.cmd, s.in, s.out, s.dead = cmd, in, bufio.NewReaderSize(out, 1<<20), nil
	return nil
}

func (s *nodeShell) stop(why error) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.in.Close()
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	s.cmd, s.dead = nil, why
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// run runs argv (quoted) in the node and returns its standard output; a
// non-zero exit is a *dockerError carrying its standard error, as
// nodeExec's are.
func (s *nodeShell) run(ctx context.Context, argv ...string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	line := strings.Join(q, " ")
	type answer struct {
		stdout, stderr []byte
		rc             int
		err            error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		if _, err := io.WriteString(s.in, base64.StdEncoding.EncodeToString([]byte(line))+"\n"); err != nil {
			a.err = err
			done <- a
			return
		}
		var lines [3]string
		for i := range lines {
			l, err := s.out.ReadString('\n')
			if err != nil {
				a.err = fmt.Errorf("the shell in node %s ended: %w", s.node, err)
				done <- a
				return
			}
			lines[i] = strings.TrimSuffix(l, "\n")
		}
		var e1, e2, e3 error
		a.stdout, e1 = base64.StdEncoding.DecodeString(lines[0])
		a.stderr, e2 = base64.StdEncoding.DecodeString(lines[1])
		a.rc, e3 = strconv.Atoi(lines[2])
		a.err = errors.Join(e1, e2, e3)
		done <- a
	}()
	select {
	case <-ctx.Done():
		// The answer may still come: the shell is out of step now.
		s.stop(ctx.Err())
		<-done
		return nil, fmt.Errorf("%s in node %s: %w", line, s.node, ctx.Err())
	case a := <-done:
		if a.err != nil {
			s.stop(a.err)
			return nil, a.err
		}
		if a.rc != 0 {
			return a.stdout, &dockerError{args: append([]string{"exec", s.node}, argv...), stderr: string(a.stderr), err: fmt.Errorf("exit status %d", a.rc)}
		}
		return a.stdout, nil
	}
}

// close ends the shell.
func (s *nodeShell) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop(errors.New("closed"))
}

// shells are a target's node shells, by node.
type shells struct {
	mu sync.Mutex
	m  map[string]*nodeShell
}

func (sh *shells) get(node string) *nodeShell {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = map[string]*nodeShell{}
	}
	s, ok := sh.m[node]
	if !ok {
		s = &nodeShell{node: node}
		sh.m[node] = s
	}
	return s
}

func (sh *shells) closeAll() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, s := range sh.m {
		s.close()
	}
	sh.m = nil
}
