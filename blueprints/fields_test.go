package blueprints

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

var providers = []string{v1alpha1.ProviderLocal, v1alpha1.ProviderKind}

// TestEveryFieldIsHonouredOrRefused: every field of the types has an
// entry in Fields, and for every provider the entry names what renders
// or verifies it, or refuses it (or, for what cannot mean anything on
// that provider, says why it is accepted). A new field fails here until
// someone decides.
func TestEveryFieldIsHonouredOrRefused(t *testing.T) {
	paths := fieldPaths(reflect.TypeFor[v1alpha1.Blueprint](), "")
	if len(paths) < 40 {
		t.Fatalf("walked only %d fields: %v", len(paths), paths)
	}
	var listed []string
	for _, f := range Fields {
		listed = append(listed, f.Path)
	}
	for _, p := range paths {
		if !slices.Contains(listed, p) {
			t.Errorf("%s has no entry in blueprints.Fields: say for local and kind which control renders it, which check verifies it, or what the provider refuses and what to use instead", p)
		}
	}
	for i, p := range listed {
		if !slices.Contains(paths, p) {
			t.Errorf("Fields lists %s, which is no field of v1alpha1.Blueprint", p)
		}
		if slices.Contains(listed[:i], p) {
			t.Errorf("Fields lists %s twice", p)
		}
	}
	for _, f := range Fields {
		for _, prov := range providers {
			s := f.For(prov)
			where := fmt.Sprintf("%s on %s", f.Path, prov)
			if !s.Honoured() && s.Refused == "" && s.Inert == "" {
				t.Errorf("%s: neither rendered, verified nor refused", where)
			}
			if s.Refused != "" && s.RefusedWhen == "" && s.Honoured() {
				t.Errorf("%s: refused always yet honoured; say when it is refused (RefusedWhen)", where)
			}
			if s.RefusedWhen != "" && !s.Honoured() {
				t.Errorf("%s: refused only when %s, but nothing honours it otherwise", where, s.RefusedWhen)
			}
			if s.Inert != "" && (s.Honoured() || s.Refused != "") {
				t.Errorf("%s: inert and yet honoured or refused", where)
			}
			if s.Refused != "" && s.Example == "" {
				t.Errorf("%s: a refusal needs an Example blueprint that proves the loader enforces it", where)
			}
			for _, c := range []struct {
				ids []ControlID
				bit int
				as  string
			}{{s.Rendered, ByHardening, "rendered"}, {s.Verified, ByVerify, "verified"}, {s.Reviewed, ByReview, "reviewed"}} {
				for _, id := range c.ids {
					ctl, ok := ControlByID(id)
					switch {
					case !ok:
						t.Errorf("%s: %s by unknown control %s", where, c.as, id)
					case ctl.Where&c.bit == 0:
						t.Errorf("%s: %s by %s, which the catalog does not mark as %s", where, c.as, id, c.as)
					}
				}
			}
			if s.By != "" {
				checkBy(t, where, f.Path, s.By)
			}
		}
	}
}

// checkBy: the file a By names exists and mentions the field, by its Go
// name or its yaml name.
func checkBy(t *testing.T, where, path, by string) {
	t.Helper()
	file, what, ok := strings.Cut(by, ": ")
	if !ok || what == "" {
		t.Errorf("%s: By %q is not \"FILE: how\"", where, by)
		return
	}
	data, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Errorf("%s: By names %s: %v", where, file, err)
		return
	}
	last := path[strings.LastIndex(path, ".")+1:]
	goName := strings.ToUpper(last[:1]) + last[1:]
	if n, ok := map[string]string{"cni": "CNI", "cidr": "CIDR", "podCIDR": "PodCIDR", "serviceCIDR": "ServiceCIDR", "apiVersion": "APIVersion"}[last]; ok {
		goName = n
	}
	if !bytes.Contains(data, []byte(goName)) && !bytes.Contains(data, []byte(last)) {
		t.Errorf("%s: By names %s, which mentions neither %s nor %s", where, file, goName, last)
	}
}

// longName is a cluster name kind refuses (the table's Example of
// metadata.name leaves the name to the test).
var longName = strings.Repeat("a", KindMaxNameLength+1)

