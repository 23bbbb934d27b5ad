package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/debug"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optremove"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Options tune one operation.
type Options struct {
	// OnEvent receives progress events in order, from one goroutine. It
	// must not block for long: the engine waits for it.
	OnEvent func(Event)
	// Refresh asks every resource's provider for its actual state before
	// planning, so drift (a deleted file, a dead process) is repaired.
	Refresh bool
	// Parallel caps concurrent resource operations; 0 is the engine's
	// default.
	Parallel int
	// EngineLog, if set, receives the engine's (and the provider's) debug
	// log at EngineLogLevel (1-9, default 3), for `secprov -vv`. These logs
	// can hold resource inputs: never collect them in shared CI logs. The
	// passphrase is redacted.
	EngineLog      io.Writer
	EngineLogLevel uint
}

// debugLog returns the engine's logging options and the writer for its
// stderr, or ok=false when opts asks for no engine log.
func (e *Engine) debugLog(opts Options) (debug.LoggingOptions, *redactingWriter, bool) {
	if opts.EngineLog == nil {
		return debug.LoggingOptions{}, nil, false
	}
	level := opts.EngineLogLevel
	if level == 0 {
		level = 3
	}
	return debug.LoggingOptions{LogLevel: &level, LogToStdErr: true, FlowToPlugins: true},
		&redactingWriter{w: opts.EngineLog, redact: e.redactor()}, true
}

// Result is the outcome of Up or Destroy.
type Result struct {
	Stack string
	// Resources are the steps the engine took, one entry per resource.
	Resources []ResourceChange
	// Counts per op over Resources (a replacement counts once).
	Counts   map[Op]int
	Duration time.Duration
	// Outputs are the stack's outputs after the operation (Up only).
	// Secret outputs have Secret set and no Value: read them with
	// Engine.Outputs, which decrypts.
	Outputs map[string]Output
}

// Output is one stack output. Secret outputs arrive decrypted and flagged;
// don't print them.
type Output struct {
	Value  any
	Secret bool
}

// Preview computes what Up would do, without changing anything.
func (e *Engine) Preview(ctx context.Context, stack string, program pulumi.RunFunc, opts Options) (*Plan, error) {
	s, err := e.upsertStack(ctx, stack, program)
	if err != nil {
		return nil, err
	}
	col, ch, wait := e.stream(opts)
	args := []optpreview.Option{
		optpreview.EventStreams(ch),
		optpreview.Color("never"),
		optpreview.SuppressProgress(),
	}
	if opts.Refresh {
		args = append(args, optpreview.Refresh())
	}
	if opts.Parallel > 0 {
		args = append(args, optpreview.Parallel(opts.Parallel))
	}
	dl, logw, logging := e.debugLog(opts)
	if logging {
		args = append(args, optpreview.DebugLogging(dl), optpreview.ErrorProgressStreams(logw))
		defer logw.flush()
	}
	_, err = s.Preview(ctx, args...)
	wait()
	if err != nil {
		return nil, e.wrap("preview", stack, err, col.diagnostics(), "")
	}
	return col.plan(stack), nil
}

// Up creates or updates the stack's resources to match program. Pending
// operations of this state directory's own interrupted run are cleared
// first, so Up converges; a lock left by a killed run stops it with a
// *LockedError until Unlock clears it (see recover.go).
func (e *Engine) Up(ctx context.Context, stack string, program pulumi.RunFunc, opts Options) (*Result, error) {
	return e.retryLocked(ctx, stack, func() (*Result, error) { return e.up(ctx, stack, program, opts) })
}

