package review

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
)

// gitRepo is a real git repository in a temporary directory.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
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
	base, err := LoadBase(context.Background(), nil, rev, paths...)
	if err != nil {
		t.Fatalf("LoadBase(%s): %v", rev, err)
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
