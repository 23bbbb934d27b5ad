package review

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
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
// Only regular files count at rev: a symbolic link is not followed (its
// content is a target path, which could point anywhere). However many
// files there are, git runs a fixed number of times per repository: one
// ls-tree for the directories involved, one cat-file --batch for every
// blob, and one diff only when a file needs rename detection.
//
// A revision git cannot resolve, or paths outside a git work tree, are
// errors carrying git's message; base files that no longer load, or are
// larger than blueprints.DefaultLimits.MaxFileBytes, are skipped (logged),
// since there is nothing to compare them with.
func LoadBase(ctx context.Context, log *slog.Logger, rev string, paths ...string) (*Base, error) {
	return LoadBaseReusing(ctx, log, rev, nil, paths...)
}

// LoadBaseReusing is LoadBase given current, the blueprints just loaded
// from paths. A base file with the same bytes as the current one (by
// Source.Digest) loads into the same blueprints, so those are reused
// instead of parsed again: in the review of a change most files are
// unchanged, and parsing them twice would double the cost of --base.
// Only the log differs: an unchanged file with some documents that do not
// load is not reported again.
func LoadBaseReusing(ctx context.Context, log *slog.Logger, rev string, current []*blueprints.Blueprint, paths ...string) (*Base, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rev == "" || strings.HasPrefix(rev, "-") {
		// A leading dash would be read by git as an option.
		return nil, fmt.Errorf("--base %q is not a git revision: use a branch, tag or commit such as origin/main", rev)
	}
	g := newGitBase(ctx, log, rev)
	for _, bp := range current {
		f := g.reuse[bp.Source.File]
		if f == nil {
			f = &loadedFile{sum: bp.Source.Digest()}
			g.reuse[bp.Source.File] = f
		}
		if f.sum != bp.Source.Digest() {
			f.mixed = true
		}
		f.bps = append(f.bps, bp)
	}
	return g.load(paths)
}

// loadedFile is what one file loaded into.
type loadedFile struct {
	sum   [sha256.Size]byte
	bps   []*blueprints.Blueprint
	mixed bool // blueprints of different loads of the file: not reusable
}

func newGitBase(ctx context.Context, log *slog.Logger, rev string) *gitBase {
	return &gitBase{ctx: ctx, log: log, rev: rev, maxBytes: blueprints.DefaultLimits.MaxFileBytes, reuse: map[string]*loadedFile{}, dirs: map[string]*gitDir{}, repos: map[string]*repo{}}
}

