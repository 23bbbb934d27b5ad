package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

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
	// SecretsProvider is what the checkpoint says encrypts its secrets:
	// "passphrase" or a hashivault:// URL ("" when it says nothing).
	SecretsProvider string
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
	var raw json.RawMessage
	dep, err := s.Export(ctx)
	if err != nil {
		// The engine opens the stack's secrets provider even to export
		// without secrets; from a state directory that cannot reach the
		// stack's Vault, read the checkpoint itself (file and postgres
		// backends): State never decrypts.
		var rerr error
		if raw, rerr = e.rawDeployment(ctx, stack); rerr != nil || raw == nil {
			return nil, e.wrap("reading the state", stack, err, nil, "")
		}
	} else {
		raw = dep.Deployment
	}
	st := &StackState{Stack: stack}
	if len(raw) == 0 {
		return st, nil
	}
	var d apitype.DeploymentV3
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("reading the state of stack %q: %w", stack, err)
	}
	st.SecretsProvider = secretsProviderOf(raw)
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

// rawDeployment reads the stack's latest deployment straight from a file
// or postgres backend's checkpoint (nil for other backends).
func (e *Engine) rawDeployment(ctx context.Context, stack string) (json.RawMessage, error) {
	var blob []byte
	switch {
	case e.backendDir != "":
		base := stackFile(e.backendDir, stack)
		b, err := os.ReadFile(base)
		if errors.Is(err, fs.ErrNotExist) {
			if b, err = os.ReadFile(base + ".gz"); err == nil {
				b, err = gunzip(b)
			}
		}
		if err != nil {
			return nil, err
		}
		blob = b
	case isPostgres(e.cfg.Backend):
		db, table, err := e.postgres()
		if err != nil {
			return nil, err
		}
		base := pgStackKey(e.cfg.Backend, stack)
		var key, data string
		err = db.QueryRowContext(ctx, "SELECT key, data FROM "+table+" WHERE key = $1 OR key = $2 ORDER BY key LIMIT 1", base, base+".gz").Scan(&key, &data) //nolint:gosec // table is checked by openPostgres
		if err != nil {
			return nil, err
		}
		if blob, err = pgBlob(data); err != nil {
			return nil, err
		}
		if strings.HasSuffix(key, ".gz") {
			if blob, err = gunzip(blob); err != nil {
				return nil, err
			}
		}
	default:
		return nil, nil
	}
	var cp struct {
		Checkpoint struct {
			Latest json.RawMessage `json:"latest"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(blob, &cp); err != nil {
		return nil, err
	}
	return cp.Checkpoint.Latest, nil
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
