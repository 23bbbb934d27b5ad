package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// ToPlain turns a property map into plain Go values (nil, bool, float64,
// string, []any, map[string]any) with secrets unwrapped, for a resource type to
// read. Unknown values become nil; their paths are returned so callers can tell
// "unknown yet" from "not set". Assets, archives and resource references are
// not used by secprov and are rejected.
func ToPlain(props resource.PropertyMap) (map[string]any, []resource.PropertyPath, error) {
	var unknown []resource.PropertyPath
	var errs []error
	var conv func(path resource.PropertyPath, v resource.PropertyValue) any
	conv = func(path resource.PropertyPath, v resource.PropertyValue) any {
		switch {
		case v.IsNull():
			return nil
		case v.IsComputed(), v.IsOutput() && !v.OutputValue().Known:
			unknown = append(unknown, path)
			return nil
		case v.IsOutput():
			return conv(path, v.OutputValue().Element)
		case v.IsSecret():
			return conv(path, v.SecretValue().Element)
		case v.IsBool():
			return v.BoolValue()
		case v.IsNumber():
			return v.NumberValue()
		case v.IsString():
			return v.StringValue()
		case v.IsArray():
			arr := v.ArrayValue()
			out := make([]any, len(arr))
			for i, e := range arr {
				out[i] = conv(appendPath(path, i), e)
			}
			return out
		case v.IsObject():
			obj := v.ObjectValue()
			out := make(map[string]any, len(obj))
			for k, e := range obj {
				out[string(k)] = conv(appendPath(path, string(k)), e)
			}
			return out
		default:
			errs = append(errs, fmt.Errorf("property %s: %s values are not supported by secprov resources",
				path, v.TypeString()))
			return nil
		}
	}
	out := make(map[string]any, len(props))
	for k, v := range props {
		out[string(k)] = conv(resource.PropertyPath{string(k)}, v)
	}
	return out, unknown, errors.Join(errs...)
}

// FromPlain is the inverse of ToPlain for values a resource type produces.
// Anything encoding/json can marshal is accepted (structs via their json tags).
func FromPlain(v any) (resource.PropertyMap, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%T does not encode to an object: %w", v, err)
	}
	return resource.NewPropertyMapFromMap(m), nil
}

// field describes one top-level property of a typed resource type's struct.
type field struct {
	name    string
	replace bool // `secprov:"replace"`: a change forces replacement
	secret  bool // `secprov:"secret"`: stored encrypted in the state
}

// structFields reads the json names and secprov options of t's fields
// (embedded structs without a json name are flattened, as encoding/json
// does).
func structFields(t reflect.Type) ([]field, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	var out []field
	var errs []error
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" && tag == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			inner, err := structFields(f.Type)
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, inner...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fd := field{name: name}
		if opts := f.Tag.Get("secprov"); opts != "" {
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "replace":
					fd.replace = true
				case "secret":
					fd.secret = true
				default:
					errs = append(errs, fmt.Errorf("%s.%s: unknown secprov tag option %q (use replace, secret)", t, f.Name, o))
				}
			}
		}
		out = append(out, fd)
	}
	return out, errors.Join(errs...)
}

// decodeInto decodes props into *dst (a struct) through their json tags.
// Type mismatches and unknown properties come back as Failures naming the
// property, so Check can report them to the user.
func decodeInto(props resource.PropertyMap, fields []field, dst any) ([]resource.PropertyPath, []Failure, error) {
	plain, unknown, err := ToPlain(props)
	if err != nil {
		return nil, nil, err
	}
	var failures []Failure
	for k := range plain {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.name == k }) {
			failures = append(failures, Failure{Property: k, Reason: fmt.Sprintf("unknown property %q", k)})
			delete(plain, k)
		}
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			failures = append(failures, Failure{Property: te.Field,
				Reason: fmt.Sprintf("expected %s, got %s", typeName(te.Type), te.Value)})
			return unknown, failures, nil
		}
		return nil, nil, err
	}
	return unknown, failures, nil
}

// encode turns a typed struct into a property map and marks secret fields.
func encode(v any, fields []field) (resource.PropertyMap, error) {
	props, err := FromPlain(v)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		if f.secret {
			if pv, ok := props[resource.PropertyKey(f.name)]; ok && !pv.IsNull() {
				props[resource.PropertyKey(f.name)] = resource.MakeSecret(pv)
			}
		}
	}
	return props, nil
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return t.String()
	}
}