// load is LoadBase after its argument checks.
func (g *gitBase) load(paths []string) (*Base, error) {
	// First every path's repository and the files the loader reads for it,
	// so that each repository's tree is listed once for all of them.
	type target struct {
		path    string
		isDir   bool
		d       *gitDir
		current []string // files the loader reads for path
	}
	var targets []target
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue // blueprints.Load reports it
		}
		dir := p
		if !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		d, err := g.dir(dir)
		if err != nil {
			return nil, err
		}
		t := target{path: p, isDir: fi.IsDir(), d: d}
		if t.isDir {
			entries, err := os.ReadDir(p)
			if err != nil {
				continue // blueprints.Load reports it
			}
			for _, e := range entries {
				if !e.IsDir() && isBlueprintFile(e.Name()) {
					t.current = append(t.current, filepath.Join(p, e.Name()))
				}
			}
		} else {
			t.current = []string{p}
		}
		d.repo.want(d.prefix)
		targets = append(targets, t)
	}
	for _, r := range g.order {
		if err := r.list(g); err != nil {
			return nil, err
		}
	}

	type candidate struct {
		r       *repo
		rel     string // path in the repository, slash-separated
		oid     string // of the blob at the base commit
		display string // file name the base blueprint is given
	}
	var (
		cands []candidate
		seen  = map[string]bool{} // root + rel
	)
	addCand := func(r *repo, e treeEntry, display string) {
		if k := r.root + "\x00" + e.path; !seen[k] {
			seen[k] = true
			cands = append(cands, candidate{r, e.path, e.oid, display})
		}
	}
	for _, t := range targets {
		r := t.d.repo
		for _, f := range t.current {
			rel := t.d.prefix + filepath.Base(f)
			e, ok := r.entries[rel]
			if !ok {
				renames, err := r.renames(g)
				if err != nil {
					return nil, err
				}
				if e, ok = renames[rel]; !ok {
					g.log.Debug("blueprint file is new versus the base revision", "file", f, "rev", g.rev)
					continue
				}
				g.log.Debug("blueprint file was renamed versus the base revision", "file", f, "from", e.path, "rev", g.rev)
			}
			if !e.regular() {
				g.log.Info("base version of blueprint file is not a regular file (a symbolic link is not followed); its blueprints are compared with nothing", "file", e.path, "mode", e.mode, "rev", g.rev)
				continue
			}
			addCand(r, e, f)
		}
		if t.isDir {
			for _, e := range r.listed[t.d.prefix] {
				if e.regular() && isBlueprintFile(path.Base(e.path)) {
					addCand(r, e, filepath.Join(t.path, path.Base(e.path)))
				}
			}
		}
	}

	// Then every candidate's blob, through one cat-file per repository.
	// Each is loaded as it arrives, so only one base file's bytes are held
	// at a time; the blueprints keep the candidates' order.
	loaded := make([][]*blueprints.Blueprint, len(cands))
	for _, r := range g.order {
		var (
			oids  []string
			users = map[string][]int{} // oid → candidates with that content
		)
		for i, c := range cands {
			if c.r != r {
				continue
			}
			if users[c.oid] == nil {
				oids = append(oids, c.oid)
			}
			users[c.oid] = append(users[c.oid], i)
		}
		if len(oids) == 0 {
			continue
		}
		err := g.catBlobs(r.root, oids, func(oid string, data []byte, size int64, ok bool) error {
			var sum *[sha256.Size]byte
			for _, i := range users[oid] {
				c := cands[i]
				if !ok {
					g.log.Info("base version of blueprint file is larger than the limit for blueprints; its blueprints are compared with nothing", "file", c.rel, "rev", g.rev, "bytes", size, "limit", g.maxBytes)
					continue
				}
				if cur := g.reuse[c.display]; cur != nil && !cur.mixed {
					if sum == nil {
						s := sha256.Sum256(data)
						sum = &s
					}
					if *sum == cur.sum {
						loaded[i] = cur.bps
						continue
					}
				}
				bps, err := blueprints.LoadBytes(c.display, data)
				if err != nil {
					g.log.Info("base version of blueprint file does not load; its blueprints are compared with nothing", "file", c.rel, "rev", g.rev, "err", err)
				}
				loaded[i] = bps
			}
			return nil
		})
		if err != nil {
			var me *missingObjectError
			if errors.As(err, &me) {
				return nil, fmt.Errorf("reading %s at %s: %w", cands[users[me.oid][0]].rel, g.rev, err)
			}
			return nil, err
		}
	}
	var bps []*blueprints.Blueprint
	for _, l := range loaded {
		bps = append(bps, l...)
	}
	return NewBase(g.rev, bps), nil
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
	ctx      context.Context
	log      *slog.Logger
	rev      string
	maxBytes int64                  // base blobs larger than this are not read
	reuse    map[string]*loadedFile // current blueprints by Source.File
	dirs     map[string]*gitDir     // by directory as given
	repos    map[string]*repo       // by root
	order    []*repo                // repos in the order paths named them
	runs     int                    // git processes started, so tests can bound them
}

// gitDir is a directory the paths name, within its repository.
type gitDir struct {
	repo   *repo
	prefix string // relative to the root, "" or ending in "/"
}

type repo struct {
	root    string
	commit  string
	wanted  []string               // directories (prefixes) to list at commit
	entries map[string]treeEntry   // rel → blob directly in a wanted directory
	listed  map[string][]treeEntry // prefix → its blobs, in tree order
	renamed map[string]treeEntry   // new rel → old blob; nil until asked
}

// treeEntry is a blob at the base commit.
type treeEntry struct {
	mode, oid, path string
}

// regular reports whether e is a file's content, not a symbolic link's
// target.
func (e treeEntry) regular() bool { return e.mode == "100644" || e.mode == "100755" }

// dir finds the repository holding dir and resolves the base revision in it.
func (g *gitBase) dir(dir string) (*gitDir, error) {
	if d, ok := g.dirs[dir]; ok {
		return d, nil
	}
	out, err := g.git(dir, "rev-parse", "--show-cdup", "--show-prefix", "--show-toplevel")
	if err != nil {
		if g.ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("--base needs the blueprints in a git work tree, but %s is not in one: %w", dir, err)
	}
	root, prefix, ok := splitTopPrefix(string(out))
	if !ok {
		return nil, fmt.Errorf("git rev-parse --show-toplevel in %s printed %q, not a work tree", dir, out)
	}
	r := g.repos[root]
	if r == nil {
		out, err := g.git(root, "rev-parse", g.rev+"^{commit}", "--")
		if err != nil {
			if g.ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("--base %q: git cannot resolve it in %s (fetch it first, e.g. git fetch origin main, or name a commit, branch or tag): %w", g.rev, root, err)
		}
		commit, _, _ := strings.Cut(string(out), "\n")
		r = &repo{root: root, commit: commit}
		g.repos[root] = r
		g.order = append(g.order, r)
	}
	d := &gitDir{repo: r, prefix: prefix}
	g.dirs[dir] = d
	return d, nil
}

