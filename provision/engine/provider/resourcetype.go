// Package provider is the framework behind secprov's own Pulumi resource
// plugin (what Pulumi calls a resource provider): the secprov binary serves
// the Pulumi provider gRPC protocol when the engine starts it as
// pulumi-resource-secprov. "Provider" elsewhere in secprov means a cluster
// provider (local, kind); here it only ever means this plugin.
//
// A resource type is described once (a ResourceType, or more pleasantly a
// TypedResourceType[I, O] over Go structs) and registered in a Registry;
// Serve turns the registry into a plugin process. The framework owns the
// protocol details every resource type would otherwise get subtly wrong:
// property-by-property Diff with replace/update detail, Check failures that
// name the property, unknown values during preview, secret inputs, partial
// Create failures and cancellation.
//
// # Contract for resource types
//
//   - Create must be idempotent. An interrupted run (secprov or the engine
//     killed mid-operation) leaves a "pending create" that the next `up`
//     discards before calling Create again for the same inputs: Create must
//     adopt or overwrite whatever a previous attempt left behind.
//   - If Create fails after it made something real, it returns the id it
//     assigned together with the error. The engine then records the resource
//     as created-but-failed ("initialization failed"), so it is never
//     orphaned: the next `up` calls Update with the same id to finish the job,
//     and `down` calls Delete. If Create returns an error with an empty id, it
//     promises that it cleaned up after itself.
//   - Update must be safe to repeat: when it fails the engine keeps the old
//     state and retries the same transition on the next `up`.
//   - Delete must treat "already gone" as success.
//   - Read reports a resource that no longer exists (deleted by hand,
//     process dead) with exists=false, so a refresh drops it from state and
//     the next `up` recreates it.
//   - Outputs are stored in the state unencrypted unless marked secret.
//     Never put key material in outputs; if a resource type must keep a
//     secret in state, mark the output secret (TypedResourceType: the
//     `secprov:"secret"` field tag) and the engine encrypts it with the
//     stack's secrets provider.
//   - Every operation gets a context that is cancelled when the engine asks
//     the plugin to cancel (Ctrl-C) or the engine goes away; long
//     operations must watch it.
//   - The plugin process lives only as long as one engine operation. A
//     resource type that starts long-running processes must detach them (own
//     session, no inherited stdio) and find them again by id in later calls.
//   - Operations on different resources run concurrently.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Package is the Pulumi package name of every secprov resource type.
const Package = "secprov"

// tokenRE is secprov:<module>:<Type>; module lower-case, Type upper camel.
var tokenRE = regexp.MustCompile(`^secprov:[a-z][a-z0-9]*:[A-Z][A-Za-z0-9]*$`)

// Failure is one problem Check found with an input property. Property is a
// property path ("path", "flags.audit", "args[2]") or "" for the resource as
// a whole; the engine prints both to the user.
type Failure struct {
	Property string
	Reason   string
}

// Request carries one operation's arguments. Which fields are set depends on
// the operation; see ResourceType.
type Request struct {
	URN  string // the resource's URN, for messages
	Name string // the resource's name in the program
	ID   string // empty for Create

	Inputs    resource.PropertyMap // new inputs (Create, Update); current inputs (Read, Delete)
	OldInputs resource.PropertyMap // previous inputs (Update)
	State     resource.PropertyMap // last known outputs (Read, Update, Delete)

	// Log forwards to the engine's diagnostics for this resource (shown by
	// `secprov up -v`); never log secret material.
	Log *slog.Logger
}

// ReadResult is what Read observed.
type ReadResult struct {
	// Exists false reports the resource as gone: a refresh drops it from
	// the state and the next `up` creates it again.
	Exists bool
	// Inputs as observed. Returning the inputs the engine passed in means
	// "no drift"; returning what was actually found (say, a config file's
	// current content) lets the next `up` see and repair the drift.
	Inputs resource.PropertyMap
	// Outputs as observed.
	Outputs resource.PropertyMap
}

// DiffFunc is a resource type's optional diff hook. It receives the framework's
// property-by-property diff and returns the diff to report: it may drop
// changes that don't matter, add changes the inputs can't show (drift found
// in State) or force replacement.
type DiffFunc func(ctx context.Context, req Request, computed Diff) (Diff, error)