func (e *Engine) up(ctx context.Context, stack string, program pulumi.RunFunc, opts Options) (*Result, error) {
	start := time.Now()
	s, err := e.upsertStack(ctx, stack, program)
	if err != nil {
		return nil, err
	}
	finish, err := e.beginMutation(ctx, s)
	if err != nil {
		return nil, err
	}
	col, ch, wait := e.stream(opts)
	args := []optup.Option{
		optup.EventStreams(ch),
		optup.Color("never"),
		optup.SuppressProgress(),
		optup.SuppressOutputs(),
	}
	if opts.Refresh {
		args = append(args, optup.Refresh())
	}
	if opts.Parallel > 0 {
		args = append(args, optup.Parallel(opts.Parallel))
	}
	dl, logw, logging := e.debugLog(opts)
	if logging {
		args = append(args, optup.DebugLogging(dl), optup.ErrorProgressStreams(logw))
		defer logw.flush()
	}
	// The result is built from the event stream; the SDK's follow-up
	// `stack output`/`stack history` calls would only repeat it.
	_, err = s.Up(withLocalAnswers(ctx, map[string]string{"stack output": "{}", "stack history": "[]"}), args...)
	wait()
	finish(err)
	if err != nil {
		return nil, e.wrap("up", stack, err, col.diagnostics(), "")
	}
	steps := col.plan(stack)
	out := &Result{Stack: stack, Resources: steps.Resources, Counts: steps.Counts,
		Duration: time.Since(start), Outputs: map[string]Output{}}
	for k, v := range col.stackOutputs() {
		out.Outputs[k] = v
	}
	e.log.Info("up finished", "stack", stack, "elapsed", out.Duration.Round(time.Millisecond), "counts", out.Counts)
	return out, nil
}

// Destroy deletes every resource of the stack; the (empty) stack remains
// until RemoveStack. Destroying a stack that doesn't exist does nothing.
func (e *Engine) Destroy(ctx context.Context, stack string, opts Options) (*Result, error) {
	return e.retryLocked(ctx, stack, func() (*Result, error) { return e.destroy(ctx, stack, opts) })
}

func (e *Engine) destroy(ctx context.Context, stack string, opts Options) (*Result, error) {
	start := time.Now()
	s, err := e.selectStack(ctx, stack)
	if errors.Is(err, ErrNoStack) {
		return &Result{Stack: stack, Counts: map[Op]int{}}, nil
	}
	if err != nil {
		return nil, err
	}
	finish, err := e.beginMutation(ctx, s)
	if err != nil {
		return nil, err
	}
	col, ch, wait := e.stream(opts)
	args := []optdestroy.Option{
		optdestroy.EventStreams(ch),
		optdestroy.Color("never"),
		optdestroy.SuppressProgress(),
	}
	if opts.Refresh {
		args = append(args, optdestroy.Refresh())
	}
	if opts.Parallel > 0 {
		args = append(args, optdestroy.Parallel(opts.Parallel))
	}
	dl, logw, logging := e.debugLog(opts)
	if logging {
		args = append(args, optdestroy.DebugLogging(dl), optdestroy.ErrorProgressStreams(logw))
		defer logw.flush()
	}
	_, err = s.Destroy(withLocalAnswers(ctx, map[string]string{"stack history": "[]"}), args...)
	wait()
	finish(err)
	if err != nil {
		return nil, e.wrap("destroy", stack, err, col.diagnostics(), "")
	}
	steps := col.plan(stack)
	return &Result{Stack: stack, Resources: steps.Resources, Counts: steps.Counts, Duration: time.Since(start)}, nil
}

// Outputs returns the stack's outputs (secrets decrypted and flagged).
func (e *Engine) Outputs(ctx context.Context, stack string) (map[string]Output, error) {
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return nil, err
	}
	outs, err := s.Outputs(ctx)
	if err != nil {
		return nil, e.wrap("reading outputs", stack, err, nil, "")
	}
	res := make(map[string]Output, len(outs))
	for k, v := range outs {
		res[k] = Output{Value: v.Value, Secret: v.Secret}
	}
	return res, nil
}

// RemoveStack deletes the stack's state and history. It refuses while the
// stack still has resources, unless force (then they are forgotten, not
// deleted: only for resources already gone).
func (e *Engine) RemoveStack(ctx context.Context, stack string, force bool) error {
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return err
	}
	if err := e.checkUnlocked(ctx, stack); err != nil {
		return err
	}
	var opts []optremove.Option
	if force {
		opts = append(opts, optremove.Force())
	}
	if err := s.Workspace().RemoveStack(ctx, stack, opts...); err != nil {
		return e.wrap("removing", stack, err, nil,
			"A stack that still has resources can't be removed: run destroy first.")
	}
	_ = os.RemoveAll(filepath.Join(e.workRoot, stack))
	return nil
}