// splitTopPrefix parses the output of git rev-parse --show-cdup
// --show-prefix --show-toplevel. The prefix and the root may hold
// newlines, but --show-cdup prints "../" once per level, so the prefix
// has exactly that many slashes and where it ends is known.
func splitTopPrefix(out string) (root, prefix string, ok bool) {
	cdup, rest, ok := strings.Cut(out, "\n")
	levels := strings.Count(cdup, "../")
	if !ok || cdup != strings.Repeat("../", levels) {
		return "", "", false
	}
	end := 0
	for range levels {
		i := strings.IndexByte(rest[end:], '/')
		if i < 0 {
			return "", "", false
		}
		end += i + 1
	}
	prefix, rest = rest[:end], rest[end:]
	root, ok = strings.CutPrefix(rest, "\n")
	root = strings.TrimSuffix(root, "\n")
	return root, prefix, ok && root != ""
}

// want adds the directory prefix to those listed at the base commit.
func (r *repo) want(prefix string) {
	for _, w := range r.wanted {
		if w == prefix {
			return
		}
	}
	r.wanted = append(r.wanted, prefix)
}

// list reads, with one git ls-tree, the blobs directly in every wanted
// directory at the base commit.
func (r *repo) list(g *gitBase) error {
	r.entries, r.listed = map[string]treeEntry{}, map[string][]treeEntry{}
	if len(r.wanted) == 0 {
		return nil // its only directory could not be read now
	}
	wanted := map[string]bool{}
	args := []string{"ls-tree", "-z", "--full-tree", r.commit, "--"}
	for _, w := range r.wanted {
		wanted[w] = true
		if w == "" {
			w = "."
		}
		// Without -r, ls-tree shows the entries of a directory named with a
		// trailing slash; entries of other directories it passes through
		// are dropped below.
		args = append(args, w)
	}
	out, err := g.git(r.root, args...)
	if err != nil {
		return err
	}
	return parseLsTree(out, func(e treeEntry, typ string) {
		dir, _ := path.Split(e.path)
		if typ != "blob" || !wanted[dir] {
			return
		}
		if _, dup := r.entries[e.path]; !dup {
			r.entries[e.path] = e
			r.listed[dir] = append(r.listed[dir], e)
		}
	})
}

// parseLsTree parses `git ls-tree -z`: "MODE TYPE OBJECT\tPATH\0".
func parseLsTree(out []byte, fn func(e treeEntry, typ string)) error {
	for len(out) > 0 {
		rec, rest, ok := bytes.Cut(out, []byte{0})
		if !ok {
			return fmt.Errorf("git ls-tree printed an unterminated entry %q", rec)
		}
		out = rest
		meta, p, ok := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		if !ok || len(f) != 3 {
			return fmt.Errorf("git ls-tree printed %q, not MODE TYPE OBJECT<tab>PATH", rec)
		}
		fn(treeEntry{mode: f[0], oid: f[2], path: string(p)}, f[1])
	}
	return nil
}

// renames maps files renamed or copied since the base commit (as git's
// rename detection sees them, comparing the base with the work tree) to
// their old blobs.
func (r *repo) renames(g *gitBase) (map[string]treeEntry, error) {
	if r.renamed != nil {
		return r.renamed, nil
	}
	// --raw rather than --name-status: it also names the old blob, which
	// may lie in a directory that was not listed.
	out, err := g.git(r.root, "diff", "-z", "--raw", "--no-abbrev", "-M", r.commit, "--")
	if err != nil {
		return nil, err
	}
	r.renamed = map[string]treeEntry{}
	// Each change is ":OLDMODE NEWMODE OLDOID NEWOID STATUS\0PATH\0", with
	// a second PATH (the new one) for renames and copies.
	f := strings.Split(string(out), "\x00")
	for i := 0; i < len(f); {
		meta := strings.Fields(strings.TrimPrefix(f[i], ":"))
		if len(meta) != 5 {
			i++
			continue
		}
		if st := meta[4]; (st[0] == 'R' || st[0] == 'C') && i+2 < len(f) {
			r.renamed[f[i+2]] = treeEntry{mode: meta[0], oid: meta[2], path: f[i+1]}
			i += 3
			continue
		}
		i += 2
	}
	return r.renamed, nil
}

