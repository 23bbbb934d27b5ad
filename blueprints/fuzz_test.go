package blueprints

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// FuzzLoad checks that no input panics the loader, that every error is
// located, and that what loads is already fully defaulted and valid.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "examples/*.yaml", "examples/kind/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("{{{{{{{{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bps, err := LoadBytes("fuzz.yaml", data)
		var el ErrorList
		if err != nil && !errors.As(err, &el) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, e := range el {
			if e.Line < 1 || e.Column < 1 || e.Message == "" {
				t.Fatalf("unlocated error: %#v", e)
			}
		}
		for _, b := range bps {
			again := b.Blueprint
			v1alpha1.SetDefaults(&again)
			if !reflect.DeepEqual(again, b.Blueprint) {
				t.Fatalf("SetDefaults not idempotent for %q", b.Name())
			}
			if errs := validate(b); len(errs) > 0 {
				t.Fatalf("loaded blueprint fails validation: %v", errs)
			}
		}
	})
}
