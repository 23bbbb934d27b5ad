package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// An `up` killed midway (SIGKILL, OOM, power loss) leaves two things behind
// that would block or confuse the next run:
//
//   - the backend's lock record, naming the dead engine's pid: every later
//     run fails with "the stack is currently locked";
//   - pending operations in the checkpoint: resources the engine had
//     started to create, update or delete when it died. The engine only
//     warns about them, and a pending create is forgotten state for a
//     resource that may half exist.
//
// Up and Destroy repair both before they start: a lock is removed only if
// it was taken on this host by a process that is gone (else the run stops
// with a message naming the holder); pending operations are dropped, which
// makes the engine redo them. That is safe because resource types must make Create
// idempotent (adopt what a killed Create left) and Delete tolerant of
// "already gone" (see the provider package).

// PendingOp is an operation a killed run left unfinished.
type PendingOp struct {
	URN  string
	Type string // creating, updating, deleting, reading, importing
}

// RepairReport says what Repair found and fixed.
type RepairReport struct {
	// StaleLocks are the lock files of dead processes that were removed.
	StaleLocks []string
	// Pending are the unfinished operations that were cleared.
	Pending []PendingOp
}

// Repair clears a dead process's lock and any pending operations of stack,
// unconditionally. Up and Destroy do this by themselves when they detect
// an interrupted run; Repair is for a stack touched by other tools.
func (e *Engine) Repair(ctx context.Context, stack string) (*RepairReport, error) {
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return nil, err
	}
	rep := &RepairReport{}
	if rep.StaleLocks, err = e.staleLocks(ctx, stack, true); err != nil {
		return nil, err
	}
	if rep.Pending, err = e.clearPending(ctx, s); err != nil {
		return nil, err
	}
	return rep, nil
}

// clearStaleLocks removes locks of dead processes on the stack and
// reports whether it found any; a live (or foreign) lock is a
// *LockedError.
func (e *Engine) clearStaleLocks(ctx context.Context, stack string) (bool, error) {
	removed, err := e.staleLocks(ctx, stack, true)
	return len(removed) > 0, err
}

// staleLocks inspects the stack's lock records (file and postgres
// backends; other backends' own lock error names the holder). With
// remove, locks of dead processes on this host are deleted; any other
// lock is a *LockedError.
func (e *Engine) staleLocks(ctx context.Context, stack string, remove bool) ([]string, error) {
	locks, err := e.Locks(ctx, stack)
	if err != nil {
		return nil, err
	}
	var removed []string
	var held []Lock
	for _, l := range locks {
		if !l.OnThisHost() || l.Alive() {
			held = append(held, l)
			continue
		}
		if !remove {
			removed = append(removed, l.Key)
			continue
		}
		if err := e.removeLock(ctx, l); err != nil {
			return removed, fmt.Errorf("removing stale lock %s of stack %q: %w", l.Key, stack, err)
		}
		e.log.Warn("removed the lock of a dead engine process; its update was interrupted",
			"stack", stack, "pid", l.Pid, "user", l.Username, "since", l.Since.Format(time.RFC3339))
		removed = append(removed, l.Key)
	}
	if len(held) > 0 {
		return removed, &LockedError{Stack: stack, Holders: held}
	}
	return removed, nil
}

// clearPending drops the checkpoint's pending operations, if any, by
// exporting the state, editing it and importing it back.
func (e *Engine) clearPending(ctx context.Context, s auto.Stack) ([]PendingOp, error) {
	stack := s.Name()
	dep, err := s.Export(ctx)
	if err != nil {
		return nil, e.wrap("exporting the state", stack, err, nil, "")
	}
	if len(dep.Deployment) == 0 {
		return nil, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(dep.Deployment, &doc); err != nil {
		return nil, fmt.Errorf("reading the exported state of stack %q: %w", stack, err)
	}
	raw, ok := doc["pending_operations"]
	if !ok {
		return nil, nil
	}
	var ops []apitype.OperationV2
	if err := json.Unmarshal(raw, &ops); err != nil {
		return nil, fmt.Errorf("reading pending operations of stack %q: %w", stack, err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	var cleared []PendingOp
	for _, op := range ops {
		cleared = append(cleared, PendingOp{URN: string(op.Resource.URN), Type: string(op.Type)})
		e.log.Warn("clearing an operation an interrupted run left pending; the next step redoes it",
			"stack", stack, "resource", string(op.Resource.URN), "operation", string(op.Type))
	}
	delete(doc, "pending_operations")
	if dep.Deployment, err = json.Marshal(doc); err != nil {
		return nil, err
	}
	if err := s.Import(ctx, dep); err != nil {
		return nil, e.wrap("importing the repaired state", stack, err, nil,
			"The state was not changed. Run again; if this persists, inspect it with `pulumi stack export`.")
	}
	return cleared, nil
}
