// Package pgtest starts a throwaway PostgreSQL server for integration
// tests: Debian's PostgreSQL binaries, a private data directory, loopback
// only, password authentication, one database. It runs the server as the
// `postgres` system user when the test runs as root (postgres refuses
// root).
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BinDir is where Debian installs PostgreSQL 15 ($SECPROV_PG_BINDIR
// overrides).
const BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running throwaway PostgreSQL.
type Server struct {
	// URL reaches the database as its owner:
	// postgres://secprov:PASSWORD@127.0.0.1:PORT/secprov?sslmode=disable.
	URL      string
	Password string
	Port     int
	Dir      string
	bin      string
	runAs    []string
}

// Start starts a server for the test and stops and removes it at cleanup.
// It skips the test when PostgreSQL is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv("SECPROV_PG_BINDIR")
	if bin == "" {
		bin = BinDir
	}
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		tb.Skipf("skipping: PostgreSQL not installed in %s (apt-get install postgresql): %v", bin, err)
	}
	// t.TempDir's parents are private to root; the server's user must
	// own its directory and reach it.
	dir, err := os.MkdirTemp("", "secprov-pgtest-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Skipf("skipping: running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
		s.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s.Password = hex.EncodeToString(pw)
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if s.runAs != nil {
		s.run(tb, "chown", "postgres", pwFile) // root may chown; keep the file private
	}
	data := filepath.Join(dir, "data")
	s.pg(tb, "initdb", "-D", data, "-U", "secprov", "--auth=scram-sha-256", "--pwfile="+pwFile, "-E", "UTF8", "--no-instructions")
	_ = os.Remove(pwFile)
	s.Port = freePort(tb)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", s.Port, dir)
	s.pg(tb, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	tb.Cleanup(func() {
		cmd := s.command("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		_ = cmd.Run()
	})
	s.URL = (&url.URL{Scheme: "postgres", User: url.UserPassword("secprov", s.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), Path: "/secprov", RawQuery: "sslmode=disable"}).String()
	s.Psql(tb, "postgres", "CREATE DATABASE secprov")
	return s
}

// Psql runs SQL in database db and returns its unaligned output.
func (s *Server) Psql(tb testing.TB, db, sql string) string {
	tb.Helper()
	return s.pg(tb, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "secprov", "-d", db, "-c", sql)
}

// Dump returns pg_dump's plain-text dump of the secprov database: every
// row of every table.
func (s *Server) Dump(tb testing.TB) string {
	tb.Helper()
	return s.pg(tb, "pg_dump", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "secprov", "secprov")
}

func (s *Server) command(tool string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, s.runAs...), filepath.Join(s.bin, tool))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password, "PGCONNECT_TIMEOUT=10")
	return cmd
}

func (s *Server) pg(tb testing.TB, tool string, args ...string) string {
	tb.Helper()
	ctx := s.command(tool, args...)
	out, err := ctx.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		tb.Fatalf("%s %s: %v\n%s\nserver log:\n%s", tool, strings.Join(args, " "), err, out, log)
	}
	return string(out)
}

func (s *Server) run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	// Give the port back a moment before postgres binds it.
	time.Sleep(10 * time.Millisecond)
	return l.Addr().(*net.TCPAddr).Port
}
