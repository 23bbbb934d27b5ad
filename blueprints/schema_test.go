package blueprints

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

const schemaFile = "schema/v1alpha1.json"

// typeDocs reads the doc comments of the v1alpha1 types and their fields,
// keyed "Type" and "Type.Field", so the schema's descriptions are the ones
// a reader of types.go sees.
func typeDocs(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "v1alpha1/types.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	clean := func(g *ast.CommentGroup) string { return strings.Join(strings.Fields(g.Text()), " ") }
	docs := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			ts := s.(*ast.TypeSpec)
			if doc := ts.Doc; doc != nil {
				docs[ts.Name.Name] = clean(doc)
			} else if gd.Doc != nil {
				docs[ts.Name.Name] = clean(gd.Doc)
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, fld := range st.Fields.List {
				for _, n := range fld.Names {
					if fld.Doc != nil {
						docs[ts.Name.Name+"."+n.Name] = clean(fld.Doc)
					}
				}
			}
		}
	}
	return docs
}

// orStar turns a validator regexp into a pattern that also admits "*".
func orStar(pattern string) string {
	return `^\*$|` + pattern
}

// schemaExtras are the constraints on single fields that the validator
// enforces, taken from its own regexps and constant sets. Checks across
// fields (overlaps, duplicates, from.namespace xor from.cidr) stay with
// the loader.
func schemaExtras() map[string]map[string]any {
	label := map[string]any{"pattern": dnsLabel.String(), "maxLength": 63}
	levels := []string{v1alpha1.PSSRestricted, v1alpha1.PSSBaseline, v1alpha1.PSSPrivileged}
	mount := map[string]any{"pattern": vaultMount.String()}
	return map[string]map[string]any{
		"apiVersion":                          {"const": v1alpha1.APIVersion},
		"kind":                                {"const": v1alpha1.Kind},
		"metadata.name":                       label,
		"spec.environment":                    label,
		"spec.provider.type":                  {"enum": []string{v1alpha1.ProviderLocal, v1alpha1.ProviderKind}},
		"spec.provider.kind.images":           {"enum": []string{v1alpha1.KindImagesUpstream, v1alpha1.KindImagesOffline}},
		"spec.kubernetes.version":             {"enum": SupportedKubernetesVersions},
		"spec.apiServer.endpoint":             {"enum": []string{v1alpha1.EndpointPrivate, v1alpha1.EndpointPublic}},
		"spec.network.cni":                    {"enum": []string{v1alpha1.CNICilium, v1alpha1.CNINone}},
		"spec.network.transparentEncryption":  {"enum": []string{v1alpha1.TransparentEncryptionWireGuard, v1alpha1.TransparentEncryptionIPsec, v1alpha1.TransparentEncryptionNone}},
		"spec.network.allow[].from.namespace": {"pattern": orStar(dnsLabel.String()), "maxLength": 63},
		"spec.network.allow[].to.namespace":   {"pattern": orStar(dnsLabel.String()), "maxLength": 63},
		"spec.network.allow[].to.protocol":    {"enum": []string{"TCP", "UDP", "SCTP"}},
		"spec.namespaces[].name":              label,
		"spec.encryptionAtRest.provider":      {"enum": EncryptionProviderNames()},
		"spec.encryptionAtRest.resources[]":   {"pattern": resourceName.String()},
		"spec.vault.transitMount":             mount,
		"spec.vault.transitKey":               mount,
		"spec.vault.kvMount":                  mount,
		"spec.vault.authPath":                 mount,
		"spec.vault.namespaces[].namespace":   label,
		"spec.vault.namespaces[].paths":       {"minItems": 1},
		"spec.vault.namespaces[].paths[]":     {"pattern": vaultKVPath.String()},
		"spec.audit.policy":                   {"enum": []string{v1alpha1.AuditPolicyDefault}},
		"spec.podSecurity.enforce":            {"enum": levels},
		"spec.podSecurity.audit":              {"enum": levels},
		"spec.podSecurity.warn":               {"enum": levels},
		"spec.podSecurity.exemptNamespaces[]": label,
		"spec.rbac.admins[]":                  {"pattern": subjectRef.String()},
		"spec.images.allowedRegistries[]":     {"pattern": registryPattern.String(), "maxLength": 255},
		"spec.guardrails.mode":                {"enum": []string{v1alpha1.GuardrailsDeny, v1alpha1.GuardrailsWarn}},
		"spec.state.secretsProvider":          {"enum": []string{v1alpha1.StateSecretsPassphrase, v1alpha1.StateSecretsVault}},
		"spec.exceptions[].control":           {"pattern": controlID.String()},
		"spec.exceptions[].expires":           {"pattern": `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, "format": "date"},
	}
}

// schemaDefaults are the defaults SetDefaults fills in that do not depend
// on the cluster name (derived CIDRs and Vault mounts do, so they have none).
var schemaDefaults = map[string]any{
	"spec.provider.type":                v1alpha1.ProviderLocal,
	"spec.provider.kind.workers":        v1alpha1.DefaultKindWorkers,
	"spec.kubernetes.version":           v1alpha1.KubernetesVersion,
	"spec.apiServer.endpoint":           v1alpha1.EndpointPrivate,
	"spec.network.cni":                  v1alpha1.CNICilium,
	"spec.network.defaultDeny":          true,
	"spec.network.allow[].to.protocol":  v1alpha1.DefaultNetworkProtocol,
	"spec.encryptionAtRest.provider":    v1alpha1.EncryptionVaultKMS,
	"spec.encryptionAtRest.resources":   []string{v1alpha1.DefaultEncryptedResource},
	"spec.vault.enabled":                true,
	"spec.audit.enabled":                true,
	"spec.audit.policy":                 v1alpha1.AuditPolicyDefault,
	"spec.audit.maxAgeDays":             v1alpha1.DefaultAuditMaxAgeDays,
	"spec.audit.maxBackups":             v1alpha1.DefaultAuditMaxBackups,
	"spec.audit.maxSizeMB":              v1alpha1.DefaultAuditMaxSizeMB,
	"spec.podSecurity.enforce":          v1alpha1.PSSRestricted,
	"spec.podSecurity.audit":            v1alpha1.PSSRestricted,
	"spec.podSecurity.warn":             v1alpha1.PSSRestricted,
	"spec.podSecurity.exemptNamespaces": []string{"kube-system"},
	"spec.guardrails.mode":              v1alpha1.GuardrailsDeny,
	"spec.state.secretsProvider":        v1alpha1.StateSecretsPassphrase,
}

// schemaRequired lists, per object path, the fields the loader rejects a
// blueprint without (everything else has a default or may stay empty).
var schemaRequired = map[string][]string{
	"":                        {"apiVersion", "kind", "metadata", "spec"},
	"metadata":                {"name"},
	"spec":                    {"environment"},
	"spec.network.allow[]":    {"from", "to"},
	"spec.network.allow[].to": {"namespace"},
	"spec.namespaces[]":       {"name"},
	"spec.vault.namespaces[]": {"namespace", "paths"},
	"spec.exceptions[]":       {"control", "expires"},
}

type schemaGen struct {
	t      *testing.T
	docs   map[string]string
	extras map[string]map[string]any
	used   map[string]bool
}

func (g *schemaGen) node(typ reflect.Type, path string) map[string]any {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	s := map[string]any{}
	switch typ.Kind() {
	case reflect.String:
		s["type"] = "string"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Int:
		s["type"] = "integer"
		lo, hi, ok := IntRange(path)
		if !ok {
			g.t.Fatalf("integer field %s has no range in intRanges", path)
		}
		s["minimum"], s["maximum"] = lo, hi
	case reflect.Slice:
		s["type"] = "array"
		s["items"] = g.node(typ.Elem(), path+"[]")
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = g.node(typ.Elem(), path+"{}")
	case reflect.Struct:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			fs := g.node(f.Type, p)
			doc := g.docs[typ.Name()+"."+f.Name]
			if doc == "" {
				doc = g.docs[fieldTypeName(f.Type)]
			}
			if doc != "" {
				fs["description"] = doc
			}
			props[name] = fs
		}
		s["properties"] = props
		r, ok := schemaRequired[path]
		if ok {
			g.used["required "+path] = true
			s["required"] = r
		}
		for name, fs := range props {
			if !slices.Contains(r, name) {
				nullable(fs.(map[string]any))
			}
		}
	default:
		g.t.Fatalf("%s: no schema for Go kind %s", path, typ.Kind())
	}
	for k, v := range g.extras[path] {
		s[k] = v
		g.used["extra "+path] = true
	}
	if d, ok := schemaDefaults[path]; ok {
		s["default"] = d
		g.used["default "+path] = true
	}
	return s
}

// nullable admits null, which the loader reads as "not set" (a key with
// nothing after it), so a field an editor flags is one the loader rejects.
func nullable(s map[string]any) {
	s["type"] = []any{s["type"], "null"}
	if e, ok := s["enum"]; ok {
		v := reflect.ValueOf(e)
		with := []any{}
		for i := range v.Len() {
			with = append(with, v.Index(i).Interface())
		}
		s["enum"] = append(with, nil)
	}
}

func fieldTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Name()
}

// generateSchema builds the JSON Schema of a Blueprint from its Go types by
// reflection over the yaml tags.
func generateSchema(t *testing.T) []byte {
	t.Helper()
	g := &schemaGen{t: t, docs: typeDocs(t), extras: schemaExtras(), used: map[string]bool{}}
	root := g.node(reflect.TypeFor[v1alpha1.Blueprint](), "")
	// A path in a table that no field has is a typo or a renamed field.
	for p := range g.extras {
		if !g.used["extra "+p] {
			t.Errorf("schemaExtras names %s, which is not a field", p)
		}
	}
	for p := range schemaDefaults {
		if !g.used["default "+p] {
			t.Errorf("schemaDefaults names %s, which is not a field", p)
		}
	}
	for p := range schemaRequired {
		if !g.used["required "+p] {
			t.Errorf("schemaRequired names %s, which is not an object", p)
		}
	}
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = SchemaID
	root["title"] = v1alpha1.APIVersion + " " + v1alpha1.Kind
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSchema keeps schema/v1alpha1.json in step with the types, their doc
// comments and the validator's tables; go test ./blueprints -run TestSchema
// -update rewrites it.
func TestSchema(t *testing.T) {
	got := generateSchema(t)
	if golden.Update() {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(JSONSchema(), got) {
		t.Errorf("%s is stale; run go test ./blueprints -run TestSchema -update", schemaFile)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat = true
	if err := c.AddResource(SchemaID, bytes.NewReader(JSONSchema())); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlDocsAsJSON converts each document of a YAML stream to a JSON value,
// as an editor sees it; empty documents are left out.
func yamlDocsAsJSON(data []byte) ([]any, error) {
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		// Decoding into a map finds duplicate keys, which editors report
		// as YAML errors.
		var dup any
		if err := n.Decode(&dup); err != nil {
			return nil, err
		}
		if dup == nil {
			continue // an empty document, which the loader skips too
		}
		doc, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		j, err := sigsyaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// TestSchemaAcceptsValidBlueprints: every blueprint the loader accepts must
// be clean in an editor too, or the schema teaches people to distrust it.
func TestSchemaAcceptsValidBlueprints(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("examples/*.yaml")
	kind, _ := filepath.Glob("examples/kind/*.yaml")
	valid, _ := filepath.Glob("testdata/valid-*.yaml")
	files = append(append(files, kind...), valid...)
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamlDocsAsJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, d := range docs {
			if err := s.Validate(d); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
			}
		}
	}
}

// TestSchemaRejectsInvalidBlueprints: the invalid test blueprints whose
// mistake a schema can see (unknown field, wrong type, bad value) fail it.
// The rest are YAML-level mistakes an editor's parser reports itself.
func TestSchemaRejectsInvalidBlueprints(t *testing.T) {
	s := compileSchema(t)
	yamlLevel := map[string]bool{}
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamlDocsAsJSON(data)
		if err != nil {
			yamlLevel[f] = true
			continue
		}
		rejected := false
		for _, d := range docs {
			rejected = rejected || s.Validate(d) != nil
		}
		if !rejected {
			t.Errorf("%s passes the schema", f)
		}
	}
	t.Logf("YAML-level, not schema-level: %v", yamlLevel)
}

// TestExamplesNameTheSchema: init copies the examples, so this first line
// is what turns on completion and checking in a new user's editor.
func TestExamplesNameTheSchema(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if want := "# yaml-language-server: $schema=" + SchemaID; first != want {
			t.Errorf("%s: first line is %q; want %q", f, first, want)
		}
	}
}

// TestSchemaAcceptsNullAsUnset: the loader reads a key with no value as
// unset, so the schema must not flag it; a required field stays required.
func TestSchemaAcceptsNullAsUnset(t *testing.T) {
	s := compileSchema(t)
	head := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: x}\nspec:\n"
	for _, tt := range []struct {
		body  string
		valid bool
	}{
		{"  provider:\n", true},
		{"  provider: {type: ~}\n", true},
		{"  exceptions:\n", true},
		{"  vault: {address: ~, enabled: ~}\n", true},
		{"  audit: {maxAgeDays: ~}\n", true},
		{"  network: {allow: [{from: {namespace: a, podSelector: ~}, to: {namespace: b}}]}\n", true},
		{"  environment: ~\n", false},
	} {
		env := "  environment: prod\n"
		if strings.Contains(tt.body, "environment:") {
			env = ""
		}
		data := []byte(head + env + tt.body)
		_, lerr := LoadBytes("x.yaml", data)
		docs, err := yamlDocsAsJSON(data)
		if err != nil {
			t.Fatal(err)
		}
		serr := s.Validate(docs[0])
		if (lerr == nil) != tt.valid || (serr == nil) != tt.valid {
			t.Errorf("%q: loader error %v, schema error %v; want valid=%v from both", tt.body, lerr, serr, tt.valid)
		}
	}
}
