package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine/provider"
)

// Res is a secprov resource declared in an inline program.
type Res struct {
	pulumi.CustomResourceState
}

// Resource declares one secprov resource in the inline program. token is
// the resource type's token (secprov:<module>:<Type>); name must be unique per
// type within the stack, and renaming means replacement.
//
// inputs is a struct (fields named by their json tags, as the resource type's input
// struct declares them), a map[string]any, or a pulumi.Map. Field values
// may be plain Go values or pulumi inputs: another resource's output
// (res.String("endpoint")) makes this resource wait for it, and
// pulumi.ToSecret(v) keeps v encrypted in the state.
//
// The resource is served by the project's secprov provider plugin: the
// engine finds it through the plugins.providers setting, with no version
// requested, so nothing is ever looked up or downloaded.
func Resource(ctx *pulumi.Context, token, name string, inputs any, opts ...pulumi.ResourceOption) (*Res, error) {
	if !strings.HasPrefix(token, provider.Package+":") {
		return nil, fmt.Errorf("resource %q: type %q is not a secprov type (secprov:<module>:<Type>)", name, token)
	}
	props, err := toInputMap(inputs)
	if err != nil {
		return nil, fmt.Errorf("resource %s %q: %w", token, name, err)
	}
	r := &Res{}
	if err := ctx.RegisterResource(token, name, props, r, opts...); err != nil {
		return nil, fmt.Errorf("declaring %s %q: %w", token, name, err)
	}
	return r, nil
}

// DependsOn orders a resource after rs even when no output links them
// (e.g. "start the apiserver after etcd is up").
func DependsOn(rs ...*Res) pulumi.ResourceOption {
	deps := make([]pulumi.Resource, len(rs))
	for i, r := range rs {
		deps[i] = r
	}
	return pulumi.DependsOn(deps)
}

// Output is the output property key of r, unknown during preview until r
// exists. Secret outputs stay secret.
func (r *Res) Output(key string) pulumi.AnyOutput {
	return pulumi.InternalGetRawOutputs(&r.ResourceState).ApplyT(func(v any) (any, error) {
		props, ok := v.(resource.PropertyMap)
		if !ok {
			return nil, fmt.Errorf("outputs of %s are %T, not a property map", r.PulumiResourceName(), v)
		}
		pv, ok := props[resource.PropertyKey(key)]
		if !ok || pv.IsNull() {
			return nil, nil
		}
		plain, unknown, err := provider.ToPlain(resource.PropertyMap{"v": pv})
		if err != nil {
			return nil, err
		}
		if len(unknown) > 0 {
			return pulumi.UnsafeUnknownOutput([]pulumi.Resource{r}), nil
		}
		if pv.ContainsSecrets() {
			return pulumi.ToSecret(plain["v"]), nil
		}
		return plain["v"], nil
	}).(pulumi.AnyOutput)
}

// String is Output(key) as a string output ("" when absent).
func (r *Res) String(key string) pulumi.StringOutput {
	return r.Output(key).ApplyT(func(v any) (string, error) {
		switch s := v.(type) {
		case nil:
			return "", nil
		case string:
			return s, nil
		default:
			return "", fmt.Errorf("output %q of %s is %T, not a string", key, r.PulumiResourceName(), v)
		}
	}).(pulumi.StringOutput)
}

// toInputMap converts the inputs argument of Resource to a pulumi.Map.
func toInputMap(inputs any) (pulumi.Map, error) {
	switch in := inputs.(type) {
	case nil:
		return pulumi.Map{}, nil
	case pulumi.Map:
		return in, nil
	case map[string]any:
		out := pulumi.Map{}
		for k, v := range in {
			pv, err := toInput(v)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", k, err)
			}
			out[k] = pv
		}
		return out, nil
	}
	v := reflect.ValueOf(inputs)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return pulumi.Map{}, nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("inputs must be a struct, map[string]any or pulumi.Map, not %T", inputs)
	}
	out := pulumi.Map{}
	if err := structInputs(v, out); err != nil {
		return nil, err
	}
	return out, nil
}

var inputType = reflect.TypeFor[pulumi.Input]()

// structInputs adds v's fields to out under their json names, flattening
// embedded structs like encoding/json does.
func structInputs(v reflect.Value, out pulumi.Map) error {
	t := v.Type()
	var errs []error
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			for fv.Kind() == reflect.Pointer && !fv.IsNil() {
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if err := structInputs(fv, out); err != nil {
					errs = append(errs, err)
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omitempty := strings.Contains(","+opts+",", ",omitempty,")
		if f.Type.Implements(inputType) {
			switch fv.Kind() {
			case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Slice:
				if fv.IsNil() {
					continue
				}
			}
			out[name] = fv.Interface().(pulumi.Input)
			continue
		}
		if omitempty && fv.IsZero() {
			continue
		}
		pv, err := toInput(fv.Interface())
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", f.Name, err))
			continue
		}
		out[name] = pv
	}
	return errors.Join(errs...)
}

// toInput keeps pulumi inputs as they are and turns plain values into
// JSON-shaped data, the same shape the provider decodes with its structs.
func toInput(v any) (pulumi.Input, error) {
	if in, ok := v.(pulumi.Input); ok {
		return in, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var plain any
	if err := json.Unmarshal(b, &plain); err != nil {
		return nil, err
	}
	return pulumi.Any(plain), nil
}
