package review

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

// gitRepo is a real git repository in a temporary directory.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipping: runs git as a subprocess (-short)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("skipping: git is not installed: %v", err)
	}
	// Keep the user's and system's git configuration out of the test.
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.name", "secprov test")
	r.git("config", "user.email", "test@secprov.dev")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r *gitRepo) write(name string, data []byte) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) commit(msg string) {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
}

func (r *gitRepo) path(name string) string { return filepath.Join(r.dir, name) }

// reviewWithBase loads paths and their base at rev, and returns the
// SP-CHG-001 findings.
func reviewWithBase(t *testing.T, rev string, paths ...string) []Finding {
	t.Helper()
	bps, err := blueprints.Load(paths...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	base, err := LoadBaseReusing(context.Background(), nil, rev, bps, paths...)
	if err != nil {
		t.Fatalf("LoadBaseReusing(%s): %v", rev, err)
	}
	// Reusing unchanged files' blueprints must give the very base that
	// parsing every file does.
	parsed, err := LoadBase(context.Background(), nil, rev, paths...)
	if err != nil {
		t.Fatalf("LoadBase(%s): %v", rev, err)
	}
	if len(base.Blueprints) != len(parsed.Blueprints) {
		t.Fatalf("LoadBaseReusing found %d base blueprints, LoadBase %d", len(base.Blueprints), len(parsed.Blueprints))
	}
	for i, b := range base.Blueprints {
		if !reflect.DeepEqual(*b, *parsed.Blueprints[i]) {
			t.Fatalf("base blueprint %d: LoadBaseReusing has %s from %s, LoadBase %s from %s", i, b.Name(), b.Source.File, parsed.Blueprints[i].Name(), parsed.Blueprints[i].Source.File)
		}
	}
	return findingsOf(Review(bps, Options{Now: testNow, Base: base}), "SP-CHG-001")
}

func wantChanges(t *testing.T, got []Finding, wantPaths ...string) {
	t.Helper()
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, ",") != strings.Join(wantPaths, ",") {
		t.Fatalf("SP-CHG-001 at %q, want %q\n%s", paths, wantPaths, dump(got))
	}
}

var weakenEncryption = edit{"provider: vault-kms", "provider: none"}

func TestLoadBaseGit(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	r.write("bp/prod.yaml", ex[P])
	r.write("bp/test.yaml", ex[T])
	r.write("README.md", []byte("not a blueprint\n"))
	r.commit("base")
	r.git("branch", "reviewed")

	// Uncommitted weakening versus HEAD, through a directory and a file path.
	r.write("bp/test.yaml", applyEdits(t, T, ex[T], []edit{weakenEncryption}))
	got := reviewWithBase(t, "HEAD", r.path("bp"))
	wantChanges(t, got, "spec.encryptionAtRest.provider")
	if f := got[0]; f.Severity != crit || f.File != filepath.Join(r.path("bp"), "test.yaml") || !strings.Contains(f.Message, `weakened from "vault-kms" to "none" (base HEAD)`) {
		t.Errorf("finding = %+v", f)
	}
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp/test.yaml")), "spec.encryptionAtRest.provider")
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp/prod.yaml")))

	// Committed, compared with HEAD~1 and with a branch name.
	r.commit("weaken test encryption")
	wantChanges(t, reviewWithBase(t, "HEAD~1", r.path("bp")), "spec.encryptionAtRest.provider")
	wantChanges(t, reviewWithBase(t, "reviewed", r.path("bp")), "spec.encryptionAtRest.provider")
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp")))

	// From a subdirectory, with relative paths.
	t.Chdir(r.path("bp"))
	wantChanges(t, reviewWithBase(t, "HEAD~1", "."), "spec.encryptionAtRest.provider")
	wantChanges(t, reviewWithBase(t, "HEAD~1", "test.yaml"), "spec.encryptionAtRest.provider")
}

