// Package blueprints loads, defaults and validates secprov blueprints and
// reviews them. Loading is strict: unknown fields, wrong types, duplicate
// keys, bad YAML and unknown apiVersion/kind are errors that carry
// file:line:column and the field path, and every problem in a file is
// reported together.
package blueprints

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"go.yaml.in/yaml/v3"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Blueprint is a loaded, defaulted and validated blueprint together with
// where it came from, so findings can point at the right line.
type Blueprint struct {
	v1alpha1.Blueprint
	Source Source
}

// Source locates a blueprint and its fields.
type Source struct {
	File string // path as given to the loader
	Doc  int    // 0-based index of the YAML document in File
	Pos  Pos    // start of the document
	pos  map[string]Pos
	sum  [sha256.Size]byte
}

// Digest is the SHA-256 of the whole file the blueprint was loaded from.
// Loading is deterministic, so bytes with this digest, loaded under the
// same file name, give the same blueprints: a caller holding them again
// (such as review --base, for a file unchanged since the base revision)
// can reuse the blueprints instead of parsing the bytes twice.
func (s *Source) Digest() [sha256.Size]byte { return s.sum }

// PosOf returns the position of the field at path, or of its nearest
// ancestor written in the file when the field was defaulted.
func (b *Blueprint) PosOf(path string) Pos {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := b.Source.pos[p]; ok {
			return pos
		}
	}
	return b.Source.Pos
}

// HasField reports whether path was written in the file (not defaulted).
func (b *Blueprint) HasField(path string) bool {
	_, ok := b.Source.pos[path]
	return ok
}

// Name is the cluster name.
func (b *Blueprint) Name() string { return b.Metadata.Name }

// Limits bound what the loader accepts, so hostile input fails fast.
type Limits struct {
	MaxFileBytes int64 // larger files are refused before parsing
	MaxDocuments int   // YAML documents per file
	MaxNodes     int   // YAML nodes visited per document, aliases expanded
}

// DefaultLimits are generous for hand-written blueprints (a real one is a
// few KiB and a few hundred nodes) and small enough to stop alias bombs.
var DefaultLimits = Limits{MaxFileBytes: 1 << 20, MaxDocuments: 256, MaxNodes: 50_000}

// Loader loads blueprints with the given limits.
type Loader struct {
	Limits Limits
}

// Load reads the given files and directories (non-recursively; *.yaml and
// *.yml, hidden files skipped). It returns every blueprint that loaded
// cleanly and an ErrorList with every problem found; both may be non-empty.
func Load(paths ...string) ([]*Blueprint, error) {
	return Loader{Limits: DefaultLimits}.Load(paths...)
}

// LoadBytes loads blueprints from data as if read from file.
func LoadBytes(file string, data []byte) ([]*Blueprint, error) {
	return Loader{Limits: DefaultLimits}.LoadBytes(file, data)
}

// Load is the package-level Load with l's limits.
func (l Loader) Load(paths ...string) ([]*Blueprint, error) {
	var (
		out  []*Blueprint
		errs ErrorList
	)
	files, ferrs := expandPaths(paths)
	errs = append(errs, ferrs...)
	seen := map[fileID]string{}
	for _, f := range files {
		data, id, err := readCandidate(f, l.Limits.MaxFileBytes)
		if err != nil {
			errs = append(errs, &Error{File: f.path, Message: err.Error()})
			continue
		}
		if id != (fileID{}) {
			if _, dup := seen[id]; dup {
				continue // the same file reached by another path: read once
			}
			seen[id] = f.path
		}
		bps, err := l.LoadBytes(f.path, data)
		out = append(out, bps...)
		var el ErrorList
		if errors.As(err, &el) {
			errs = append(errs, el...)
		} else if err != nil {
			errs = append(errs, &Error{File: f.path, Message: err.Error()})
		}
	}
	return out, errs.orNil()
}

