package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Server implements the Pulumi resource provider protocol over a Registry.
// Serve runs it as a plugin process; tests may call it directly.
type Server struct {
	pulumirpc.UnimplementedResourceProviderServer

	reg     *Registry
	version string
	logs    LogSink

	// cancelled is closed by the engine's Cancel call; every operation's
	// context derives from it.
	cancelled context.Context
	cancel    context.CancelFunc
}

// LogSink receives a resource type's log records for one resource; Serve
// connects it to the engine's diagnostics.
type LogSink func(urn string) *slog.Logger

// NewServer serves reg, reporting version (semver) from GetPluginInfo. A nil
// logs discards resource types' logs.
func NewServer(reg *Registry, version string, logs LogSink) *Server {
	if logs == nil {
		discard := slog.New(slog.DiscardHandler)
		logs = func(string) *slog.Logger { return discard }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{reg: reg, version: version, logs: logs, cancelled: ctx, cancel: cancel}
}

var (
	// What we read from the engine: keep unknowns (preview) and secrets.
	unmarshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, PropagateNil: true}
	// What we send back: same, so secret inputs and outputs stay secret.
	marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, PropagateNil: true}
)

// opContext joins the RPC's context (cancelled if the engine goes away)
// with the provider-wide cancellation (the engine's Cancel call).
func (s *Server) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.cancelled, cancel)
	return ctx, func() { stop(); cancel() }
}

func (s *Server) resourceType(token string) (*ResourceType, error) {
	k, ok := s.reg.ResourceType(token)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument,
			"resource type %q is not served by this secprov binary (it serves %v); is secprov older than the state?",
			token, s.reg.Tokens())
	}
	return k, nil
}

// Handshake declares what we understand: secrets yes; resource references
// and output values no (the engine then sends plain values).
func (s *Server) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true}, nil
}

// GetPluginInfo reports the provider's version.
func (s *Server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: s.version}, nil
}

// GetSchema returns a minimal package schema listing the resource types;
// the engine needs it only for code generation and import, which secprov
// doesn't use.
func (s *Server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	type property struct {
		Type string `json:"type"`
	}
	type res struct {
		InputProperties map[string]property `json:"inputProperties,omitempty"`
	}
	schema := struct {
		Name      string         `json:"name"`
		Version   string         `json:"version,omitempty"`
		Resources map[string]res `json:"resources"`
	}{Name: Package, Version: s.version, Resources: map[string]res{}}
	for _, t := range s.reg.Tokens() {
		k, _ := s.reg.ResourceType(t)
		r := res{}
		if k.Inputs != nil {
			r.InputProperties = map[string]property{}
			for _, in := range k.Inputs {
				// The schema's "pulumi.json#/Any" keeps us honest: the resource
				// types validate types themselves in Check.
				r.InputProperties[in] = property{Type: "pulumi.json#/Any"}
			}
		}
		schema.Resources[t] = r
	}
	b, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: string(b)}, nil
}

// CheckConfig accepts any provider configuration: secprov's provider has
// none of its own (each resource carries its inputs).
func (s *Server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

// DiffConfig never reports a change: a provider "change" would replace
// every resource of the stack, and there is no configuration to change.
func (s *Server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Configure declines preview support, so the engine never calls
// Create/Update with Preview set and shows outputs as unknown instead.
func (s *Server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: false}, nil
}

// Cancel aborts every operation in flight: their contexts are cancelled.
func (s *Server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.cancel()
	return &emptypb.Empty{}, nil
}

// Check validates and normalises inputs with the resource type's Check.
func (s *Server) Check(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	inputs, failures := news, []Failure(nil)
	if k.Check != nil {
		ctx, done := s.opContext(ctx)
		defer done()
		inputs, failures, err = k.Check(ctx, news)
		if err != nil {
			return nil, s.opError(ctx, "checking", req.GetUrn(), err)
		}
	}
	rpcInputs, err := plugin.MarshalProperties(inputs, marshalOpts)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.CheckResponse{Inputs: rpcInputs}
	for _, f := range failures {
		resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.Property, Reason: f.Reason})
	}
	return resp, nil
}