func TestLoadBaseNewRenamedMoved(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	r.write("bp/prod.yaml", ex[P])
	r.write("bp/test.yaml", ex[T])
	r.commit("base")

	// A new file has no base: nothing to compare, no error.
	staging := applyEdits(t, T, ex[T], []edit{{"name: shop-test ", "name: shop-staging "}, {"environment: test ", "environment: staging "}, endpointPublic})
	r.write("bp/staging.yaml", staging)
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp/staging.yaml")))
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp")))
	r.commit("add staging")

	// A renamed file is matched through git's rename detection, even when
	// only the new path is reviewed; the old directory listing matches it
	// by name too.
	r.git("mv", "bp/test.yaml", "bp/qa.yaml")
	r.write("bp/qa.yaml", applyEdits(t, T, ex[T], []edit{weakenEncryption}))
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp/qa.yaml")), "spec.encryptionAtRest.provider")
	wantChanges(t, reviewWithBase(t, "HEAD", r.path("bp")), "spec.encryptionAtRest.provider")

	// A blueprint moved into another directory and another file is matched
	// by name across the base files of the given paths.
	r.git("reset", "-q", "--hard")
	both := append(append([]byte{}, ex[P]...), append([]byte("---\n"), applyEdits(t, T, ex[T], []edit{{"defaultDeny: true", "defaultDeny: false"}})...)...)
	r.git("rm", "-q", "bp/prod.yaml", "bp/test.yaml")
	r.write("clusters/all.yaml", both)
	got := reviewWithBase(t, "HEAD", r.path("clusters"), r.path("bp"))
	wantChanges(t, got, "spec.network.defaultDeny")
	if got[0].Blueprint != "shop-test" {
		t.Errorf("finding on %s, want shop-test", got[0].Blueprint)
	}
}

func TestLoadBaseErrors(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	r.write("prod.yaml", ex[P])
	r.commit("base")
	notRepo := t.TempDir()
	if err := os.WriteFile(filepath.Join(notRepo, "prod.yaml"), ex[P], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, rev, path, want string
	}{
		{"unknown revision", "no-such-branch", r.dir, "bad revision 'no-such-branch^{commit}'"},
		{"beyond history", "HEAD~5", r.dir, "HEAD~5"},
		{"option injection", "--output=/tmp/x", r.dir, "is not a git revision"},
		{"empty", "", r.dir, "is not a git revision"},
		{"not a repository", "HEAD", notRepo, "not a git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBase(context.Background(), nil, tt.rev, tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			}
		})
	}

	// A base version that does not load is compared with nothing.
	r.write("prod.yaml", []byte("apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: shop-prod}\nspec: {environment: prod, bogus: 1}\n"))
	r.commit("broken")
	r.write("prod.yaml", ex[P])
	base, err := LoadBase(context.Background(), nil, "HEAD", r.dir)
	if err != nil || len(base.Blueprints) != 0 {
		t.Fatalf("LoadBase = %v, %v; want an empty base", base, err)
	}
}

// logTo returns a logger that writes every level to buf.
func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestLoadBaseBoundedGitRuns(t *testing.T) {
	r := newGitRepo(t)
	files := smallBlueprints(200)
	for name, data := range files {
		r.write(name, data)
	}
	r.commit("base")
	// A renamed file makes LoadBase ask git for renames too.
	r.git("mv", "bp/c-00000.yaml", "bp/renamed.yaml")
	paths := []string{r.path("bp"), r.path("bp/renamed.yaml")}
	for name := range files {
		if name != "bp/c-00000.yaml" {
			paths = append(paths, r.path(name))
		}
	}
	g := newGitBase(t.Context(), nil, "HEAD")
	g.log = slog.New(slog.DiscardHandler)
	base, err := g.load(paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Blueprints) != 200 {
		t.Errorf("%d base blueprints, want 200", len(base.Blueprints))
	}
	if b := base.byName["c-00000"]; len(b) != 1 || b[0].Source.File != r.path("bp/renamed.yaml") {
		t.Errorf("renamed file's base = %v, want it loaded as bp/renamed.yaml", b)
	}
	// rev-parse for the directory and for the revision, ls-tree, diff,
	// cat-file: five, however many files.
	if g.runs > 5 {
		t.Errorf("LoadBase ran git %d times for 200 files, want at most 5", g.runs)
	}
}

