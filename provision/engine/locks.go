package engine

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "github.com/lib/pq" // the postgres:// backend's driver, to read its lock records
)

// secprov builds on the Pulumi DIY backend's own stack lock rather than
// keeping one beside it: every update writes a lock record
// (.pulumi/locks/<org>/secprov/<stack>/<id>.json, naming the engine's pid,
// user, host and start time) into the backend, in a file backend's
// directory or a row of the postgres backend's table. secprov reads those
// records to say who holds a stack, to clear the lock of a process that
// is gone, and, for `secprov state unlock`, to remove a lock on request.

// Lock is one holder of a stack's backend lock.
type Lock struct {
	// Key locates the record in the backend (a file path, or the
	// postgres table's key).
	Key      string    `json:"key"`
	Pid      int       `json:"pid"`
	Username string    `json:"username"`
	Hostname string    `json:"hostname"`
	Since    time.Time `json:"timestamp"`
}

// OnThisHost reports whether the holder ran on this machine.
func (l Lock) OnThisHost() bool {
	host, _ := os.Hostname()
	return l.Hostname == host
}

// Alive reports whether the holder is certainly still running: only a
// holder on this host can be checked.
func (l Lock) Alive() bool { return l.OnThisHost() && processAlive(l.Pid, l.Since) }

func (l Lock) String() string {
	where := "on another host, so secprov cannot tell whether it still runs"
	switch {
	case l.Alive():
		where = "still running on this host"
	case l.OnThisHost():
		where = "no longer running"
	}
	return fmt.Sprintf("%s@%s (pid %d, %s) since %s", l.Username, l.Hostname, l.Pid, where, l.Since.Format(time.RFC3339))
}

// LockedError reports a stack whose lock another run holds.
type LockedError struct {
	Stack   string
	Holders []Lock
}

// holderDead reports whether every holder is known to be gone (ran on
// this host and is no longer running).
func (e *LockedError) holderDead() bool {
	for _, h := range e.Holders {
		if !h.OnThisHost() || h.Alive() {
			return false
		}
	}
	return len(e.Holders) > 0
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %q is locked by another run: ", e.Stack)
	for i, h := range e.Holders {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(h.String())
	}
	if e.holderDead() {
		fmt.Fprintf(&b, "\nThat run was interrupted and left the lock. Clear it with `secprov state unlock --cluster %s`; the next up then finishes the interrupted work.", e.Stack)
	} else {
		fmt.Fprintf(&b, "\nWait for that run to finish. If it died, clear the lock with `secprov state unlock --cluster %s` (it refuses while the holder still runs on this host).", e.Stack)
	}
	return b.String()
}

// Locks returns the holders of stack's lock in the backend. Backends
// whose lock records secprov cannot read (object stores, Pulumi Cloud)
// return nil: their own lock error still names the holder.
func (e *Engine) Locks(ctx context.Context, stack string) ([]Lock, error) {
	if err := checkStackName(stack); err != nil {
		return nil, err
	}
	switch {
	case e.backendDir != "":
		return fileLocks(e.backendDir, stack)
	case isPostgres(e.cfg.Backend):
		db, table, err := e.postgres()
		if err != nil {
			return nil, err
		}
		return pgLocks(ctx, db, table, pgKeyPrefix(e.cfg.Backend), stack)
	}
	return nil, nil
}

// removeLock deletes one lock record.
func (e *Engine) removeLock(ctx context.Context, l Lock) error {
	switch {
	case e.backendDir != "":
		if err := os.Remove(l.Key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		_ = os.Remove(l.Key + ".attrs") // the blob store's metadata sidecar, if any
		return nil
	case isPostgres(e.cfg.Backend):
		db, table, err := e.postgres()
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, "DELETE FROM "+table+" WHERE key = $1", l.Key) //nolint:gosec // table is checked by openPostgres
		return err
	}
	return fmt.Errorf("secprov cannot remove locks in %s", redactURL(e.cfg.Backend))
}

