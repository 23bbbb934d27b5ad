package blueprints

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decoder maps a YAML node tree onto the typed blueprint strictly, recording
// the position of every field it sees and collecting every problem instead
// of stopping at the first.
type decoder struct {
	file    string
	pos     map[string]Pos
	errs    ErrorList
	budget  int // nodes left to visit; aliases count each time they expand
	aborted bool
	// alias is the outermost alias being expanded, if any: what is found
	// inside an aliased value is reported where the alias is used (that is
	// where the field is), naming the anchor it came from.
	alias *yaml.Node
	// anchor is the node alias points at.
	anchor *yaml.Node
}

// at returns where a problem at n is reported, and what to add to its
// message.
func (d *decoder) at(n *yaml.Node) (Pos, string) {
	if d.alias == nil {
		return Pos{n.Line, n.Column}, ""
	}
	return Pos{d.alias.Line, d.alias.Column}, fmt.Sprintf(" (in the value of alias *%s: anchor &%s at line %d, column %d; the problem is at line %d, column %d)",
		d.alias.Value, d.anchor.Anchor, d.anchor.Line, d.anchor.Column, n.Line, n.Column)
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

const maxDepth = 64

// maxErrors caps the errors reported per document: past it, more lines
// only bury the first, most useful ones.
const maxErrors = 50

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	pos, via := d.at(n)
	if len(d.errs) == maxErrors {
		d.aborted = true
		d.errs = append(d.errs, &Error{File: d.file, Pos: pos, Path: path, Message: "too many problems; fix the ones above first (more errors not shown)"})
		return
	}
	if len(d.errs) > maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Pos: pos, Path: path, Message: fmt.Sprintf(format, args...) + via})
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if d.aborted {
		return
	}
	d.budget--
	if d.budget < 0 || depth > maxDepth {
		d.aborted = true
		d.errorf(n, path, "document is too large or too deeply nested after expanding aliases; a blueprint needs neither (is this an alias bomb?)")
		return
	}
	if n.Kind == yaml.AliasNode && d.alias == nil {
		d.alias = n
		defer func() { d.alias, d.anchor = nil, nil }()
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unknown alias *%s", n.Value)
			return
		}
		n = n.Alias
		if d.anchor == nil {
			d.anchor = n
		}
		d.budget--
	}
	if path != "" {
		d.pos[path], _ = d.at(n)
	}
	if isNull(n) {
		return // null leaves the zero value; defaults apply later
	}
	if t := n.ShortTag(); n.Tag != "" && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(t, "!!") {
		d.errorf(n, path, "custom YAML tag %q is not supported", n.Tag)
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path, depth+1)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Map:
		d.decodeMap(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.errorf(n, path, "expected a string, got %s%s", describe(n), quoteHint(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind == yaml.ScalarNode && integerText.MatchString(n.Value) && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") &&
			(n.ShortTag() == "!!float" || n.Decode(&i) != nil || i > math.MaxInt32 || i < math.MinInt32) {
			// Too large for the field (the YAML library calls integers past
			// 64 bits floats): say what is allowed.
			if lo, hi, ok := IntRange(path); ok {
				d.errorf(n, path, "integer %s is out of range; use %d to %d", truncate(n.Value), lo, hi)
			} else {
				d.errorf(n, path, "integer %s is out of range", truncate(n.Value))
			}
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		// Only reachable if a new field type is added without support here.
		d.errorf(n, path, "internal error: unsupported field type %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		idx, ok := fields.byName[name]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", name)
			if s := suggest(name, fields.names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += fmt.Sprintf("; known fields: %s", strings.Join(fields.names, ", "))
			}
			d.errorf(k, joinPath(path, name), "%s", msg)
			continue
		}
		d.decode(val, v.Field(idx), joinPath(path, name), depth+1)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, mapPath(path, name), depth+1)
		m.SetMapIndex(reflect.ValueOf(name), elem)
	}
	v.Set(m)
}

// key validates a mapping key: a plain string, not a merge key, not seen
// before in this mapping.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]*yaml.Node) (string, bool) {
	d.budget--
	if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && k.ShortTag() != "!!int" && k.ShortTag() != "!!bool") {
		if k.ShortTag() == "!!merge" {
			d.errorf(k, path, "YAML merge keys (<<) are not supported in blueprints; write the fields out")
		} else {
			d.errorf(k, path, "mapping keys must be strings, got %s", describe(k))
		}
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.errorf(k, joinPath(path, k.Value), "duplicate key %q (first defined at line %d, column %d)", k.Value, first.Line, first.Column)
		return "", false
	}
	seen[k.Value] = k
	return k.Value, true
}

type structFields struct {
	byName map[string]int
	names  []string
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: map[string]int{}}
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		f.byName[name] = i
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", truncate(n.Value))
		case "!!int":
			return "the integer " + truncate(n.Value)
		case "!!float":
			return "the number " + truncate(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("a %s value", n.ShortTag())
		}
	}
	return "nothing"
}

func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!str" {
		return fmt.Sprintf(` (quote it: "%s")`, truncate(n.Value))
	}
	return ""
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// integerText is a decimal integer as written, of any size.
var integerText = regexp.MustCompile(`^[-+]?[0-9]+$`)

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// mapPath appends a map key: dotted when it is a simple word, else
// bracketed and quoted (label keys contain dots and slashes).
func mapPath(path, key string) string {
	if simpleKey.MatchString(key) {
		return joinPath(path, key)
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

// suggest returns the known name closest to name, if it is close enough to
// be a typo (case-insensitive match or edit distance ≤ 2).
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
		if dist := editDistance(strings.ToLower(name), strings.ToLower(k)); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
