package app

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"secprov.dev/secprov/internal/proctest"
)

// TestSignalGuard drives the guard with fake signals and a fake exit.
func TestSignalGuard(t *testing.T) {
	const grace = 200 * time.Millisecond
	type outcome struct {
		exited   int // code passed to exit; -1 if exit was not called
		returned int // run's result, once the command returned
		after    time.Duration
		stderr   string
	}
	// drive starts run with command, sends sigs one after another, and
	// reports what happened. release unblocks a command that ignores its
	// context, as the end of the process would.
	drive := func(t *testing.T, command func(ctx context.Context, release <-chan struct{}) error, sigs ...os.Signal) outcome {
		t.Helper()
		var errOut proctest.Buffer
		exited := make(chan int, 1)
		g := &signalGuard{grace: grace, errOut: &errOut, exit: func(code int) { exited <- code }}
		ch := make(chan os.Signal, len(sigs))
		release := make(chan struct{})
		returned := make(chan int, 1)
		go func() {
			returned <- g.run(ch, func(ctx context.Context) error { return command(ctx, release) })
		}()
		start := time.Now()
		for _, s := range sigs {
			ch <- s
			time.Sleep(10 * time.Millisecond)
		}
		o := outcome{exited: -1}
		select {
		case o.exited = <-exited:
			o.after = time.Since(start)
			close(release)
			<-returned
		case o.returned = <-returned:
			o.after = time.Since(start)
		case <-time.After(5 * time.Second):
			t.Fatal("neither exit nor return within 5s")
		}
		o.stderr = errOut.String()
		return o
	}
	ignoresContext := func(_ context.Context, release <-chan struct{}) error {
		<-release // like open(2) on a FIFO nobody writes
		return errors.New("too late")
	}
	stopsWith := func(err error) func(ctx context.Context, _ <-chan struct{}) error {
		return func(ctx context.Context, _ <-chan struct{}) error {
			<-ctx.Done()
			return err
		}
	}

	t.Run("blocked command: SIGTERM exits 143 after the grace", func(t *testing.T) {
		o := drive(t, ignoresContext, syscall.SIGTERM)
		if o.exited != ExitTerminated || o.after < grace || o.after > grace+time.Second {
			t.Errorf("exit %d after %s; want %d after %s", o.exited, o.after, ExitTerminated, grace)
		}
		mustHave(t, o.stderr, "SIGTERM", "did not stop within")
		if strings.Contains(o.stderr, "too late") || strings.Count(o.stderr, "\n") != 1 {
			t.Errorf("stderr should be one line: %q", o.stderr)
		}
	})
	t.Run("blocked command: SIGINT exits 130", func(t *testing.T) {
		if o := drive(t, ignoresContext, os.Interrupt); o.exited != ExitInterrupted {
			t.Errorf("exit %d, want %d", o.exited, ExitInterrupted)
		}
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		o := drive(t, ignoresContext, os.Interrupt, os.Interrupt)
		if o.exited != ExitInterrupted || o.after >= grace {
			t.Errorf("exit %d after %s; want %d before the %s grace", o.exited, o.after, ExitInterrupted, grace)
		}
		mustHave(t, o.stderr, "second SIGINT")
	})
	t.Run("clean stop keeps exit 0", func(t *testing.T) {
		o := drive(t, stopsWith(nil), syscall.SIGTERM)
		if o.exited != -1 || o.returned != 0 || o.stderr != "" {
			t.Errorf("exit called %d, returned %d, stderr %q; want a plain 0", o.exited, o.returned, o.stderr)
		}
	})
	t.Run("failure after a signal exits with its code", func(t *testing.T) {
		o := drive(t, stopsWith(usageErr(context.Canceled)), syscall.SIGTERM)
		if o.exited != -1 || o.returned != ExitTerminated {
			t.Errorf("exit called %d, returned %d; want %d", o.exited, o.returned, ExitTerminated)
		}
		mustHave(t, o.stderr, "error: context canceled")
	})
	t.Run("no signal: the command's own code", func(t *testing.T) {
		o := drive(t, func(context.Context, <-chan struct{}) error { return &ExitError{Code: ExitFindings} })
		if o.exited != -1 || o.returned != ExitFindings || o.stderr != "" {
			t.Errorf("exit called %d, returned %d, stderr %q", o.exited, o.returned, o.stderr)
		}
	})
}