// Unlock removes the locks of stack whose holders are gone, then clears
// the operations their interrupted run left pending, so the next Up
// finishes that work. A holder still running on this host is never
// removed; one on another host only with force (secprov cannot see
// whether it runs).
func (e *Engine) Unlock(ctx context.Context, stack string, force bool) (*UnlockReport, error) {
	if e.backendDir == "" && !isPostgres(e.cfg.Backend) {
		return nil, fmt.Errorf("secprov reads lock records of file:// and postgres:// backends only; for %s use `pulumi cancel --stack %s` with PULUMI_BACKEND_URL set", redactURL(e.cfg.Backend), stack)
	}
	locks, err := e.Locks(ctx, stack)
	if err != nil {
		return nil, err
	}
	rep := &UnlockReport{}
	var errs []error
	for _, l := range locks {
		switch {
		case l.Alive():
			errs = append(errs, fmt.Errorf("not unlocking cluster %q: its holder %s; wait for it to finish or stop it first", stack, l))
			continue
		case !l.OnThisHost() && !force:
			errs = append(errs, fmt.Errorf("not unlocking cluster %q: its holder is %s; make sure that run is over, then repeat with --force", stack, l))
			continue
		}
		if err := e.removeLock(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("removing the lock of cluster %q held by %s: %w", stack, l, err))
			continue
		}
		e.log.Warn("removed a stack lock", "stack", stack, "holder", l.String())
		rep.Removed = append(rep.Removed, l)
	}
	if len(errs) > 0 || len(rep.Removed) == 0 {
		return rep, errors.Join(errs...)
	}
	s, err := e.selectStack(ctx, stack)
	if err != nil {
		return rep, err
	}
	if rep.Pending, err = e.clearPending(ctx, s); err != nil {
		return rep, fmt.Errorf("the lock is removed, but clearing the operations the interrupted run left pending failed (the next up retries): %w", err)
	}
	return rep, nil
}

func fileLocks(backendDir, stack string) ([]Lock, error) {
	dir := filepath.Join(backendDir, ".pulumi", "locks")
	var files []string
	for _, pattern := range []string{
		filepath.Join(dir, "*", ProjectName, stack, "*.json"), // project-scoped layout
		filepath.Join(dir, stack, "*.json"),                   // legacy layout
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	var out []Lock
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // its owner just finished
		}
		if err != nil {
			return out, fmt.Errorf("reading lock %s of stack %q: %w", f, stack, err)
		}
		l := Lock{Key: f}
		if err := json.Unmarshal(b, &l); err != nil {
			return out, fmt.Errorf("lock %s of stack %q is unreadable (%v): if no update is running, delete it", f, stack, err)
		}
		l.Key = f
		out = append(out, l)
	}
	return out, nil
}

func isPostgres(backend string) bool {
	return strings.HasPrefix(backend, "postgres://") || strings.HasPrefix(backend, "postgresql://")
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// openPostgres connects to a postgres:// backend the way Pulumi's DIY
// backend does (its `table` parameter names the table).
func openPostgres(backend string) (*sql.DB, string, error) {
	u, err := url.Parse(backend)
	if err != nil {
		return nil, "", fmt.Errorf("backend URL %s: %w", redactURL(backend), err)
	}
	q := u.Query()
	table := q.Get("table")
	if table == "" {
		table = "pulumi_state"
	}
	if !sqlIdent.MatchString(table) {
		return nil, "", fmt.Errorf("backend URL %s: table %q is not a plain SQL name", redactURL(backend), table)
	}
	q.Del("table")
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		return nil, "", fmt.Errorf("opening %s: %w", redactURL(backend), err)
	}
	return db, table, nil
}

// postgres is the engine's connection pool to its postgres:// backend,
// opened on first use (a connection is made per query when idle ones are
// gone).
func (e *Engine) postgres() (*sql.DB, string, error) {
	e.pgOnce.Do(func() {
		e.pgDB, e.pgTable, e.pgErr = openPostgres(e.cfg.Backend)
		if e.pgErr == nil {
			e.pgDB.SetMaxIdleConns(1)
			e.pgDB.SetConnMaxIdleTime(time.Minute)
			e.ensurePgTable()
		}
	})
	return e.pgDB, e.pgTable, e.pgErr
}

