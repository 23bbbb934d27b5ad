package provider

import (
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// ChangeKind says how one property changed.
type ChangeKind int

const (
	Update ChangeKind = iota // value changed
	Add                      // property appeared
	Delete                   // property disappeared
)

func (k ChangeKind) String() string {
	switch k {
	case Add:
		return "add"
	case Delete:
		return "delete"
	default:
		return "update"
	}
}

// Change is one changed property.
type Change struct {
	// Path is the property path in Pulumi syntax: "content",
	// "flags.auditLog", `labels["app.kubernetes.io/name"]`, "args[2]".
	Path string
	Kind ChangeKind
	// Replace is true when this change forces replacement.
	Replace bool
}

// Diff is the difference between a resource's recorded inputs and its new
// ones, property by property, sorted by path.
type Diff struct {
	Changes []Change
}

// Changed reports whether anything changed.
func (d Diff) Changed() bool { return len(d.Changes) > 0 }

// Replaces reports whether any change forces replacement.
func (d Diff) Replaces() bool {
	for _, c := range d.Changes {
		if c.Replace {
			return true
		}
	}
	return false
}

// Paths lists the changed property paths.
func (d Diff) Paths() []string {
	out := make([]string, len(d.Changes))
	for i, c := range d.Changes {
		out[i] = c.Path
	}
	return out
}

// ComputeDiff compares old and new inputs. Nested objects are compared key
// by key and arrays of equal length element by element, so the plan can
// name the exact field; an array whose length changed is one change. Null
// and absent are the same. An unknown new value (preview, depends on a
// resource not created yet) counts as a change. A value that only became
// (or stopped being) secret is an in-place update, never a replacement.
// A change replaces when one of replaceOnChanges contains its path.
func ComputeDiff(olds, news resource.PropertyMap, replaceOnChanges []string) Diff {
	var replacePaths []resource.PropertyPath
	for _, p := range replaceOnChanges {
		if path, err := resource.ParsePropertyPath(p); err == nil {
			replacePaths = append(replacePaths, path)
		}
	}
	var d Diff
	var walk func(path resource.PropertyPath, o, n resource.PropertyValue, oOK, nOK bool)
	emit := func(path resource.PropertyPath, kind ChangeKind, secretOnly bool) {
		replace := false
		if !secretOnly {
			for _, rp := range replacePaths {
				// A change replaces if it is inside a replace path, or if it
				// contains one (a whole object swapped out).
				if rp.Contains(path) || path.Contains(rp) {
					replace = true
					break
				}
			}
		}
		d.Changes = append(d.Changes, Change{Path: path.String(), Kind: kind, Replace: replace})
	}
	walk = func(path resource.PropertyPath, o, n resource.PropertyValue, oOK, nOK bool) {
		oOK = oOK && !o.IsNull()
		nOK = nOK && !n.IsNull()
		switch {
		case !oOK && !nOK:
			return
		case !oOK:
			emit(path, Add, false)
			return
		case !nOK:
			emit(path, Delete, false)
			return
		}
		if n.ContainsUnknowns() {
			// Unknown inside an object: recurse to blame the right field.
			if o.IsObject() && n.IsObject() {
				walkObjects(path, o.ObjectValue(), n.ObjectValue(), walk)
				return
			}
			emit(path, Update, false)
			return
		}
		oSecret, nSecret := o.IsSecret(), n.IsSecret()
		ov, nv := unwrapSecret(o), unwrapSecret(n)
		if oSecret != nSecret && ov.DeepEquals(nv) {
			emit(path, Update, true)
			return
		}
		switch {
		case ov.IsObject() && nv.IsObject():
			walkObjects(path, ov.ObjectValue(), nv.ObjectValue(), walk)
		case ov.IsArray() && nv.IsArray() && len(ov.ArrayValue()) == len(nv.ArrayValue()):
			oa, na := ov.ArrayValue(), nv.ArrayValue()
			for i := range oa {
				walk(appendPath(path, i), oa[i], na[i], true, true)
			}
		default:
			if !ov.DeepEquals(nv) {
				emit(path, Update, false)
			}
		}
	}
	walkObjects(nil, olds, news, walk)
	sort.Slice(d.Changes, func(i, j int) bool { return d.Changes[i].Path < d.Changes[j].Path })
	return d
}

func walkObjects(path resource.PropertyPath, o, n resource.PropertyMap,
	walk func(resource.PropertyPath, resource.PropertyValue, resource.PropertyValue, bool, bool),
) {
	keys := map[resource.PropertyKey]struct{}{}
	for k := range o {
		keys[k] = struct{}{}
	}
	for k := range n {
		keys[k] = struct{}{}
	}
	for k := range keys {
		ov, oOK := o[k]
		nv, nOK := n[k]
		walk(appendPath(path, string(k)), ov, nv, oOK, nOK)
	}
}

// appendPath copies path so sibling branches never share a backing array.
func appendPath(path resource.PropertyPath, elem any) resource.PropertyPath {
	out := make(resource.PropertyPath, len(path), len(path)+1)
	copy(out, path)
	return append(out, elem)
}

func unwrapSecret(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput() && v.OutputValue().Known:
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}
