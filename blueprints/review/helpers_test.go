package review

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
)

// testNow is the fixed "today" exceptions are judged against.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// edit replaces old, which must occur exactly once, with new.
type edit struct{ old, new string }

func applyEdits(t testing.TB, name string, data []byte, edits []edit) []byte {
	t.Helper()
	s := string(data)
	for _, e := range edits {
		if n := strings.Count(s, e.old); n != 1 {
			t.Fatalf("%s: edit %q matches %d times, want exactly once", name, e.old, n)
		}
		s = strings.Replace(s, e.old, e.new, 1)
	}
	return []byte(s)
}

// exampleFiles returns the example blueprints, the clean baseline every
// rule test mutates.
func exampleFiles(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range []string{"prod.yaml", "test.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = data
	}
	return out
}

// loadFiles loads files in name order, failing the test on any load error.
func loadFiles(t testing.TB, files map[string][]byte) []*blueprints.Blueprint {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var bps []*blueprints.Blueprint
	for _, n := range names {
		got, err := blueprints.LoadBytes(n, files[n])
		if err != nil {
			t.Fatalf("loading %s: %v", n, err)
		}
		bps = append(bps, got...)
	}
	return bps
}

// mutated returns the examples with edits applied per file name.
func mutated(t testing.TB, edits map[string][]edit) map[string][]byte {
	t.Helper()
	files := exampleFiles(t)
	for name, es := range edits {
		data, ok := files[name]
		if !ok {
			data = []byte{}
		}
		files[name] = applyEdits(t, name, data, es)
	}
	return files
}

func rulesOf(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, string(f.Rule))
	}
	return ids
}

func findingsOf(fs []Finding, rule string) []Finding {
	var out []Finding
	for _, f := range fs {
		if string(f.Rule) == rule {
			out = append(out, f)
		}
	}
	return out
}