// StackInfo summarises one stack.
type StackInfo struct {
	Name             string
	LastUpdate       string // RFC 3339, empty if never updated
	UpdateInProgress bool
	ResourceCount    int // including the stack and provider entries
}

// ListStacks lists secprov's stacks in the backend, sorted by name.
func (e *Engine) ListStacks(ctx context.Context) ([]StackInfo, error) {
	opts, err := e.workspaceOptions("_list")
	if err != nil {
		return nil, err
	}
	ws, err := auto.NewLocalWorkspace(ctx, opts...)
	if err != nil {
		return nil, e.wrap("listing stacks", "", err, nil, "")
	}
	sums, err := ws.ListStacks(ctx)
	if err != nil {
		return nil, e.wrap("listing stacks", "", err, nil, "")
	}
	out := make([]StackInfo, 0, len(sums))
	for _, s := range sums {
		si := StackInfo{Name: s.Name, LastUpdate: s.LastUpdate, UpdateInProgress: s.UpdateInProgress}
		if s.ResourceCount != nil {
			si.ResourceCount = *s.ResourceCount
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// stream wires an event channel to a collector. Call wait once the SDK
// operation returned: by then the SDK has stopped its event server, so
// every event was delivered, but it closes the channel only if the engine
// ever connected (an engine failing at startup never does).
func (e *Engine) stream(opts Options) (col *collector, ch chan events.EngineEvent, wait func()) {
	col = newCollector(e.redactor(), opts.OnEvent)
	ch = make(chan events.EngineEvent)
	stop, done := make(chan struct{}), make(chan struct{})
	go col.consume(ch, stop, done)
	return col, ch, func() { close(stop); <-done }
}

// beginMutation prepares a stack for Up or Destroy: a lock record, even a
// dead process's, stops it with a *LockedError (see recover.go); if the
// previous mutation from this state directory did not finish (its marker
// is still there), pending operations are cleared. The returned finish removes the marker once the
// engine ran to completion (successfully or with an ordinary failure).
func (e *Engine) beginMutation(ctx context.Context, s auto.Stack) (finish func(error), err error) {
	stack := s.Name()
	marker := filepath.Join(e.workRoot, stack, ".mutation-in-progress")
	_, statErr := os.Stat(marker)
	interrupted := statErr == nil
	if err := e.checkUnlocked(ctx, stack); err != nil {
		return nil, err
	}
	if interrupted {
		if _, err := e.clearPending(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(marker, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, fmt.Errorf("marking stack %q as being updated: %w", stack, err)
	}
	return func(err error) {
		// An engine killed by a signal may have left pending operations:
		// keep the marker so the next run checks.
		if err == nil || !strings.Contains(err.Error(), "signal: ") {
			_ = os.Remove(marker)
		}
	}, nil
}

// retryLocked runs a mutation and sorts out the backend lock's race. The
// DIY backend locks by writing its record and then looking for others';
// two runs that start together can each see the other's record and both
// back off. When the lock check failed and no holder is left, the run
// is retried after a random pause, so of two concurrent runs exactly one
// proceeds; a holder that is left is reported as a *LockedError.
func (e *Engine) retryLocked(ctx context.Context, stack string, run func() (*Result, error)) (*Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := run()
		var locked *LockedError
		if err == nil || errors.As(err, &locked) || !strings.Contains(err.Error(), "currently locked") {
			return res, err
		}
		locks, lerr := e.Locks(ctx, stack)
		if lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		if len(locks) > 0 {
			return nil, &LockedError{Stack: stack, Holders: locks}
		}
		if attempt == 5 {
			return nil, err
		}
		e.log.Info("the stack lock was contended and is free again: retrying", "stack", stack, "attempt", attempt)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(50+rand.IntN(450)) * time.Millisecond):
		}
	}
}
