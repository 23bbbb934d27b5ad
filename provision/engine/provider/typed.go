package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// TypedRequest is Request with inputs and state decoded into the resource
// type's structs I (inputs) and O (outputs).
type TypedRequest[I, O any] struct {
	URN  string
	Name string
	ID   string // empty for Create

	Inputs    I // new inputs (Create, Update); current inputs (Read, Delete)
	OldInputs I // previous inputs (Update)
	State     O // last known outputs (Read, Update, Delete)

	Log *slog.Logger
}

// TypedResourceType describes a resource type over Go structs: I holds the
// inputs, O the outputs. Both map to properties through their `json` tags (so
// nested structs, slices and maps work as in encoding/json). Top-level fields
// take options in a `secprov` tag:
//
//	Path    string `json:"path" secprov:"replace"` // a change replaces the resource
//	Token   string `json:"token" secprov:"secret"` // (outputs) encrypted in the state
//
// Secret inputs arrive decrypted; I is never stored by the framework, the
// engine keeps the inputs as the program gave them (secrets encrypted).
type TypedResourceType[I, O any] struct {
	Token string
	// ReplaceOnChanges adds nested replace paths ("spec.port") to the ones
	// the struct tags declare.
	ReplaceOnChanges    []string
	DeleteBeforeReplace bool

	// Check validates and may normalise *in (fill defaults). Fields that
	// are unknown during preview hold zero values; failures on them are
	// dropped, so Check can validate naively. Optional.
	Check func(ctx context.Context, in *I) []Failure
	// Diff is an optional hook over the computed diff. During preview,
	// inputs that are not known yet hold zero values (the computed diff
	// already counts them as changed).
	Diff   func(ctx context.Context, req TypedRequest[I, O], computed Diff) (Diff, error)
	Create func(ctx context.Context, req TypedRequest[I, O]) (id string, out O, err error)
	// Read returns the inputs and outputs observed, and exists=false if the
	// resource is gone. Optional.
	Read   func(ctx context.Context, req TypedRequest[I, O]) (in I, out O, exists bool, err error)
	Update func(ctx context.Context, req TypedRequest[I, O]) (O, error)
	Delete func(ctx context.Context, req TypedRequest[I, O]) error
}