// TestRefusalsAreEnforced loads every refusal's Example on its provider:
// it must fail with file:line:col, the field path and the table's words
// (why, and what to use instead), never load as a weaker cluster.
func TestRefusalsAreEnforced(t *testing.T) {
	n := 0
	for _, f := range Fields {
		for _, prov := range providers {
			s := f.For(prov)
			if s.Refused == "" {
				continue
			}
			n++
			name := "k"
			if f.Path == "metadata.name" {
				name = longName
			}
			doc := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: " + name + "}\nspec: " + s.Example + "\n"
			t.Run(f.Path+"/"+prov, func(t *testing.T) {
				if !strings.Contains(doc, "type: kind") != (prov == v1alpha1.ProviderLocal) {
					t.Fatalf("Example %q is not a %s blueprint", s.Example, prov)
				}
				_, err := LoadBytes("refused.yaml", []byte(doc))
				if err == nil {
					t.Fatalf("loaded; want the refusal of %s", f.Path)
				}
				var el ErrorList
				if !errors.As(err, &el) {
					t.Fatalf("error %v is no ErrorList", err)
				}
				found := false
				for _, e := range el {
					if (e.Path == f.Path || strings.HasPrefix(f.Path, e.Path+".")) && strings.Contains(e.Message, s.Refused) && e.Line > 0 {
						found = true
						if !strings.HasPrefix(e.Error(), fmt.Sprintf("refused.yaml:%d:%d: %s: ", e.Line, e.Column, e.Path)) {
							t.Errorf("refusal %q does not start with file:line:col and the path", e.Error())
						}
					}
				}
				if !found {
					t.Errorf("no error at %s says %q; got %v", f.Path, s.Refused, err)
				}
			})
		}
	}
	if n < 5 {
		t.Fatalf("only %d refusals", n)
	}
}

// TestProviderNotesNameInertFields: what a provider accepts without effect
// is said at up, for the fields the blueprint writes.
func TestProviderNotesNameInertFields(t *testing.T) {
	bps, err := Load("examples/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(ProviderNotes(bps[0], v1alpha1.ProviderLocal), "\n")
	for _, want := range []string{"spec.network.cni has no effect on local", "spec.network.podCIDR has no effect on local"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if strings.Contains(notes, "metadata.") {
		t.Errorf("notes name metadata: %q", notes)
	}
	if n := ProviderNotes(bps[0], v1alpha1.ProviderKind); len(n) > 0 {
		t.Errorf("kind notes: %v", n)
	}
}

// fieldsMarkdown renders docs/fields.md from the table.
func fieldsMarkdown() string {
	var b strings.Builder
	b.WriteString(`# Blueprint fields by provider

<!-- Generated from blueprints.Fields by TestFieldsDocIsFresh; do not edit.
     go test ./blueprints -run TestFieldsDocIsFresh -update rewrites it. -->

Every field of ` + "`" + v1alpha1.APIVersion + "`" + ` is honoured or refused on each provider;
none is a silent no-op. **Rendered** names the controls ([hardening/CONTROLS.md](../hardening/CONTROLS.md))
whose hardening renders the field, **verified** the ` + "`secprov verify`" + ` checks (same IDs) that prove it
on the live cluster, **reviewed** the ` + "`secprov review`" + ` rules that judge it. A field the provider cannot
honour is a load error with file:line:col, the field path, why, and what to use instead. The few
fields that cannot mean anything on a provider (metadata, or node settings on ` + "`local`" + `, which has
no nodes) say why they are accepted; ` + "`secprov up`" + ` repeats it for each one a blueprint writes.

| field | local | kind |
|---|---|---|
`)
	// In the order of the types, wherever an entry was added to Fields.
	for _, p := range fieldPaths(reflect.TypeFor[v1alpha1.Blueprint](), "") {
		if f, ok := FieldSupportOf(p); ok {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Path, supportCell(f.Local), supportCell(f.Kind))
		}
	}
	return b.String()
}

func supportCell(s Support) string {
	var parts []string
	join := func(ids []ControlID) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = string(id)
		}
		return strings.Join(out, ", ")
	}
	if s.Refused != "" && s.RefusedWhen == "" {
		parts = append(parts, "**refused on this provider**: "+s.Refused)
	}
	if len(s.Rendered) > 0 {
		parts = append(parts, "rendered by "+join(s.Rendered))
	}
	if len(s.Verified) > 0 {
		parts = append(parts, "verified by "+join(s.Verified))
	}
	if s.By != "" {
		file, what, _ := strings.Cut(s.By, ": ")
		parts = append(parts, fmt.Sprintf("%s (`%s`)", what, file))
	}
	if s.Refused != "" && s.RefusedWhen != "" {
		parts = append(parts, "**refused when "+s.RefusedWhen+"**: "+s.Refused)
	}
	if s.Note != "" {
		parts = append(parts, s.Note)
	}
	if s.Inert != "" {
		parts = append(parts, "no effect, accepted: "+s.Inert)
	}
	if len(s.Reviewed) > 0 {
		parts = append(parts, "reviewed by "+join(s.Reviewed))
	}
	return strings.ReplaceAll(strings.Join(parts, "; "), "|", `\|`)
}

// TestFieldsDocIsFresh keeps docs/fields.md equal to the table.
func TestFieldsDocIsFresh(t *testing.T) {
	const path = "../docs/fields.md"
	got := fieldsMarkdown()
	if golden.Update() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./blueprints -run TestFieldsDocIsFresh -update writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: go test ./blueprints -run TestFieldsDocIsFresh -update rewrites it from blueprints.Fields", path)
	}
}