// LoadBytes is the package-level LoadBytes with l's limits.
//
// The file is split into YAML documents at document markers before it is
// parsed, so a syntax error in one document is reported and the documents
// after it are still loaded (a YAML parser cannot resume by itself). That
// split is exact: a line starting with "---" or "..." ends any scalar or
// collection before it (YAML's c-forbidden). Each document is parsed on
// its own, so anchors never reach across documents, as the spec requires.
func (l Loader) LoadBytes(file string, data []byte) ([]*Blueprint, error) {
	var errs ErrorList
	if l.Limits.MaxFileBytes > 0 && int64(len(data)) > l.Limits.MaxFileBytes {
		errs = append(errs, &Error{File: file, Message: fmt.Sprintf("file has %d bytes, more than the %d-byte limit for blueprints", len(data), l.Limits.MaxFileBytes)})
		return nil, errs.orNil()
	}
	if err := checkEncoding(file, data); err != nil {
		return nil, ErrorList{err}.orNil()
	}
	var out []*Blueprint
	sum := sha256.Sum256(data)
	doc, docs := 0, 0
	for _, ch := range splitDocuments(data) {
		if bad := checkCharacters(file, ch); bad != nil {
			errs = append(errs, bad)
			doc++
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(ch.data))
		for ; ; doc++ {
			var root yaml.Node
			err := dec.Decode(&root)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				errs = append(errs, syntaxError(file, ch.line-1, err, ch.data))
				doc++
				break
			}
			shiftLines(&root, ch.line-1)
			if l.Limits.MaxDocuments > 0 && doc >= l.Limits.MaxDocuments {
				errs = append(errs, &Error{File: file, Pos: Pos{max(root.Line, 1), max(root.Column, 1)}, Message: fmt.Sprintf("more than %d YAML documents in one file", l.Limits.MaxDocuments)})
				return out, errs.orNil()
			}
			if len(root.Content) == 0 || isNull(root.Content[0]) {
				continue // empty document, e.g. a trailing "---"
			}
			docs++
			bp, derrs := l.decodeDocument(file, doc, root.Content[0])
			errs = append(errs, derrs...)
			if bp != nil && len(derrs) == 0 {
				bp.Source.sum = sum
				out = append(out, bp)
			}
		}
	}
	if docs == 0 && len(errs) == 0 {
		// An emptied prod.yaml must not pass review while up refuses it.
		errs = append(errs, &Error{File: file, Pos: Pos{1, 1}, Message: "holds no blueprint (the file is empty, or only comments or null); write a blueprint (see secprov init) or delete the file"})
	}
	return out, errs.orNil()
}

func (l Loader) decodeDocument(file string, doc int, n *yaml.Node) (*Blueprint, ErrorList) {
	start := Pos{n.Line, n.Column}
	d := &decoder{file: file, pos: map[string]Pos{}, budget: l.Limits.MaxNodes}
	if d.budget <= 0 {
		d.budget = DefaultLimits.MaxNodes
	}
	if n.Kind != yaml.MappingNode {
		return nil, ErrorList{{File: file, Pos: start, Message: fmt.Sprintf("a blueprint must be a mapping with apiVersion, kind, metadata and spec; got %s", describe(n))}}
	}
	// Check apiVersion and kind first: without them the schema is unknown
	// and field errors would only confuse.
	var typeErrs ErrorList
	apiVersion, kind := scalarField(n, "apiVersion"), scalarField(n, "kind")
	switch {
	case apiVersion == nil:
		typeErrs = append(typeErrs, &Error{File: file, Pos: start, Path: "apiVersion", Message: fmt.Sprintf("missing; set apiVersion: %s", v1alpha1.APIVersion)})
	case apiVersion.Value != v1alpha1.APIVersion:
		typeErrs = append(typeErrs, &Error{File: file, Pos: Pos{apiVersion.Line, apiVersion.Column}, Path: "apiVersion", Message: fmt.Sprintf("unknown apiVersion %q; supported: %s", apiVersion.Value, v1alpha1.APIVersion)})
	}
	switch {
	case kind == nil:
		typeErrs = append(typeErrs, &Error{File: file, Pos: start, Path: "kind", Message: fmt.Sprintf("missing; set kind: %s", v1alpha1.Kind)})
	case kind.Value != v1alpha1.Kind:
		typeErrs = append(typeErrs, &Error{File: file, Pos: Pos{kind.Line, kind.Column}, Path: "kind", Message: fmt.Sprintf("unknown kind %q; supported: %s", kind.Value, v1alpha1.Kind)})
	}
	if len(typeErrs) > 0 {
		return nil, typeErrs
	}

	bp := &Blueprint{Source: Source{File: file, Doc: doc, Pos: start}}
	d.decode(n, reflectValue(&bp.Blueprint), "", 0)
	bp.Source.pos = d.pos
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	v1alpha1.SetDefaults(&bp.Blueprint)
	canonicalize(bp)
	if errs := validate(bp); len(errs) > 0 {
		return nil, errs
	}
	return bp, nil
}

// scalarField returns the scalar value of key in mapping m, through an
// alias if the value is one.
func scalarField(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		for hops := 0; v.Kind == yaml.AliasNode && v.Alias != nil && hops < 8; hops++ {
			v = v.Alias
		}
		if v.Kind == yaml.ScalarNode {
			return v
		}
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckUniqueNames rejects two blueprints for the same cluster: each
// blueprint is one cluster, so a repeated name would make one overwrite the
// other. Loading allows duplicates so that review can report them as a
// finding (SP-ISO-001); commands that create clusters call this.
func CheckUniqueNames(bps []*Blueprint) error {
	var errs ErrorList
	seen := map[string]*Blueprint{}
	for _, b := range bps {
		if first, ok := seen[b.Name()]; ok {
			p := b.PosOf("metadata.name")
			errs = append(errs, &Error{File: b.Source.File, Pos: p, Path: "metadata.name",
				Message: fmt.Sprintf("cluster name %q is already used by the blueprint at %s:%d:%d; every blueprint needs its own cluster name", b.Name(), first.Source.File, first.PosOf("metadata.name").Line, first.PosOf("metadata.name").Column)})
			continue
		}
		seen[b.Name()] = b
	}
	return errs.orNil()
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return ""
}
