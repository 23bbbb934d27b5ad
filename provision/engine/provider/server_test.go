package provider

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// A memory-backed resource type for protocol tests.
type memIn struct {
	Name    string            `json:"name" secprov:"replace"`
	Size    int               `json:"size,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Fail    string            `json:"fail,omitempty"` // "create", "create-partial", "block"
	Token   string            `json:"token,omitempty"`
	Ignored string            `json:"-"`
}

type memOut struct {
	Created  string `json:"created"`
	Password string `json:"password" secprov:"secret"`
	Token    string `json:"token,omitempty"`
}

type memStore struct {
	mu      sync.Mutex
	objects map[string]memIn
	started chan struct{}
}

func (m *memStore) resourceType() ResourceType {
	return TypedResourceType[memIn, memOut]{
		Token: "secprov:test:Mem",
		Check: func(_ context.Context, in *memIn) []Failure {
			var f []Failure
			if in.Name == "" {
				f = append(f, Failure{Property: "name", Reason: "is required"})
			}
			if in.Size == 0 {
				in.Size = 10 // default
			}
			if in.Size < 0 {
				f = append(f, Failure{Property: "size", Reason: "must not be negative"})
			}
			return f
		},
		Create: func(ctx context.Context, req TypedRequest[memIn, memOut]) (string, memOut, error) {
			out := memOut{Created: "yes", Password: "pw-" + req.Inputs.Name, Token: req.Inputs.Token}
			switch req.Inputs.Fail {
			case "create":
				return "", memOut{}, errors.New("boom before anything existed")
			case "block":
				close(m.started)
				<-ctx.Done()
				return "", memOut{}, ctx.Err()
			}
			m.mu.Lock()
			m.objects[req.Inputs.Name] = req.Inputs
			m.mu.Unlock()
			if req.Inputs.Fail == "create-partial" {
				return req.Inputs.Name, out, errors.New("made it, then failed to start it")
			}
			return req.Inputs.Name, out, nil
		},
		Read: func(_ context.Context, req TypedRequest[memIn, memOut]) (memIn, memOut, bool, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			in, ok := m.objects[req.ID]
			return in, req.State, ok, nil
		},
		Update: func(_ context.Context, req TypedRequest[memIn, memOut]) (memOut, error) {
			m.mu.Lock()
			m.objects[req.ID] = req.Inputs
			m.mu.Unlock()
			return req.State, nil
		},
		Delete: func(_ context.Context, req TypedRequest[memIn, memOut]) error {
			m.mu.Lock()
			delete(m.objects, req.ID)
			m.mu.Unlock()
			return nil
		},
	}.ResourceType()
}

func newMemServer(t *testing.T) (*Server, *memStore) {
	t.Helper()
	m := &memStore{objects: map[string]memIn{}, started: make(chan struct{})}
	reg, err := NewRegistry(m.resourceType())
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(reg, "1.2.3", nil), m
}

const memURN = "urn:pulumi:dev::secprov::secprov:test:Mem::m1"

func marshal(t *testing.T, props resource.PropertyMap) *structpb.Struct {
	t.Helper()
	s, err := plugin.MarshalProperties(props, marshalOpts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unmarshalT(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	p, err := plugin.UnmarshalProperties(s, unmarshalOpts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	unknown := resource.MakeComputed(resource.NewStringProperty(""))
	tests := []struct {
		name         string
		news         resource.PropertyMap
		wantFailures []Failure
		wantInputs   resource.PropertyMap
	}{
		{
			name:       "valid inputs are normalised with defaults",
			news:       pm(map[string]any{"name": "a"}),
			wantInputs: pm(map[string]any{"name": "a", "size": 10.0}),
		},
		{
			name:         "failures name the property",
			news:         pm(map[string]any{"size": -1.0}),
			wantFailures: []Failure{{Property: "name", Reason: "is required"}, {Property: "size", Reason: "must not be negative"}},
		},
		{
			name:         "unknown property is a failure",
			news:         pm(map[string]any{"name": "a", "colour": "red"}),
			wantFailures: []Failure{{Property: "colour", Reason: `unknown property "colour"`}},
		},
		{
			name:         "wrong type is a failure",
			news:         pm(map[string]any{"name": "a", "size": "big"}),
			wantFailures: []Failure{{Property: "size", Reason: "expected an integer, got string"}},
		},
		{
			name:       "failures on unknown values are dropped and the unknown kept",
			news:       resource.PropertyMap{"name": unknown},
			wantInputs: resource.PropertyMap{"name": unknown, "size": resource.NewNumberProperty(10)},
		},
		{
			name: "secret inputs stay secret",
			news: resource.PropertyMap{"name": resource.NewStringProperty("a"),
				"token": resource.MakeSecret(resource.NewStringProperty("t"))},
			wantInputs: resource.PropertyMap{"name": resource.NewStringProperty("a"), "size": resource.NewNumberProperty(10),
				"token": resource.MakeSecret(resource.NewStringProperty("t"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newMemServer(t)
			resp, err := s.Check(context.Background(), &pulumirpc.CheckRequest{
				Urn: memURN, Type: "secprov:test:Mem", News: marshal(t, tt.news)})
			if err != nil {
				t.Fatal(err)
			}
			var got []Failure
			for _, f := range resp.Failures {
				got = append(got, Failure{Property: f.Property, Reason: f.Reason})
			}
			if !reflect.DeepEqual(got, tt.wantFailures) {
				t.Errorf("failures = %+v, want %+v", got, tt.wantFailures)
			}
			if tt.wantInputs != nil {
				if in := unmarshalT(t, resp.Inputs); !in.DeepEquals(tt.wantInputs) {
					t.Errorf("inputs = %v, want %v", in, tt.wantInputs)
				}
			}
		})
	}
}

func TestCreateReadUpdateDelete(t *testing.T) {
	s, m := newMemServer(t)
	ctx := context.Background()
	inputs := pm(map[string]any{"name": "a", "size": 10.0, "token": "t"})
	inputs["token"] = resource.MakeSecret(inputs["token"])

	created, err := s.Create(ctx, &pulumirpc.CreateRequest{Urn: memURN, Type: "secprov:test:Mem", Properties: marshal(t, inputs)})
	if err != nil {
		t.Fatal(err)
	}
	if created.Id != "a" {
		t.Errorf("id = %q", created.Id)
	}
	outs := unmarshalT(t, created.Properties)
	if !outs["password"].IsSecret() {
		t.Errorf("output tagged secret is not secret: %v", outs["password"])
	}
	if !outs["token"].IsSecret() {
		t.Errorf("output echoing a secret input is not secret: %v", outs["token"])
	}
	if outs["created"].IsSecret() {
		t.Errorf("plain output made secret")
	}

	read, err := s.Read(ctx, &pulumirpc.ReadRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
		Properties: created.Properties, Inputs: marshal(t, inputs)})
	if err != nil {
		t.Fatal(err)
	}
	if read.Id != "a" || !unmarshalT(t, read.Inputs)["token"].IsSecret() {
		t.Errorf("read = id %q inputs %v; want id a with the token still secret", read.Id, unmarshalT(t, read.Inputs))
	}

	news := pm(map[string]any{"name": "a", "size": 20.0})
	if _, err := s.Update(ctx, &pulumirpc.UpdateRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
		Olds: created.Properties, OldInputs: marshal(t, inputs), News: marshal(t, news)}); err != nil {
		t.Fatal(err)
	}
	if m.objects["a"].Size != 20 {
		t.Errorf("update did not reach the resource type: %+v", m.objects["a"])
	}

	if _, err := s.Delete(ctx, &pulumirpc.DeleteRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
		Properties: created.Properties, OldInputs: marshal(t, news)}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Read(ctx, &pulumirpc.ReadRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
		Properties: created.Properties, Inputs: marshal(t, news)})
	if err != nil {
		t.Fatal(err)
	}
	if gone.Id != "" {
		t.Errorf("read of a deleted resource returned id %q, want empty (gone)", gone.Id)
	}
}

func TestCreateFailures(t *testing.T) {
	t.Run("nothing created: plain error", func(t *testing.T) {
		s, _ := newMemServer(t)
		_, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: memURN, Type: "secprov:test:Mem",
			Properties: marshal(t, pm(map[string]any{"name": "a", "fail": "create"}))})
		rpcErr := rpcerror.Convert(err)
		if err == nil || !strings.Contains(rpcErr.Message(), "boom before anything existed") || len(rpcErr.Details()) != 0 {
			t.Fatalf("err = %v, want the resource type's error without init-failure detail", err)
		}
	})
	t.Run("something created: initialization failed with id and outputs", func(t *testing.T) {
		s, m := newMemServer(t)
		_, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: memURN, Type: "secprov:test:Mem",
			Properties: marshal(t, pm(map[string]any{"name": "a", "fail": "create-partial"}))})
		var detail *pulumirpc.ErrorResourceInitFailed
		for _, d := range rpcerror.Convert(err).Details() {
			if d, ok := d.(*pulumirpc.ErrorResourceInitFailed); ok {
				detail = d
			}
		}
		if detail == nil {
			t.Fatalf("err = %v, want ErrorResourceInitFailed detail", err)
		}
		if detail.Id != "a" || len(detail.Reasons) != 1 || !strings.Contains(detail.Reasons[0], "failed to start it") {
			t.Errorf("detail = %v", detail)
		}
		if outs := unmarshalT(t, detail.Properties); !outs["password"].IsSecret() {
			t.Errorf("outputs in the failure detail lost their secretness: %v", outs)
		}
		if _, ok := m.objects["a"]; !ok {
			t.Errorf("the resource type did not create the object")
		}
	})
}

func TestCancelStopsOperationsInFlight(t *testing.T) {
	s, m := newMemServer(t)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: memURN, Type: "secprov:test:Mem",
			Properties: marshal(t, pm(map[string]any{"name": "a", "fail": "block"}))})
		errc <- err
	}()
	<-m.started
	if _, err := s.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if status.Code(err) != codes.Canceled {
			t.Errorf("err = %v, want code Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Create still running 10s after Cancel")
	}
}

func TestUnknownTypeIsAClearError(t *testing.T) {
	s, _ := newMemServer(t)
	_, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: memURN, Type: "secprov:test:Nope"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "secprov:test:Mem") {
		t.Errorf("err = %v, want InvalidArgument listing the served types", err)
	}
}

func TestDiffUsesReplaceTagsAndHook(t *testing.T) {
	s, _ := newMemServer(t)
	olds := marshal(t, pm(map[string]any{"name": "a", "size": 10.0}))
	for _, tt := range []struct {
		name    string
		news    resource.PropertyMap
		changes pulumirpc.DiffResponse_DiffChanges
		replace []string
	}{
		{"same", pm(map[string]any{"name": "a", "size": 10.0}), pulumirpc.DiffResponse_DIFF_NONE, nil},
		{"size updates", pm(map[string]any{"name": "a", "size": 11.0}), pulumirpc.DiffResponse_DIFF_SOME, nil},
		{"name replaces", pm(map[string]any{"name": "b", "size": 10.0}), pulumirpc.DiffResponse_DIFF_SOME, []string{"name"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
				Olds: olds, OldInputs: olds, News: marshal(t, tt.news)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Changes != tt.changes || !reflect.DeepEqual(resp.Replaces, tt.replace) {
				t.Errorf("changes=%v replaces=%v, want %v %v", resp.Changes, resp.Replaces, tt.changes, tt.replace)
			}
		})
	}

	// A hook can force replacement from what it finds in the state.
	hooked := ResourceType{
		Token:  "secprov:test:Hooked",
		Create: func(context.Context, Request) (string, resource.PropertyMap, error) { return "x", nil, nil },
		Update: func(context.Context, Request) (resource.PropertyMap, error) { return nil, nil },
		Delete: func(context.Context, Request) error { return nil },
		Diff: func(_ context.Context, req Request, d Diff) (Diff, error) {
			if req.State["broken"].IsBool() && req.State["broken"].BoolValue() {
				d.Changes = append(d.Changes, Change{Path: "broken", Kind: Update, Replace: true})
			}
			return d, nil
		},
	}
	reg, err := NewRegistry(hooked)
	if err != nil {
		t.Fatal(err)
	}
	hs := NewServer(reg, "1.0.0", nil)
	resp, err := hs.Diff(context.Background(), &pulumirpc.DiffRequest{
		Urn: "urn:pulumi:dev::secprov::secprov:test:Hooked::h", Type: "secprov:test:Hooked", Id: "x",
		Olds: marshal(t, pm(map[string]any{"broken": true})), OldInputs: marshal(t, pm(map[string]any{"a": "1"})),
		News: marshal(t, pm(map[string]any{"a": "1"}))})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Replaces, []string{"broken"}) {
		t.Errorf("hook's replacement ignored: %v", resp)
	}
}

func TestNewRegistryReportsAllProblems(t *testing.T) {
	type badTag struct {
		A string `json:"a" secprov:"replcae"`
	}
	noop := func(context.Context, TypedRequest[badTag, memOut]) error { return nil }
	_, err := NewRegistry(
		ResourceType{Token: "notsecprov:x:Y"},
		TypedResourceType[badTag, memOut]{Token: "secprov:test:Bad", Delete: noop}.ResourceType(),
		ResourceType{Token: "secprov:test:Rep", Inputs: []string{"a"}, ReplaceOnChanges: []string{"b"},
			Create: func(context.Context, Request) (string, resource.PropertyMap, error) { return "", nil, nil },
			Delete: func(context.Context, Request) error { return nil }},
	)
	if err == nil {
		t.Fatal("NewRegistry accepted invalid resource types")
	}
	for _, want := range []string{"notsecprov:x:Y", "Create is required", `unknown secprov tag option "replcae"`, `"b" is not an input property`, "Update is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestOldStateWithDroppedFieldsCanStillBeDeleted(t *testing.T) {
	s, m := newMemServer(t)
	m.objects["a"] = memIn{Name: "a"}
	old := pm(map[string]any{"name": "a", "legacyField": "from an older secprov"})
	state := pm(map[string]any{"created": "yes", "legacyOutput": 1.0})
	if _, err := s.Delete(context.Background(), &pulumirpc.DeleteRequest{Urn: memURN, Type: "secprov:test:Mem", Id: "a",
		Properties: marshal(t, state), OldInputs: marshal(t, old)}); err != nil {
		t.Fatalf("delete of a resource recorded by an older version: %v", err)
	}
	if _, ok := m.objects["a"]; ok {
		t.Errorf("not deleted")
	}
}
