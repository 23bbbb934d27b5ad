// Package golden compares test output with golden files in testdata and
// rewrites them when the tests run with -update. Test-only helper; it
// registers the -update flag, so a test binary imports it instead of
// defining its own.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files (and generated docs) instead of comparing")

// Update reports whether the tests run with -update.
func Update() bool { return *update }

// Check compares got with testdata/name, or rewrites that file with -update.
func Check(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (go test -update if intended):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// Section keeps the text between the begin and end marker lines of a
// document (a README's generated table) equal to content, or rewrites it
// with -update. The markers stay; everything else in the file is left
// alone.
func Section(t testing.TB, path, begin, end, content string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: markers %q and %q not found in order", path, strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	want := doc[:i+len(begin)] + content + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the generated section between %q and %q is out of date; run the test with -update", path, strings.TrimSpace(begin), strings.TrimSpace(end))
}
