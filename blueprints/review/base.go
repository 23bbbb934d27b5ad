package review

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"secprov.dev/secprov/blueprints"
)

// Base is the set of blueprints at a base revision, for finding changes
// that weaken security.
type Base struct {
	// Rev is the revision as the user wrote it (for messages).
	Rev string
	// Blueprints that loaded cleanly at Rev.
	Blueprints []*blueprints.Blueprint

	byName    map[string][]*blueprints.Blueprint
	byFileDoc map[fileDoc]*blueprints.Blueprint
}

type fileDoc struct {
	file string
	doc  int
}

// NewBase indexes blueprints loaded from a base revision. A base blueprint
// whose Source.File is the path of the current file it corresponds to can
// also be matched by file and document index when its name changed.
func NewBase(rev string, bps []*blueprints.Blueprint) *Base {
	b := &Base{Rev: rev, Blueprints: bps, byName: map[string][]*blueprints.Blueprint{}, byFileDoc: map[fileDoc]*blueprints.Blueprint{}}
	for _, bp := range bps {
		b.byName[bp.Name()] = append(b.byName[bp.Name()], bp)
		k := fileDoc{filepath.Clean(bp.Source.File), bp.Source.Doc}
		if _, dup := b.byFileDoc[k]; !dup {
			b.byFileDoc[k] = bp
		}
	}
	return b
}

// Match returns the base version of cur: the base blueprint with the same
// cluster name (wherever it was, so moved and renamed files still match),
// else the one at the same file and document index, else nil (a new
// blueprint, nothing to compare).
func (b *Base) Match(cur *blueprints.Blueprint) *blueprints.Blueprint {
	if b == nil {
		return nil
	}
	file := filepath.Clean(cur.Source.File)
	if cands := b.byName[cur.Name()]; len(cands) > 0 {
		for _, c := range cands {
			if filepath.Clean(c.Source.File) == file && c.Source.Doc == cur.Source.Doc {
				return c
			}
		}
		for _, c := range cands {
			if filepath.Clean(c.Source.File) == file {
				return c
			}
		}
		return cands[0]
	}
	return b.byFileDoc[fileDoc{file, cur.Source.Doc}]
}

// LoadBase reads, at git revision rev, the blueprint files that paths
// (files and directories, as given to blueprints.Load) name, and loads
// them. It finds each file's repository with git rev-parse, so paths may
// lie in different repositories. A file that did not exist at rev has no
// base, unless git sees it as renamed, in which case its old version is
// used. Every *.yaml/*.yml file a directory held at rev is loaded too, so a
// blueprint moved between files still matches by name.
//
// A revision git cannot resolve, or paths outside a git work tree, are
// errors carrying git's message; base files that no longer load are
// skipped (logged), since there is nothing to compare them with.
func LoadBase(ctx context.Context, log *slog.Logger, rev string, paths ...string) (*Base, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rev == "" || strings.HasPrefix(rev, "-") {
		// A leading dash would be read by git as an option.
		return nil, fmt.Errorf("--base %q is not a git revision: use a branch, tag or commit such as origin/main", rev)
	}
	g := &gitBase{ctx: ctx, log: log, rev: rev, repos: map[string]*repo{}}
	type candidate struct {
		r       *repo
		rel     string // path in the repository, slash-separated
		display string // file name the base blueprint is given
	}
	var (
		cands []candidate
		seen  = map[string]bool{} // root + rel
	)
	addCand := func(r *repo, rel, display string) {
		if k := r.root + "\x00" + rel; !seen[k] {
			seen[k] = true
			cands = append(cands, candidate{r, rel, display})
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue // blueprints.Load reports it
		}
		dir := p
		if !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		r, err := g.repo(dir)
		if err != nil {
			return nil, err
		}
		var current []string // files the loader reads for p
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				continue // blueprints.Load reports it
			}
			for _, e := range entries {
				if !e.IsDir() && isBlueprintFile(e.Name()) {
					current = append(current, filepath.Join(p, e.Name()))
				}
			}
		} else {
			current = []string{p}
		}
		for _, f := range current {
			rel := r.prefix + filepath.Base(f)
			ok, err := r.exists(g, rel)
			if err != nil {
				return nil, err
			}
			if !ok {
				renames, err := r.renames(g)
				if err != nil {
					return nil, err
				}
				if rel = renames[rel]; rel == "" {
					log.Debug("blueprint file is new versus the base revision", "file", f, "rev", rev)
					continue
				}
				log.Debug("blueprint file was renamed versus the base revision", "file", f, "from", rel, "rev", rev)
			}
			addCand(r, rel, f)
		}
		if fi.IsDir() {
			names, err := r.list(g, r.prefix)
			if err != nil {
				return nil, err
			}
			for _, rel := range names {
				addCand(r, rel, filepath.Join(p, path.Base(rel)))
			}
		}
	}
	var bps []*blueprints.Blueprint
	for _, c := range cands {
		data, err := g.git(c.r.root, "show", c.r.commit+":"+c.rel)
		if err != nil {
			return nil, fmt.Errorf("reading %s at %s: %w", c.rel, rev, err)
		}
		loaded, err := blueprints.LoadBytes(c.display, data)
		if err != nil {
			log.Info("base version of blueprint file does not load; its blueprints are compared with nothing", "file", c.rel, "rev", rev, "err", err)
		}
		bps = append(bps, loaded...)
	}
	return NewBase(rev, bps), nil
}

func isBlueprintFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// gitBase runs git for one LoadBase call, caching per-repository answers.
type gitBase struct {
	ctx   context.Context
	log   *slog.Logger
	rev   string
	repos map[string]*repo // by directory and by root
}

type repo struct {
	root    string
	prefix  string // of the directory looked up, relative to root, "" or ending in "/"
	commit  string
	files   map[string]bool   // rel → exists at commit, filled lazily
	renamed map[string]string // new rel → old rel; nil until asked
}

// repo finds the repository holding dir and resolves the base revision in it.
func (g *gitBase) repo(dir string) (*repo, error) {
	if r, ok := g.repos[dir]; ok {
		return r, nil
	}
	out, err := g.git(dir, "rev-parse", "--show-toplevel", "--show-prefix")
	if err != nil {
		return nil, fmt.Errorf("--base needs the blueprints in a git work tree, but %s is not in one: %w", dir, err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) < 1 || lines[0] == "" {
		return nil, fmt.Errorf("git rev-parse --show-toplevel in %s printed nothing", dir)
	}
	root, prefix := lines[0], ""
	if len(lines) > 1 {
		prefix = lines[1]
	}
	r := &repo{root: root, prefix: prefix, files: map[string]bool{}}
	// Directories of one repository share the resolved commit.
	for _, other := range g.repos {
		if other.root == root {
			r.commit, r.files, r.renamed = other.commit, other.files, other.renamed
			break
		}
	}
	if r.commit == "" {
		out, err := g.git(root, "rev-parse", g.rev+"^{commit}", "--")
		if err != nil {
			return nil, fmt.Errorf("--base %q: git cannot resolve it in %s (fetch it first, e.g. git fetch origin main, or name a commit, branch or tag): %w", g.rev, root, err)
		}
		r.commit, _, _ = strings.Cut(string(out), "\n")
	}
	g.repos[dir] = r
	return r, nil
}

// exists reports whether rel is a file at the base commit.
func (r *repo) exists(g *gitBase, rel string) (bool, error) {
	if ok, known := r.files[rel]; known {
		return ok, nil
	}
	out, err := g.git(r.root, "ls-tree", "-z", r.commit, "--", rel)
	if err != nil {
		return false, err
	}
	ok := false
	for _, e := range parseLsTree(out) {
		if e.path == rel && e.typ == "blob" {
			ok = true
		}
	}
	r.files[rel] = ok
	return ok, nil
}

// list returns the blueprint files directly in dir (rel, "" for the root)
// at the base commit.
func (r *repo) list(g *gitBase, dir string) ([]string, error) {
	spec := dir
	if spec == "" {
		spec = "."
	}
	out, err := g.git(r.root, "ls-tree", "-z", r.commit, "--", spec)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range parseLsTree(out) {
		if e.typ == "blob" && isBlueprintFile(path.Base(e.path)) {
			names = append(names, e.path)
			r.files[e.path] = true
		}
	}
	return names, nil
}

type lsEntry struct{ typ, path string }

// parseLsTree parses `git ls-tree -z`: "MODE TYPE OBJECT\tPATH\0".
func parseLsTree(out []byte) []lsEntry {
	var es []lsEntry
	for _, rec := range bytes.Split(out, []byte{0}) {
		meta, p, ok := bytes.Cut(rec, []byte{'\t'})
		if !ok {
			continue
		}
		f := strings.Fields(string(meta))
		if len(f) < 3 {
			continue
		}
		es = append(es, lsEntry{typ: f[1], path: string(p)})
	}
	return es
}

// renames maps files renamed or copied since the base commit (as git's
// rename detection sees them, comparing the base with the work tree) to
// their old paths.
func (r *repo) renames(g *gitBase) (map[string]string, error) {
	if r.renamed != nil {
		return r.renamed, nil
	}
	out, err := g.git(r.root, "diff", "-z", "--name-status", "-M", r.commit, "--")
	if err != nil {
		return nil, err
	}
	r.renamed = map[string]string{}
	f := strings.Split(string(out), "\x00")
	for i := 0; i < len(f); {
		st := f[i]
		if st == "" {
			i++
			continue
		}
		if (st[0] == 'R' || st[0] == 'C') && i+2 < len(f) {
			r.renamed[f[i+2]] = f[i+1]
			i += 3
			continue
		}
		i += 2
	}
	for _, other := range g.repos {
		if other.root == r.root {
			other.renamed = r.renamed
		}
	}
	return r.renamed, nil
}

// git runs git in dir and returns its stdout; a failure carries git's own
// message.
func (g *gitBase) git(dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(g.ctx, "git", append([]string{"-C", dir}, args...)...)
	// Plain C locale keeps git's messages stable; no prompts in CI.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	g.log.Debug("running git", "dir", dir, "args", args)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if msg == "" || !errors.As(err, &ee) {
			if msg != "" {
				msg = ": " + msg
			}
			return nil, fmt.Errorf("git %s: %w%s", strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("git %s: %s", strings.Join(args, " "), firstLines(msg, 3))
	}
	return stdout.Bytes(), nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "; ")
}