// Diff compares recorded and new inputs property by property, lets the resource
// type's hook amend the result and reports it with per-property detail.
func (s *Server) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	state, err := plugin.UnmarshalProperties(req.GetOlds(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	olds := state
	if req.GetOldInputs() != nil {
		if olds, err = plugin.UnmarshalProperties(req.GetOldInputs(), unmarshalOpts); err != nil {
			return nil, err
		}
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	d := ComputeDiff(olds, news, k.ReplaceOnChanges)
	if k.Diff != nil {
		ctx, done := s.opContext(ctx)
		defer done()
		r := s.request(req.GetUrn(), req.GetName(), req.GetId(), news, state)
		r.OldInputs = olds
		if d, err = k.Diff(ctx, r, d); err != nil {
			return nil, s.opError(ctx, "diffing", req.GetUrn(), err)
		}
	}
	return diffResponse(d, k.DeleteBeforeReplace), nil
}

func diffResponse(d Diff, deleteBeforeReplace bool) *pulumirpc.DiffResponse {
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		HasDetailedDiff: true,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
	}
	for _, c := range d.Changes {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case c.Kind == Add && c.Replace:
			kind = pulumirpc.PropertyDiff_ADD_REPLACE
		case c.Kind == Add:
			kind = pulumirpc.PropertyDiff_ADD
		case c.Kind == Delete && c.Replace:
			kind = pulumirpc.PropertyDiff_DELETE_REPLACE
		case c.Kind == Delete:
			kind = pulumirpc.PropertyDiff_DELETE
		case c.Replace:
			kind = pulumirpc.PropertyDiff_UPDATE_REPLACE
		}
		resp.DetailedDiff[c.Path] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		top := topKey(c.Path)
		if !slices.Contains(resp.Diffs, top) {
			resp.Diffs = append(resp.Diffs, top)
		}
		if c.Replace && !slices.Contains(resp.Replaces, top) {
			resp.Replaces = append(resp.Replaces, top)
		}
	}
	resp.DeleteBeforeReplace = deleteBeforeReplace && len(resp.Replaces) > 0
	return resp
}

func topKey(path string) string {
	p, err := resource.ParsePropertyPath(path)
	if err != nil || len(p) == 0 {
		return path
	}
	if k, ok := p[0].(string); ok {
		return k
	}
	return path
}

// Create runs the resource type's Create. A failure after the resource type
// assigned an id is reported as "initialization failed" so the engine records
// the resource (see the package documentation).
func (s *Server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		// Not expected (Configure declines preview), but answer sanely.
		return &pulumirpc.CreateResponse{Properties: req.GetProperties()}, nil
	}
	ctx, done := s.opContext(ctx)
	defer done()
	id, outputs, cerr := k.Create(ctx, s.request(req.GetUrn(), req.GetName(), "", inputs, nil))
	outputs = secretLikeInputs(outputs, inputs)
	if cerr != nil {
		if id == "" {
			return nil, s.opError(ctx, "creating", req.GetUrn(), cerr)
		}
		return nil, initFailed(id, outputs, cerr, s.opError(ctx, "creating", req.GetUrn(), cerr))
	}
	if id == "" {
		return nil, status.Errorf(codes.Internal, "creating %s: the %s resource type returned no id", req.GetUrn(), k.Token)
	}
	rpcOut, err := plugin.MarshalProperties(outputs, marshalOpts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: rpcOut}, nil
}