// ensurePgTable creates the DIY backend's table (its own schema) under an
// advisory lock when it is missing. Two engines starting on a fresh
// database (prod and test brought up together) would otherwise race in
// CREATE TABLE IF NOT EXISTS, and one fails with a duplicate key in
// pg_type. A failure here is left to the engine to report.
func (e *Engine) ensurePgTable() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var exists bool
	if err := e.pgDB.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", e.pgTable).Scan(&exists); err != nil || exists {
		return
	}
	tx, err := e.pgDB.BeginTx(ctx, nil)
	if err != nil {
		return
	}
	defer func() { _ = tx.Rollback() }()
	t := e.pgTable
	for _, q := range []string{
		"SELECT pg_advisory_xact_lock(hashtext('secprov-state-table:' || $1))",
		"CREATE TABLE IF NOT EXISTS " + t + " (key TEXT PRIMARY KEY, data JSON NOT NULL, updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
		"CREATE INDEX IF NOT EXISTS " + t + "_key_prefix_idx ON " + t + " (key text_pattern_ops)",
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = []any{t}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil { //nolint:gosec // t is checked by openPostgres
			e.log.Debug("creating the postgres backend's table", "err", err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		e.log.Debug("creating the postgres backend's table", "err", err)
	}
}

// pgKeyPrefix is what the DIY backend puts before its keys: the URL's path
// (the database name), as an object store's bucket prefix.
func pgKeyPrefix(backend string) string {
	u, err := url.Parse(backend)
	if err != nil || strings.Trim(u.Path, "/") == "" {
		return ""
	}
	return strings.Trim(u.Path, "/") + "/"
}

// pgLocks reads the lock rows of stack; the DIY backend stores each blob
// as {"data": base64}.
func pgLocks(ctx context.Context, db *sql.DB, table, keyPrefix, stack string) ([]Lock, error) {
	prefix := keyPrefix + path.Join(".pulumi", "locks") + "/"
	rows, err := db.QueryContext(ctx, "SELECT key, data FROM "+table+" WHERE key LIKE $1", prefix+"%") //nolint:gosec // table is checked by openPostgres
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, nil // no stack was ever written
		}
		return nil, fmt.Errorf("reading the locks of stack %q: %w", stack, err)
	}
	defer rows.Close()
	var out []Lock
	for rows.Next() {
		var key, data string
		if err := rows.Scan(&key, &data); err != nil {
			return out, err
		}
		// <org>/secprov/<stack>/<id>.json, or the legacy <stack>/<id>.json
		rel := strings.Split(strings.TrimPrefix(key, prefix), "/")
		if !(len(rel) == 4 && rel[1] == ProjectName && rel[2] == stack) && !(len(rel) == 2 && rel[0] == stack) {
			continue
		}
		raw, err := pgBlob(data)
		if err != nil {
			return out, fmt.Errorf("lock %s of stack %q is unreadable: %w", key, stack, err)
		}
		var l Lock
		if err := json.Unmarshal(raw, &l); err != nil {
			return out, fmt.Errorf("lock %s of stack %q is unreadable: %w", key, stack, err)
		}
		l.Key = key
		out = append(out, l)
	}
	return out, rows.Err()
}

// pgStackExists looks up the stack's checkpoint row (plain or gzipped) in
// a postgres backend's table.
func (e *Engine) pgStackExists(ctx context.Context, stack string) (bool, error) {
	db, table, err := e.postgres()
	if err != nil {
		return false, err
	}
	base := pgStackKey(e.cfg.Backend, stack)
	var n int
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE key = $1 OR key = $2", base, base+".gz").Scan(&n) //nolint:gosec // table is checked by openPostgres
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// pgBlob decodes one row of the DIY postgres backend, which stores each
// blob as {"data": base64}.
func pgBlob(data string) ([]byte, error) {
	var row struct{ Data string }
	if err := json.Unmarshal([]byte(data), &row); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(row.Data)
}
