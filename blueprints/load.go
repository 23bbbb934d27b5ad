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
	"os"
	"path/filepath"
	"slices"
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
	for _, f := range files {
		data, err := readLimited(f, l.Limits.MaxFileBytes)
		if err != nil {
			errs = append(errs, &Error{File: f, Message: err.Error()})
			continue
		}
		bps, err := l.LoadBytes(f, data)
		out = append(out, bps...)
		var el ErrorList
		if errors.As(err, &el) {
			errs = append(errs, el...)
		} else if err != nil {
			errs = append(errs, &Error{File: f, Message: err.Error()})
		}
	}
	return out, errs.orNil()
}

// LoadBytes is the package-level LoadBytes with l's limits.
func (l Loader) LoadBytes(file string, data []byte) ([]*Blueprint, error) {
	var errs ErrorList
	if l.Limits.MaxFileBytes > 0 && int64(len(data)) > l.Limits.MaxFileBytes {
		errs = append(errs, &Error{File: file, Message: fmt.Sprintf("file has %d bytes, more than the %d-byte limit for blueprints", len(data), l.Limits.MaxFileBytes)})
		return nil, errs.orNil()
	}
	var out []*Blueprint
	sum := sha256.Sum256(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 0; ; doc++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(file, err))
			break
		}
		if l.Limits.MaxDocuments > 0 && doc >= l.Limits.MaxDocuments {
			errs = append(errs, &Error{File: file, Pos: Pos{root.Line, root.Column}, Message: fmt.Sprintf("more than %d YAML documents in one file", l.Limits.MaxDocuments)})
			break
		}
		if len(root.Content) == 0 || isNull(root.Content[0]) {
			continue // empty document, e.g. a trailing "---"
		}
		bp, derrs := l.decodeDocument(file, doc, root.Content[0])
		errs = append(errs, derrs...)
		if bp != nil && len(derrs) == 0 {
			bp.Source.sum = sum
			out = append(out, bp)
		}
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
	if errs := validate(bp); len(errs) > 0 {
		return nil, errs
	}
	return bp, nil
}

func scalarField(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1]
		}
	}
	return nil
}

func syntaxError(file string, err error) *Error {
	msg := err.Error()
	line := 0
	// yaml reports "yaml: line N: problem" without a column.
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if num, prob, ok := strings.Cut(rest, ": "); ok {
			if _, scanErr := fmt.Sscanf(num, "%d", &line); scanErr == nil {
				msg = prob
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	// The YAML parser (unlike its scanner) reports 0-based lines: the line
	// where the enclosing construct started. Convert to 1-based.
	if isParserProblem(msg) || line == 0 {
		line++
	}
	return &Error{File: file, Pos: Pos{Line: line, Column: 1}, Message: "invalid YAML: " + msg}
}

func isParserProblem(msg string) bool {
	return strings.HasPrefix(msg, "did not find expected") ||
		strings.HasPrefix(msg, "found duplicate %") ||
		msg == "found incompatible YAML document" || msg == "found undefined tag handle"
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	defer f.Close()
	if limit <= 0 {
		limit = DefaultLimits.MaxFileBytes
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is larger than the %d-byte limit for blueprints", limit)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// expandPaths turns files and directories into a sorted, de-duplicated
// list of blueprint files.
func expandPaths(paths []string) ([]string, ErrorList) {
	var (
		files []string
		errs  ErrorList
	)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err))})
			continue
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: fmt.Sprintf("cannot list directory: %v", unwrapPathError(err))})
			continue
		}
		found := false
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") {
				continue
			}
			if ext := filepath.Ext(name); ext == ".yaml" || ext == ".yml" {
				files = append(files, filepath.Join(p, name))
				found = true
			}
		}
		if !found {
			errs = append(errs, &Error{File: p, Message: "directory holds no *.yaml or *.yml blueprint files"})
		}
	}
	slices.Sort(files)
	return slices.Compact(files), errs
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
