package toolchain

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	// The environment must not silently change what tests exercise.
	os.Unsetenv(EnvNoDownload)
	os.Unsetenv(EnvMirror)
	if os.Getenv(helperEnvCache) != "" {
		os.Exit(runHelperProcess())
	}
	os.Exit(m.Run())
}

// fakeOutput is what a binary of the pinned table prints for its version
// command, in the publishers' formats.
func fakeOutput(bin, version string) string {
	bare := strings.TrimPrefix(version, "v")
	switch bin {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet":
		return "Kubernetes " + version
	case "kubeadm":
		return version
	case "kubectl":
		return "Client Version: " + version + "\nKustomize Version: v5.7.1"
	case "etcd":
		return "etcd Version: " + bare + "\nGit SHA: Not provided\nGo Version: go1.26.8\nGo OS/Arch: linux/amd64"
	case "etcdctl":
		return "etcdctl version: " + bare + "\nAPI version: 3.7"
	case "pulumi":
		return version
	case "vault":
		return "Vault " + version + " ('4b9f4d3a4a7ae52ad28deaa0d6a0fa2dbcf1a11e'), built 2024-09-24T19:48:40Z"
	}
	return "unknown " + version
}

// fakeScript is a stand-in executable printing out; a shell script, so tests
// need no compiler and exercise real process execution.
func fakeScript(out string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, l := range strings.Split(out, "\n") {
		fmt.Fprintf(&b, "echo '%s'\n", strings.ReplaceAll(l, "'", `'\''`))
	}
	return []byte(b.String())
}

func writeExec(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
}

// installFake lays out a complete install of t below root the way the
// hand-built cache does: binaries only, no marker.
func installFake(t *testing.T, tool Tool, root string) {
	t.Helper()
	for _, b := range tool.Binaries {
		writeExec(t, filepath.Join(root, tool.BinDir, b.Name), fakeScript(fakeOutput(b.Name, tool.Version)))
	}
}

func pinnedTool(t *testing.T, name string) Tool {
	t.Helper()
	for _, tool := range Pinned() {
		if tool.Name == name {
			return tool
		}
	}
	t.Fatalf("no pinned tool %q", name)
	return Tool{}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type archiveEntry struct {
	name string
	body []byte
	mode int64
	dir  bool
}

func tarGz(t *testing.T, entries []archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipBytes(t *testing.T, entries []archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(os.FileMode(e.mode))
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// releaseServer is an https server standing in for the publishers, laid out
// as a mirror (/HOST/PATH), counting requests.
type releaseServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
}

func newReleaseServer(t *testing.T) *releaseServer {
	t.Helper()
	rs := &releaseServer{files: map[string][]byte{}, hits: map[string]int{}}
	rs.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.hits[r.URL.Path]++
		body, ok := rs.files[r.URL.Path]
		rs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(rs.Close)
	return rs
}

// mirrorPath is where the mirror serves a publisher URL.
func mirrorPath(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return "/" + u.Host + u.Path
}

func (rs *releaseServer) put(t *testing.T, publisherURL string, body []byte) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.files[mirrorPath(t, publisherURL)] = body
}

func (rs *releaseServer) del(t *testing.T, publisherURL string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.files, mirrorPath(t, publisherURL))
}

func (rs *releaseServer) hitCount(t *testing.T, publisherURL string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.hits[mirrorPath(t, publisherURL)]
}

// publish serves a linux/amd64 release of tool built from fake binaries, in
// the format its Release describes, with the publisher's checksum file.
// Archives carry extra files, as real ones do.
func (rs *releaseServer) publish(t *testing.T, tool Tool) []Artifact {
	t.Helper()
	arts, err := tool.Release("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string][]string{}
	for _, a := range arts {
		var body []byte
		switch a.Kind {
		case KindBinary:
			body = fakeScript(fakeOutput(a.Binary, tool.Version))
		case KindTarGz, KindZip:
			var entries []archiveEntry
			prefix := ""
			if a.Prefix != "" {
				prefix = a.Prefix + "/"
				entries = append(entries, archiveEntry{name: prefix, dir: true})
			}
			for _, b := range tool.Binaries {
				entries = append(entries, archiveEntry{name: prefix + b.Name, body: fakeScript(fakeOutput(b.Name, tool.Version)), mode: 0o755})
			}
			entries = append(entries,
				archiveEntry{name: prefix + "README.md", body: []byte("readme\n"), mode: 0o644},
				archiveEntry{name: prefix + "helper-plugin", body: fakeScript("helper"), mode: 0o755})
			if a.Kind == KindTarGz {
				body = tarGz(t, entries)
			} else {
				body = zipBytes(t, entries)
			}
		}
		rs.put(t, a.URL, body)
		if a.ChecksumName == "" {
			rs.put(t, a.ChecksumURL, []byte(sha(body)+"\n"))
		} else {
			sums[a.ChecksumURL] = append(sums[a.ChecksumURL], sha(body)+"  "+a.ChecksumName)
		}
	}
	for u, lines := range sums {
		// Other platforms' lines around ours, as in real checksum files.
		lines = append(lines, strings.Repeat("ab", 32)+"  other-platform.tar.gz", strings.Repeat("cd", 32)+"  zzz-other.zip")
		sort.Strings(lines)
		rs.put(t, u, []byte(strings.Join(lines, "\n")+"\n"))
	}
	return arts
}

// testManager makes a Manager over a fresh cache that never looks at the
// real PATH, the real cache or the network.
func testManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	if opts.PathDirs == nil {
		opts.NoPath = true
	}
	if opts.GOOS == "" {
		opts.GOOS, opts.GOARCH = "linux", "amd64"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// toolDirEntries lists the tool's cache directory, to check for leftovers.
func toolDirEntries(t *testing.T, m *Manager, name string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(m.toolsDir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// assertNoLeftovers fails if staging or work directories survived.
func assertNoLeftovers(t *testing.T, m *Manager, name string) {
	t.Helper()
	for _, e := range toolDirEntries(t, m, name) {
		if strings.HasPrefix(e, ".") {
			t.Errorf("leftover %s in the %s cache directory", e, name)
		}
	}
}

// buildSentinel replaces a tool's recipe with one that only records that a
// build was attempted, so tests can tell "hard error" from "fell through".
type buildSentinel struct {
	mu    sync.Mutex
	calls int
}

var errSentinelBuild = errors.New("sentinel build step ran")

func (s *buildSentinel) recipe() *Recipe {
	return &Recipe{Steps: []Step{{Desc: "sentinel", Func: func(context.Context, *Builder) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls++
		return errSentinelBuild
	}}}}
}

func (s *buildSentinel) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