// ResourceType converts t into an untyped ResourceType; errors in the
// structs' tags are reported by NewRegistry (they are programming errors,
// found at startup).
func (t TypedResourceType[I, O]) ResourceType() ResourceType {
	inFields, inErr := structFields(reflect.TypeFor[I]())
	outFields, outErr := structFields(reflect.TypeFor[O]())
	k := ResourceType{
		Token:               t.Token,
		DeleteBeforeReplace: t.DeleteBeforeReplace,
	}
	if err := errors.Join(inErr, outErr); err != nil {
		k.invalid = fmt.Errorf("struct tags: %w", err)
		return k
	}
	for _, f := range inFields {
		k.Inputs = append(k.Inputs, f.name)
		if f.replace {
			k.ReplaceOnChanges = append(k.ReplaceOnChanges, f.name)
		}
		if f.secret {
			k.invalid = fmt.Errorf("input %q: secret is an output tag; mark the value secret in the program instead", f.name)
			return k
		}
	}
	k.ReplaceOnChanges = append(k.ReplaceOnChanges, t.ReplaceOnChanges...)

	// Outside Check, properties the structs don't know are ignored: state
	// written by an older secprov may hold fields this one dropped, and
	// Delete must still work on it. (New inputs have passed Check, which
	// rejects unknown properties.)
	lenient := func(props resource.PropertyMap, fields []field, dst any) error {
		known := resource.PropertyMap{}
		for _, f := range fields {
			if v, ok := props[resource.PropertyKey(f.name)]; ok {
				known[resource.PropertyKey(f.name)] = v
			}
		}
		_, failures, err := decodeInto(known, fields, dst)
		if err == nil && len(failures) > 0 {
			err = failureError(failures)
		}
		return err
	}
	decodeIn := func(props resource.PropertyMap) (I, error) {
		var in I
		return in, lenient(props, inFields, &in)
	}
	decodeOut := func(props resource.PropertyMap) (O, error) {
		var out O
		return out, lenient(props, outFields, &out)
	}
	typed := func(req Request, withOld bool) (TypedRequest[I, O], error) {
		tr := TypedRequest[I, O]{URN: req.URN, Name: req.Name, ID: req.ID, Log: req.Log}
		var errs []error
		var err error
		if tr.Inputs, err = decodeIn(req.Inputs); err != nil {
			errs = append(errs, fmt.Errorf("inputs: %w", err))
		}
		if withOld {
			if tr.OldInputs, err = decodeIn(req.OldInputs); err != nil {
				errs = append(errs, fmt.Errorf("old inputs: %w", err))
			}
		}
		if req.State != nil {
			if tr.State, err = decodeOut(req.State); err != nil {
				errs = append(errs, fmt.Errorf("state: %w", err))
			}
		}
		return tr, errors.Join(errs...)
	}

	k.Check = func(ctx context.Context, news resource.PropertyMap) (resource.PropertyMap, []Failure, error) {
		var in I
		unknown, failures, err := decodeInto(news, inFields, &in)
		if err != nil || len(failures) > 0 {
			return news, failures, err
		}
		if t.Check != nil {
			failures = append(failures, t.Check(ctx, &in)...)
		}
		failures = dropUnknownFailures(failures, unknown)
		if len(failures) > 0 {
			return news, failures, nil
		}
		norm, err := encode(in, nil)
		if err != nil {
			return nil, nil, err
		}
		// Keep what the program sent where the struct can't: unknown values
		// (preview) and secretness.
		for k, v := range news {
			switch {
			case v.ContainsUnknowns():
				norm[k] = v
			case v.IsSecret() || v.ContainsSecrets():
				if nv, ok := norm[k]; ok && !nv.IsNull() {
					norm[k] = resource.MakeSecret(nv)
				}
			}
		}
		for k, v := range norm {
			if v.IsNull() {
				delete(norm, k) // absent and null are the same; keep the state tidy
			}
		}
		return norm, nil, nil
	}
	if t.Diff != nil {
		k.Diff = func(ctx context.Context, req Request, computed Diff) (Diff, error) {
			tr, err := typed(req, true)
			if err != nil {
				return computed, err
			}
			return t.Diff(ctx, tr, computed)
		}
	}
	if t.Create != nil {
		k.Create = func(ctx context.Context, req Request) (string, resource.PropertyMap, error) {
			tr, err := typed(req, false)
			if err != nil {
				return "", nil, err
			}
			id, out, cerr := t.Create(ctx, tr)
			props, err := encode(out, outFields)
			if err != nil {
				return id, nil, errors.Join(cerr, fmt.Errorf("encoding outputs: %w", err))
			}
			return id, props, cerr
		}
	}
	if t.Read != nil {
		k.Read = func(ctx context.Context, req Request) (ReadResult, error) {
			tr, err := typed(req, false)
			if err != nil {
				return ReadResult{}, err
			}
			in, out, exists, err := t.Read(ctx, tr)
			if err != nil || !exists {
				return ReadResult{Exists: false}, err
			}
			inProps, err := encode(in, nil)
			if err != nil {
				return ReadResult{}, fmt.Errorf("encoding inputs: %w", err)
			}
			// Secret inputs stay secret in what we hand back.
			for k, v := range req.Inputs {
				if nv, ok := inProps[k]; ok && v.ContainsSecrets() && !nv.IsNull() {
					inProps[k] = resource.MakeSecret(nv)
				}
			}
			for k, v := range inProps {
				if v.IsNull() {
					delete(inProps, k)
				}
			}
			outProps, err := encode(out, outFields)
			if err != nil {
				return ReadResult{}, fmt.Errorf("encoding outputs: %w", err)
			}
			return ReadResult{Exists: true, Inputs: inProps, Outputs: outProps}, nil
		}
	}
	if t.Update != nil {
		k.Update = func(ctx context.Context, req Request) (resource.PropertyMap, error) {
			tr, err := typed(req, true)
			if err != nil {
				return nil, err
			}
			out, uerr := t.Update(ctx, tr)
			if uerr != nil {
				return nil, uerr
			}
			return encode(out, outFields)
		}
	}
	if t.Delete != nil {
		k.Delete = func(ctx context.Context, req Request) error {
			tr, err := typed(req, false)
			if err != nil {
				return err
			}
			return t.Delete(ctx, tr)
		}
	}
	return k
}

// dropUnknownFailures removes failures about properties whose value is not
// known yet: they will be checked again once it is.
func dropUnknownFailures(failures []Failure, unknown []resource.PropertyPath) []Failure {
	if len(unknown) == 0 {
		return failures
	}
	out := failures[:0]
	for _, f := range failures {
		p, err := resource.ParsePropertyPath(f.Property)
		drop := false
		if err == nil && len(p) > 0 {
			for _, u := range unknown {
				if u.Contains(p) || p.Contains(u) {
					drop = true
					break
				}
			}
		}
		if !drop {
			out = append(out, f)
		}
	}
	return out
}

func failureError(failures []Failure) error {
	errs := make([]error, len(failures))
	for i, f := range failures {
		if f.Property == "" {
			errs[i] = errors.New(f.Reason)
		} else {
			errs[i] = fmt.Errorf("property %s: %s", f.Property, f.Reason)
		}
	}
	return errors.Join(errs...)
}
