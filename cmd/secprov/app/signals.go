package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Exit codes of a process stopped by a signal: 128 + the signal's number,
// as shells report a process the signal killed.
const (
	ExitInterrupted = 130 // SIGINT
	ExitTerminated  = 143 // SIGTERM
)

// SignalGrace is how long a command has after SIGINT or SIGTERM to stop
// on its own (cancelling what it started, removing what it made) before
// the process exits regardless. A second signal does not wait.
const SignalGrace = 1500 * time.Millisecond

// Exec runs secprov as a process and returns its exit code: what main
// does, here so that tests run exactly the same thing.
//
// SIGINT and SIGTERM cancel the command's context. A command that then
// returns keeps exit code 0 if it succeeded (for kms-plugin a signal is
// the normal way to stop); any other outcome exits with the signal's code
// (ExitInterrupted, ExitTerminated). A command still running SignalGrace
// after the signal — blocked in a system call that ignores its context,
// such as opening a FIFO — does not hold the process: it exits with the
// signal's code and a line on stderr. A second signal exits at once.
func Exec(args []string, in io.Reader, out, errOut io.Writer, opts ...Option) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	g := &signalGuard{grace: SignalGrace, exit: os.Exit, errOut: errOut}
	return g.run(sigs, func(ctx context.Context) error {
		return Main(ctx, args, in, out, errOut, opts...)
	})
}

// signalGuard delivers Exec's signal rules; exit is os.Exit except in
// tests.
type signalGuard struct {
	grace  time.Duration
	exit   func(code int)
	errOut io.Writer

	mu       sync.Mutex
	finished bool      // the command returned: the guard no longer exits
	exited   bool      // the guard called exit (which returns only in tests)
	got      os.Signal // the first signal, nil if none
}

func (g *signalGuard) run(sigs <-chan os.Signal, command func(context.Context) error) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go g.watch(sigs, cancel, done)

	err := command(ctx)

	g.mu.Lock()
	g.finished = true
	got, exited := g.got, g.exited
	g.mu.Unlock()
	close(done)
	if exited {
		return signalExitCode(got) // only when exit returns: in tests
	}

	// An error without a message means the command already printed its
	// report; only the exit code is left to deliver.
	if err != nil && err.Error() != "" {
		fmt.Fprintln(g.errOut, "error:", err)
	}
	if got != nil && err != nil {
		return signalExitCode(got)
	}
	return ExitCode(err)
}

func (g *signalGuard) watch(sigs <-chan os.Signal, cancel context.CancelFunc, done <-chan struct{}) {
	var deadline <-chan time.Time
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if first := g.record(sig); first {
				cancel()
				deadline = time.After(g.grace)
				continue
			}
			g.exitUnlessFinished(fmt.Sprintf("secprov: second %s: exiting now", signalName(sig)))
			return
		case <-deadline:
			g.exitUnlessFinished(fmt.Sprintf("secprov: %s: the command did not stop within %s of the signal; exiting without it", signalName(g.first()), g.grace))
			return
		}
	}
}

// record notes sig and says whether it is the first.
func (g *signalGuard) record(sig os.Signal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.got != nil {
		return false
	}
	g.got = sig
	return true
}

func (g *signalGuard) first() os.Signal {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got
}

// exitUnlessFinished prints msg and exits with the first signal's code,
// unless the command has returned: then its own result stands. The lock
// is held throughout so the command's result is not printed after msg.
func (g *signalGuard) exitUnlessFinished(msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.finished {
		return
	}
	fmt.Fprintln(g.errOut, msg)
	g.exit(signalExitCode(g.got))
	g.exited = true
}

func signalExitCode(sig os.Signal) int {
	if sig == syscall.SIGTERM {
		return ExitTerminated
	}
	return ExitInterrupted
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