func TestLoadBaseOddFileNames(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	names := []string{
		"bp/odd\nname.yaml",
		"bp/with spaces & $(x) *.yaml",
		"bp/:(top)-\\ \"quoted\" \t tab.yml",
		"we\nird dir/x.yaml",
	}
	cluster := func(i int) []byte {
		return applyEdits(t, T, ex[T], []edit{{"name: shop-test ", fmt.Sprintf("name: odd-%d ", i)}})
	}
	for i, n := range names {
		r.write(n, cluster(i))
	}
	r.commit("base")
	for i, n := range names {
		r.write(n, applyEdits(t, n, cluster(i), []edit{weakenEncryption}))
	}
	paths := func(ns ...string) []string {
		var ps []string
		for _, n := range ns {
			ps = append(ps, r.path(n))
		}
		return ps
	}
	check := func(t *testing.T, got []Finding, names ...string) {
		t.Helper()
		var files []string
		for _, f := range got {
			files = append(files, f.File)
		}
		want := paths(names...)
		slices.Sort(files)
		slices.Sort(want)
		if !slices.Equal(files, want) {
			t.Errorf("SP-CHG-001 in %q, want %q\n%s", files, want, dump(got))
		}
	}
	t.Run("files", func(t *testing.T) {
		check(t, reviewWithBase(t, "HEAD", paths(names...)...), names...)
	})
	t.Run("directories", func(t *testing.T) {
		check(t, reviewWithBase(t, "HEAD", r.path("bp"), r.path("we\nird dir")), names...)
	})
	t.Run("renamed", func(t *testing.T) {
		r.git("mv", names[0], "bp/odd\nname\n2.yaml")
		check(t, reviewWithBase(t, "HEAD", r.path("bp/odd\nname\n2.yaml")), "bp/odd\nname\n2.yaml")
	})
}

func TestLoadBaseSymlinkNotFollowed(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	// A symbolic link's blob is its target, which can be any text: here
	// a whole blueprint. Following it would load a base nobody wrote.
	sneaky := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: sneaky}\nspec: {environment: prod}\n"
	if _, err := blueprints.LoadBytes("sneaky.yaml", []byte(sneaky)); err != nil {
		t.Fatalf("the link target should be a valid blueprint: %v", err)
	}
	r.write("bp/prod.yaml", ex[P])
	if err := os.Symlink(sneaky, r.path("bp/link.yaml")); err != nil {
		t.Skipf("cannot make symbolic links: %v", err)
	}
	if err := os.Symlink("prod.yaml", r.path("bp/alias.yaml")); err != nil {
		t.Fatal(err)
	}
	r.commit("base")
	// Now regular files; their base versions are links.
	for _, n := range []string{"bp/link.yaml", "bp/alias.yaml"} {
		if err := os.Remove(r.path(n)); err != nil {
			t.Fatal(err)
		}
		r.write(n, []byte(sneaky))
	}
	for _, paths := range [][]string{{r.path("bp")}, {r.path("bp/link.yaml"), r.path("bp/alias.yaml")}} {
		var logs bytes.Buffer
		base, err := LoadBase(t.Context(), logTo(&logs), "HEAD", paths...)
		if err != nil {
			t.Fatal(err)
		}
		for _, bp := range base.Blueprints {
			if bp.Name() == "sneaky" || filepath.Base(bp.Source.File) != "prod.yaml" {
				t.Errorf("base blueprint %s from %s: a symbolic link was followed", bp.Name(), bp.Source.File)
			}
		}
		if strings.Contains(logs.String(), "does not load") {
			t.Errorf("a link's target was read as a blueprint:\n%s", logs.String())
		}
		if len(paths) == 2 && strings.Count(logs.String(), "a symbolic link is not followed") != 2 {
			t.Errorf("want both links logged as not followed:\n%s", logs.String())
		}
	}
}

func TestLoadBaseLargeBlobSkipped(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	limit := blueprints.DefaultLimits.MaxFileBytes
	big := append(append([]byte{}, ex[P]...), "# "+strings.Repeat("x", int(limit))+"\n"...)
	r.write("bp/a-big.yaml", big)
	r.write("bp/b-test.yaml", ex[T])
	r.commit("base")
	r.write("bp/a-big.yaml", ex[P])
	var logs bytes.Buffer
	base, err := LoadBase(t.Context(), logTo(&logs), "HEAD", r.path("bp"))
	if err != nil {
		t.Fatal(err)
	}
	// The big blob is skipped and the one after it in the stream still
	// parses.
	if len(base.Blueprints) != 1 || base.Blueprints[0].Name() != "shop-test" {
		t.Errorf("base = %v, want only shop-test", base.Blueprints)
	}
	if !strings.Contains(logs.String(), "larger than the limit") {
		t.Errorf("no message about the large base file:\n%s", logs.String())
	}
}

