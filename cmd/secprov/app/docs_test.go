package app

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra/doc"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli and docs/man from the commands")

// docsDir is the repository's docs directory, seen from this package.
const docsDir = "../../../docs"

// manDate is the date every man page carries. A fixed one keeps the pages
// byte-for-byte reproducible, so TestDocsAreFresh can compare them; the
// version the page describes is the repository's, not the date's.
var manDate = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// writeDocs generates the CLI reference: one markdown file per command in
// dir/cli and one man page per command in dir/man. Hidden commands (the
// kms-plugin the API server runs) are left out by cobra/doc itself.
func writeDocs(dir string) error {
	root := newRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	// The generation date would make every regeneration a diff.
	root.DisableAutoGenTag = true
	cli, man := filepath.Join(dir, "cli"), filepath.Join(dir, "man")
	for _, d := range []string{cli, man} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := doc.GenMarkdownTree(root, cli); err != nil {
		return err
	}
	return doc.GenManTree(root, &doc.GenManHeader{
		Title:   "SECPROV",
		Section: "1",
		Source:  "secprov",
		Manual:  "secprov manual",
		Date:    &manDate,
	}, man)
}

// TestDocsAreFresh regenerates the CLI reference and fails when the
// committed one differs, so a changed flag or help text cannot ship with
// stale docs. `make docs` (or this test with -update) rewrites them.
func TestDocsAreFresh(t *testing.T) {
	// Defaults shown in the docs must not depend on who generates them.
	isolatedHome(t)
	tmp := t.TempDir()
	if err := writeDocs(tmp); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cli", "man"} {
		want, committed := filepath.Join(tmp, sub), filepath.Join(docsDir, sub)
		if *updateDocs {
			if err := os.RemoveAll(committed); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(committed, os.DirFS(want)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, problem := range diffDirs(t, want, committed) {
			t.Errorf("docs/%s: %s", sub, problem)
		}
	}
	if t.Failed() {
		t.Log("the CLI reference is out of date: run `make docs` and commit docs/")
	}
}

// TestDocsLeaveOutHiddenCommands: kms-plugin is run by the API server,
// not by people, and must not be documented as a command.
func TestDocsLeaveOutHiddenCommands(t *testing.T) {
	isolatedHome(t)
	tmp := t.TempDir()
	if err := writeDocs(tmp); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(d.Name(), "kms") {
			t.Errorf("hidden command documented in %s", d.Name())
		}
		b, err := os.ReadFile(path)
		if bytes.Contains(b, []byte("kms-plugin")) {
			t.Errorf("%s mentions kms-plugin", d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// diffDirs lists how the flat directory got differs from want.
func diffDirs(t *testing.T, want, got string) []string {
	t.Helper()
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	wantNames, gotNames := names(want), names(got)
	var problems []string
	for _, n := range wantNames {
		if !slices.Contains(gotNames, n) {
			problems = append(problems, n+" is missing")
			continue
		}
		a, err := os.ReadFile(filepath.Join(want, n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			problems = append(problems, n+" is out of date")
		}
	}
	for _, n := range gotNames {
		if !slices.Contains(wantNames, n) {
			problems = append(problems, n+" documents no current command")
		}
	}
	return problems
}

// TestReadmeLinksToGeneratedDocs: the README's command list links into
// docs/cli; a renamed or removed command must not leave a dead link.
func TestReadmeLinksToGeneratedDocs(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(docsDir, "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\((docs/cli/[^)]+)\)`).FindAllSubmatch(readme, -1)
	if len(links) == 0 {
		t.Fatal("README.md links to nothing in docs/cli")
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(docsDir, "..", string(l[1]))); err != nil {
			t.Errorf("README.md links to %s: %v", l[1], err)
		}
	}
}