// ResourceType describes one resource type on untyped property maps. Most
// resource types are easier to write as a TypedResourceType.
type ResourceType struct {
	// Token is the Pulumi type token, secprov:<module>:<Type>.
	Token string
	// Inputs lists the input property names the resource type accepts, for the
	// schema and to validate ReplaceOnChanges; nil means "not declared".
	Inputs []string
	// ReplaceOnChanges lists input property paths ("path", "spec.port")
	// whose change forces replacement; every other change updates in place.
	ReplaceOnChanges []string
	// DeleteBeforeReplace deletes the old resource before creating its
	// replacement, for resource types whose two instances cannot coexist (same
	// port, same file).
	DeleteBeforeReplace bool

	// Check validates and normalises new inputs (defaults filled in). It may
	// see unknown values during preview; failures on unknown properties are
	// dropped by the framework. Nil accepts the inputs as they are.
	Check func(ctx context.Context, news resource.PropertyMap) (resource.PropertyMap, []Failure, error)
	// Diff is the optional diff hook.
	Diff DiffFunc
	// Create makes the resource from req.Inputs and returns its id and
	// outputs. See the package documentation for partial failures.
	Create func(ctx context.Context, req Request) (id string, outputs resource.PropertyMap, err error)
	// Read observes the resource req.ID. Nil means "assume it exists as
	// recorded".
	Read func(ctx context.Context, req Request) (ReadResult, error)
	// Update changes req.ID from req.OldInputs to req.Inputs in place. Nil
	// is allowed only if every input forces replacement.
	Update func(ctx context.Context, req Request) (resource.PropertyMap, error)
	// Delete removes req.ID; "already gone" is success.
	Delete func(ctx context.Context, req Request) error

	// invalid is set by TypedResourceType.ResourceType when the structs
	// can't be used.
	invalid error
}

func (k *ResourceType) validate() error {
	if k.invalid != nil {
		return fmt.Errorf("resource type %q: %w", k.Token, k.invalid)
	}
	var errs []error
	if !tokenRE.MatchString(k.Token) {
		errs = append(errs, fmt.Errorf("type token %q is not of the form secprov:<module>:<Type>", k.Token))
	}
	if k.Create == nil {
		errs = append(errs, errors.New("Create is required"))
	}
	if k.Delete == nil {
		errs = append(errs, errors.New("Delete is required"))
	}
	for _, p := range k.ReplaceOnChanges {
		path, err := resource.ParsePropertyPath(p)
		if err != nil || len(path) == 0 {
			errs = append(errs, fmt.Errorf("ReplaceOnChanges: %q is not a property path", p))
			continue
		}
		if k.Inputs != nil {
			top, _ := path[0].(string)
			if !slices.Contains(k.Inputs, top) {
				errs = append(errs, fmt.Errorf("ReplaceOnChanges: %q is not an input property (inputs: %v)", p, k.Inputs))
			}
		}
	}
	if k.Update == nil && !k.allInputsReplace() {
		errs = append(errs, errors.New("Update is required unless ReplaceOnChanges covers every input"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("resource type %q: %w", k.Token, errors.Join(errs...))
	}
	return nil
}

func (k *ResourceType) allInputsReplace() bool {
	if k.Inputs == nil {
		return false
	}
	for _, in := range k.Inputs {
		if !slices.Contains(k.ReplaceOnChanges, in) {
			return false
		}
	}
	return true
}

// Registry is the set of resource types one provider serves. It is immutable
// once built, so the provider can use it from concurrent requests.
type Registry struct {
	types map[string]*ResourceType
}

// NewRegistry checks every resource type (token format, required functions,
// replace paths) and reports all problems at once.
func NewRegistry(types ...ResourceType) (*Registry, error) {
	r := &Registry{types: make(map[string]*ResourceType, len(types))}
	var errs []error
	for i := range types {
		k := types[i]
		if err := k.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.types[k.Token]; dup {
			errs = append(errs, fmt.Errorf("resource type %q is registered twice", k.Token))
			continue
		}
		r.types[k.Token] = &k
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Tokens lists the registered type tokens, sorted.
func (r *Registry) Tokens() []string {
	out := make([]string, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ResourceType returns the resource type registered under token.
func (r *Registry) ResourceType(token string) (*ResourceType, bool) {
	k, ok := r.types[token]
	return k, ok
}
