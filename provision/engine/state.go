package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// StackState is what the state records about a stack, for `status`.
type StackState struct {
	Stack string
	// Resources are secprov's resources (the stack and provider entries
	// left out), in dependency order.
	Resources []StateResource
	// Pending are operations an interrupted run left unfinished.
	Pending []PendingOp
}

// StateResource is one recorded resource.
type StateResource struct {
	URN  string
	Type string
	Name string
	ID   string
	// Inputs and Outputs as recorded; secret values read "[secret]".
	Inputs  map[string]any
	Outputs map[string]any
	// InitErrors are set when Create made the resource but then failed;
	// the next `up` finishes it.
	InitErrors []string
	// PendingReplacement marks the old half of an unfinished replacement.
	PendingReplacement bool
}

// State reads the stack's recorded state (without decrypting secrets).
func (e *Engine) State(ctx context.Context, stack string) (*StackState, error) {
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return nil, err
	}
	dep, err := s.Export(ctx)
	if err != nil {
		return nil, e.wrap("reading the state", stack, err, nil, "")
	}
	st := &StackState{Stack: stack}
	if len(dep.Deployment) == 0 {
		return st, nil
	}
	var d apitype.DeploymentV3
	if err := json.Unmarshal(dep.Deployment, &d); err != nil {
		return nil, fmt.Errorf("reading the state of stack %q: %w", stack, err)
	}
	for _, r := range d.Resources {
		if internalType(string(r.Type)) {
			continue
		}
		st.Resources = append(st.Resources, StateResource{
			URN: string(r.URN), Type: string(r.Type), Name: resource.URN(r.URN).Name(), ID: string(r.ID),
			Inputs: hideSecrets(r.Inputs), Outputs: hideSecrets(r.Outputs), InitErrors: r.InitErrors, PendingReplacement: r.Delete,
		})
	}
	for _, op := range d.PendingOperations {
		st.Pending = append(st.Pending, PendingOp{URN: string(op.Resource.URN), Type: string(op.Type)})
	}
	return st, nil
}

// hideSecrets replaces the state's encrypted-secret objects with
// "[secret]".
func hideSecrets(m map[string]any) map[string]any {
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if sig, ok := x[resource.SigKey].(string); ok && sig == resource.SecretSig {
				return "[secret]"
			}
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		default:
			return v
		}
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = walk(v)
	}
	return out
}
