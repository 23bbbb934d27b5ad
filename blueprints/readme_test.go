package blueprints

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// fieldPaths lists every YAML field path of a type, e.g.
// spec.network.allow[].to.ports.
func fieldPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return []string{prefix}
	}
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out = append(out, fieldPaths(t.Field(i).Type, p)...)
	}
	return out
}

// TestReadmeDocumentsEveryField keeps the README's blueprint reference in
// step with the types: every field must be named there.
func TestReadmeDocumentsEveryField(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, p := range fieldPaths(reflect.TypeFor[v1alpha1.Blueprint](), "") {
		if p == "apiVersion" || p == "kind" {
			continue
		}
		// Within a list item the table may abbreviate siblings to the part
		// after "[]", e.g. `.from.cidr` next to `spec.network.allow[].from.namespace`.
		short := ""
		if i := strings.LastIndex(p, "[]."); i >= 0 {
			short = p[i+2:]
		}
		if !strings.Contains(readme, "`"+p+"`") && (short == "" || !strings.Contains(readme, "`"+short+"`")) {
			t.Errorf("README.md does not document %s", p)
		}
	}
}