func TestLoadBaseCancelled(t *testing.T) {
	r := newGitRepo(t)
	for name, data := range smallBlueprints(50) {
		r.write(name, data)
	}
	r.commit("base")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := LoadBase(ctx, nil, "HEAD", r.path("bp")); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadBase with a cancelled context: %v, want context.Canceled", err)
	}

	// Cancelled while cat-file is answering: git is killed and waited for.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	g := newGitBase(ctx, slog.New(slog.DiscardHandler), "HEAD")
	d, err := g.dir(r.path("bp"))
	if err != nil {
		t.Fatal(err)
	}
	d.repo.want(d.prefix)
	if err := d.repo.list(g); err != nil {
		t.Fatal(err)
	}
	var oids []string
	for _, e := range d.repo.entries {
		oids = append(oids, e.oid)
	}
	seen := 0
	err = g.catBlobs(d.repo.root, oids, func(string, []byte, int64, bool) error {
		if seen++; seen == 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("catBlobs cancelled after the first blob: %v, want context.Canceled", err)
	}
}

func TestReadBatch(t *testing.T) {
	const a, b, c = "aaaa", "bbbb", "cccc"
	stream := a + " blob 5\nhello\n" + b + " blob 20\n" + strings.Repeat("y", 20) + "\n" + c + " blob 0\n\n"
	var got []string
	err := readBatch(bufio.NewReader(strings.NewReader(stream)), []string{a, b, c}, 10, func(oid string, data []byte, size int64, ok bool) error {
		got = append(got, fmt.Sprintf("%s %q %d %v", oid, data, size, ok))
		return nil
	})
	want := []string{`aaaa "hello" 5 true`, `bbbb "" 20 false`, `cccc "" 0 true`}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("readBatch = %q, %v; want %q", got, err, want)
	}

	for _, tt := range []struct{ name, stream, want string }{
		{"missing", a + " missing\n", "object aaaa is missing"},
		{"short", a + " blob 5\nhel", "ended inside aaaa"},
		{"no newline after", a + " blob 5\nhello!", "not followed by a newline"},
		{"other object", "dddd blob 5\nhello\n", `answered "dddd blob 5" for aaaa`},
		{"tree", a + " tree 5\nhello\n", "aaaa is a tree"},
		{"bad size", a + " blob -1\n", `answered "aaaa blob -1"`},
		{"empty", "", "ended before answering for aaaa: unexpected EOF"},
	} {
		err := readBatch(bufio.NewReader(strings.NewReader(tt.stream)), []string{a}, 10, func(string, []byte, int64, bool) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestSplitTopPrefix(t *testing.T) {
	for _, tt := range []struct{ out, root, prefix string }{
		{"\n\n/src/repo\n", "/src/repo", ""},
		{"../\nbp/\n/src/repo\n", "/src/repo", "bp/"},
		{"../../\nwe\nird/sub/\n/src/re\npo\n", "/src/re\npo", "we\nird/sub/"},
	} {
		root, prefix, ok := splitTopPrefix(tt.out)
		if !ok || root != tt.root || prefix != tt.prefix {
			t.Errorf("splitTopPrefix(%q) = %q, %q, %v; want %q, %q", tt.out, root, prefix, ok, tt.root, tt.prefix)
		}
	}
	for _, out := range []string{"", "\n", "../\nbp\n/src\n", "x\nbp/\n/src\n", "../\nbp/"} {
		if root, prefix, ok := splitTopPrefix(out); ok {
			t.Errorf("splitTopPrefix(%q) = %q, %q, true; want it refused", out, root, prefix)
		}
	}
}

func TestLoadBaseReusesUnchangedFiles(t *testing.T) {
	r := newGitRepo(t)
	ex := exampleFiles(t)
	r.write("bp/prod.yaml", ex[P])
	r.write("bp/test.yaml", ex[T])
	r.commit("base")
	r.write("bp/test.yaml", applyEdits(t, T, ex[T], []edit{weakenEncryption}))
	cur, err := blueprints.Load(r.path("bp"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := LoadBaseReusing(t.Context(), nil, "HEAD", cur, r.path("bp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cur {
		old := base.Match(c)
		if unchanged := c.Name() == "shop-prod"; (old == c) != unchanged {
			t.Errorf("%s: base is the current blueprint: %v, want %v (only unchanged files are reused)", c.Name(), old == c, unchanged)
		}
	}
}