// missingObjectError is cat-file's answer for an object the repository
// does not have.
type missingObjectError struct{ oid string }

func (e *missingObjectError) Error() string {
	return fmt.Sprintf("git cat-file: object %s is missing", e.oid)
}

// catBlobs writes oids to one `git cat-file --batch` in dir and calls fn
// with each blob's content, in order. A blob larger than g.maxBytes is
// passed with ok false and its bytes are discarded as they stream past,
// never held. Object IDs rather than paths go in, so a file name holding
// a newline cannot break the line-based protocol.
func (g *gitBase) catBlobs(dir string, oids []string, fn func(oid string, data []byte, size int64, ok bool) error) error {
	cmd := g.command(dir, "cat-file", "--batch", "--buffer")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git cat-file --batch: %w", err)
	}
	// Requests are written while answers are read: either side's pipe
	// would fill, and both processes block, if one waited for the other.
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		w := bufio.NewWriter(stdin)
		for _, oid := range oids {
			w.WriteString(oid)
			w.WriteByte('\n')
		}
		w.Flush() // a failed write shows as git's answers ending early
		stdin.Close()
	}()
	readErr := readBatch(bufio.NewReaderSize(stdout, 64<<10), oids, g.maxBytes, fn)
	if readErr != nil {
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	<-fed
	if err := g.ctx.Err(); err != nil {
		return fmt.Errorf("git cat-file --batch: %w", err)
	}
	var me *missingObjectError
	if errors.As(readErr, &me) {
		return readErr
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" && (readErr != nil || waitErr != nil) {
		return fmt.Errorf("git cat-file --batch: %s", firstLines(msg, 3))
	}
	if readErr != nil {
		return readErr
	}
	if waitErr != nil {
		return fmt.Errorf("git cat-file --batch: %w", waitErr)
	}
	return nil
}

// readBatch parses cat-file --batch answers: "OID TYPE SIZE\n", SIZE bytes
// of content and "\n"; or "OID missing\n".
func readBatch(br *bufio.Reader, oids []string, maxBytes int64, fn func(oid string, data []byte, size int64, ok bool) error) error {
	for _, want := range oids {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("git cat-file --batch ended before answering for %s: %w", want, noEOF(err))
		}
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == want && f[1] == "missing" {
			return &missingObjectError{oid: want}
		}
		var size int64 = -1
		if len(f) == 3 {
			size, err = strconv.ParseInt(f[2], 10, 64)
		}
		if len(f) != 3 || f[0] != want || err != nil || size < 0 {
			return fmt.Errorf("git cat-file --batch answered %q for %s", strings.TrimSpace(line), want)
		}
		if f[1] != "blob" {
			return fmt.Errorf("git cat-file --batch: %s is a %s, not a file", want, f[1])
		}
		var data []byte
		ok := maxBytes <= 0 || size <= maxBytes
		if ok {
			data = make([]byte, size+1)
			_, err = io.ReadFull(br, data)
		} else {
			_, err = io.CopyN(io.Discard, br, size+1)
		}
		if err != nil {
			return fmt.Errorf("git cat-file --batch ended inside %s: %w", want, noEOF(err))
		}
		if ok {
			if data[size] != '\n' {
				return fmt.Errorf("git cat-file --batch: %s is not followed by a newline", want)
			}
			data = data[:size]
		}
		if err := fn(want, data, size, ok); err != nil {
			return err
		}
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// command is git in dir, with paths taken literally, unquoted, and its
// messages in a stable language.
func (g *gitBase) command(dir string, args ...string) *exec.Cmd {
	g.runs++
	g.log.Debug("running git", "dir", dir, "args", args)
	cmd := exec.CommandContext(g.ctx, "git", append([]string{"-C", dir, "-c", "core.quotepath=off", "--literal-pathspecs"}, args...)...)
	// Plain C locale keeps git's messages stable; no prompts in CI.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	return cmd
}

// git runs git in dir and returns its stdout; a failure carries git's own
// message.
func (g *gitBase) git(dir string, args ...string) ([]byte, error) {
	cmd := g.command(dir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := g.ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), ctxErr)
		}
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
