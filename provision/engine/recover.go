package engine

import (
	"context"
	"encoding/json"
	"fmt"

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
// Up and Destroy treat them differently. Pending operations of this state
// directory's own interrupted run (its marker is still there) are dropped,
// which makes the engine redo them. A lock record is never removed
// silently: the run stops with a *LockedError naming the holder and
// whether it still runs, and `secprov state unlock` (Unlock) removes a
// dead holder's lock and the pending operations it left, so the next Up
// finishes the interrupted work. On a shared backend that is a teammate's
// run: someone should look before it is cleared. Redoing is safe because
// resource types must make Create idempotent (adopt what a killed Create
// left) and Delete tolerant of "already gone" (see the provider package).

// PendingOp is an operation a killed run left unfinished.
type PendingOp struct {
	URN  string
	Type string // creating, updating, deleting, reading, importing
}

// UnlockReport says what Unlock removed.
type UnlockReport struct {
	// Removed are the lock records removed.
	Removed []Lock
	// Pending are the unfinished operations of the interrupted run that
	// were cleared, so the next Up redoes them.
	Pending []PendingOp
}

// checkUnlocked returns a *LockedError when stack has a lock record
// (file and postgres backends; other backends' own lock error names the
// holder).
func (e *Engine) checkUnlocked(ctx context.Context, stack string) error {
	locks, err := e.Locks(ctx, stack)
	if err != nil {
		return err
	}
	if len(locks) > 0 {
		return &LockedError{Stack: stack, Holders: locks}
	}
	return nil
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