// Read refreshes one resource; an empty id in the answer tells the engine
// the resource is gone.
func (s *Server) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	if k.Read == nil {
		return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
	}
	state, err := plugin.UnmarshalProperties(req.GetProperties(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetInputs(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	ctx, done := s.opContext(ctx)
	defer done()
	res, err := k.Read(ctx, s.request(req.GetUrn(), req.GetName(), req.GetId(), inputs, state))
	if err != nil {
		return nil, s.opError(ctx, "reading", req.GetUrn(), err)
	}
	if !res.Exists {
		return &pulumirpc.ReadResponse{}, nil
	}
	if res.Inputs == nil {
		res.Inputs = inputs
	}
	rpcOut, err := plugin.MarshalProperties(secretLikeInputs(res.Outputs, res.Inputs), marshalOpts)
	if err != nil {
		return nil, err
	}
	rpcIn, err := plugin.MarshalProperties(res.Inputs, marshalOpts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: rpcOut, Inputs: rpcIn}, nil
}

// Update runs the resource type's Update. On failure the engine keeps the
// previous state, so the next `up` retries the same transition.
func (s *Server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	if k.Update == nil {
		return nil, status.Errorf(codes.Internal,
			"updating %s: the %s resource type cannot update in place, but Diff asked for it", req.GetUrn(), k.Token)
	}
	state, err := plugin.UnmarshalProperties(req.GetOlds(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetOldInputs(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		return &pulumirpc.UpdateResponse{Properties: req.GetOlds()}, nil
	}
	ctx, done := s.opContext(ctx)
	defer done()
	r := s.request(req.GetUrn(), req.GetName(), req.GetId(), news, state)
	r.OldInputs = olds
	outputs, err := k.Update(ctx, r)
	if err != nil {
		return nil, s.opError(ctx, "updating", req.GetUrn(), err)
	}
	rpcOut, err := plugin.MarshalProperties(secretLikeInputs(outputs, news), marshalOpts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: rpcOut}, nil
}

// Delete runs the resource type's Delete.
func (s *Server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	k, err := s.resourceType(req.GetType())
	if err != nil {
		return nil, err
	}
	state, err := plugin.UnmarshalProperties(req.GetProperties(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetOldInputs(), unmarshalOpts)
	if err != nil {
		return nil, err
	}
	ctx, done := s.opContext(ctx)
	defer done()
	if err := k.Delete(ctx, s.request(req.GetUrn(), req.GetName(), req.GetId(), inputs, state)); err != nil {
		return nil, s.opError(ctx, "deleting", req.GetUrn(), err)
	}
	return &emptypb.Empty{}, nil
}

func (s *Server) request(urn, name, id string, inputs, state resource.PropertyMap) Request {
	if name == "" {
		name = resource.URN(urn).Name()
	}
	return Request{URN: urn, Name: name, ID: id, Inputs: inputs, State: state, Log: s.logs(urn)}
}

// opError turns a resource type's error into a gRPC status. Cancellation is
// reported as such; everything else as Unknown, which tells the engine the
// object may be half-changed (it is then flagged in the summary).
func (s *Server) opError(ctx context.Context, verb, urn string, err error) error {
	code := codes.Unknown
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		code = codes.Canceled
		err = fmt.Errorf("%w (cancelled)", err)
	}
	return status.Errorf(code, "%s %s: %v", verb, resource.URN(urn).Name(), err)
}

// initFailed wraps a Create error that left a resource behind: the engine
// stores id and outputs with the error as an init error.
func initFailed(id string, outputs resource.PropertyMap, cause, st error) error {
	props, err := plugin.MarshalProperties(outputs, marshalOpts)
	if err != nil {
		props = nil
	}
	return rpcerror.WithDetails(
		rpcerror.New(codes.Unknown, status.Convert(st).Message()),
		&pulumirpc.ErrorResourceInitFailed{Id: id, Properties: props, Reasons: []string{cause.Error()}},
	)
}

// secretLikeInputs marks an output secret when the input of the same name
// was secret: a resource type echoing an input must not store it in clear.
func secretLikeInputs(outputs, inputs resource.PropertyMap) resource.PropertyMap {
	for k, in := range inputs {
		if out, ok := outputs[k]; ok && in.ContainsSecrets() && !out.IsSecret() && !out.IsNull() {
			outputs[k] = resource.MakeSecret(out)
		}
	}
	return outputs
}
