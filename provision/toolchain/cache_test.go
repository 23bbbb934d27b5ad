package toolchain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"secprov.dev/secprov/provision/paths"
)

// otherVersion returns a version of the same length as v, so a script
// printing it has the same size.
func otherVersion(v string) string {
	last := v[len(v)-1]
	if last == '9' {
		return v[:len(v)-1] + "8"
	}
	return v[:len(v)-1] + "9"
}

// TestCacheHitHandBuiltLayout checks that directories laid out like the
// hand-built cache (binaries only, no marker) are used as they are, then
// marked, and that the marker stands in for the version check only while
// the files are unchanged.
func TestCacheHitHandBuiltLayout(t *testing.T) {
	for _, tool := range Pinned() {
		t.Run(tool.Name, func(t *testing.T) {
			m := testManager(t, Options{Tools: []Tool{tool}, NoDownload: true, NoBuild: true})
			root := m.InstallRoot(tool)
			installFake(t, tool, root)
			ins, err := m.Ensure(t.Context(), tool.Name)
			if err != nil {
				t.Fatal(err)
			}
			if ins.Source != SourceCache || ins.Root != root {
				t.Errorf("Installed = %+v, want the cache at %s", ins, root)
			}
			if tool.Name == "pulumi" && ins.Bin["pulumi"] != filepath.Join(root, "bin", "pulumi") {
				t.Errorf("pulumi binary = %s, want ROOT/bin/pulumi", ins.Bin["pulumi"])
			}
			mk, err := readMarker(root)
			if err != nil {
				t.Fatalf("no marker after adopting a complete directory: %v", err)
			}
			if mk.Source != "adopted" || mk.Version != tool.Version || len(mk.Binaries) != len(tool.Binaries) {
				t.Errorf("marker = %+v", mk)
			}

			// Same size, same mtime, other content: the marker vouches.
			first := ins.Bin[tool.Binaries[0].Name]
			fi, _ := os.Stat(first)
			writeExec(t, first, fakeScript(fakeOutput(tool.Binaries[0].Name, otherVersion(tool.Version))))
			if err := os.Chtimes(first, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Ensure(t.Context(), tool.Name); err != nil {
				t.Errorf("with an unchanged-looking marker: %v", err)
			}
			// Without the marker the version check runs and catches it.
			if err := os.Remove(filepath.Join(root, markerName)); err != nil {
				t.Fatal(err)
			}
			_, err = m.Ensure(t.Context(), tool.Name)
			var ve *VersionError
			if !errors.As(err, &ve) || ve.Path != first {
				t.Errorf("Ensure = %v, want a VersionError for %s", err, first)
			}
			// A touched file invalidates the marker too.
			installFake(t, tool, root)
			if _, err := m.Ensure(t.Context(), tool.Name); err != nil {
				t.Fatal(err)
			}
			writeExec(t, first, fakeScript(fakeOutput(tool.Binaries[0].Name, otherVersion(tool.Version))))
			if _, err := m.Ensure(t.Context(), tool.Name); !errors.As(err, &ve) {
				t.Errorf("Ensure after a binary changed = %v, want a VersionError", err)
			}
		})
	}
}

// TestRealHandBuiltCache checks the real cache directories built by hand on
// this machine (ENVIRONMENT.md recipes) against the real binaries, read-only.
func TestRealHandBuiltCache(t *testing.T) {
	if testing.Short() {
		t.Skipf("runs the real toolchain binaries' version commands: skipped in -short mode")
	}
	cache, err := paths.CacheDir()
	if err != nil {
		t.Skipf("no cache directory: %v", err)
	}
	m := testManager(t, Options{CacheDir: cache, NoDownload: true, NoBuild: true})
	for _, tool := range Pinned() {
		t.Run(tool.Name, func(t *testing.T) {
			root := m.InstallRoot(tool)
			if _, err := os.Stat(root); err != nil {
				t.Skipf("%s is not built on this machine yet: %v", tool.Name, err)
			}
			bins, err := checkInstallDir(t.Context(), tool, root, false)
			if err != nil {
				t.Fatalf("the hand-built %s is not accepted: %v", root, err)
			}
			// Run the real version checks even if a marker exists.
			if err := checkVersions(t.Context(), tool, bins); err != nil {
				t.Fatal(err)
			}
			for _, st := range m.List(t.Context()) {
				if st.Name == tool.Name && (st.State != StateInstalled || st.Source != SourceCache || st.Root != root) {
					t.Errorf("List says %+v", st)
				}
			}
		})
	}
}

// TestCacheReplacesBrokenInstall: an incomplete or wrong directory is
// reported precisely, and replaced whole by a fresh install.
func TestCacheReplacesBrokenInstall(t *testing.T) {
	etcd := pinnedTool(t, "etcd")
	tests := []struct {
		name    string
		breakIt func(t *testing.T, root string)
		wantErr string
	}{
		{"missing binary", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "etcdctl")) }, "etcdctl is missing"},
		{"not executable", func(t *testing.T, root string) { os.Chmod(filepath.Join(root, "etcd"), 0o644) }, "etcd is not executable"},
		{"wrong version", func(t *testing.T, root string) {
			writeExec(t, filepath.Join(root, "etcdctl"), fakeScript(fakeOutput("etcdctl", "v3.6.9")))
		}, "reports version 3.6.9, want v3.7.3"},
		{"binary is a directory", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etcd"))
			os.Mkdir(filepath.Join(root, "etcd"), 0o755)
		}, "etcd is not a regular file"},
		{"no version in output", func(t *testing.T, root string) {
			writeExec(t, filepath.Join(root, "etcd"), []byte("#!/bin/sh\necho usage >&2\nexit 2\n"))
		}, "exit status 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReleaseServer(t)
			cache := t.TempDir()
			m := testManager(t, Options{CacheDir: cache, Tools: []Tool{etcd}, NoDownload: true, NoBuild: true})
			root := m.InstallRoot(etcd)
			installFake(t, etcd, root)
			if err := os.WriteFile(filepath.Join(root, "stale.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.breakIt(t, root)
			_, err := m.Ensure(t.Context(), "etcd")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Ensure = %v, want an error containing %q", err, tt.wantErr)
			}
			st := m.List(t.Context())[0]
			if st.State != StateMissing || !strings.Contains(st.Problem, tt.wantErr) {
				t.Errorf("List = %+v", st)
			}

			rs.publish(t, etcd)
			m2 := testManager(t, Options{CacheDir: cache, Tools: []Tool{etcd}, Mirror: rs.URL, HTTPClient: rs.Client(), NoBuild: true})
			ins, err := m2.Ensure(t.Context(), "etcd")
			if err != nil || ins.Source != SourceDownload {
				t.Fatalf("Ensure = %+v, %v; want a fresh download", ins, err)
			}
			if _, err := os.Stat(filepath.Join(root, "stale.txt")); !os.IsNotExist(err) {
				t.Error("the broken directory was patched instead of replaced")
			}
			assertNoLeftovers(t, m2, "etcd")
		})
	}
}

func TestPathLookup(t *testing.T) {
	pathDir := t.TempDir()
	etcd, pulumi, kube := pinnedTool(t, "etcd"), pinnedTool(t, "pulumi"), pinnedTool(t, "kubernetes")
	for _, b := range etcd.Binaries {
		writeExec(t, filepath.Join(pathDir, b.Name), fakeScript(fakeOutput(b.Name, etcd.Version)))
	}
	writeExec(t, filepath.Join(pathDir, "pulumi"), fakeScript(fakeOutput("pulumi", pulumi.Version)))
	// Only two of the three kubernetes binaries are on PATH.
	for _, b := range kube.Binaries[:2] {
		writeExec(t, filepath.Join(pathDir, b.Name), fakeScript(fakeOutput(b.Name, kube.Version)))
	}
	empty := t.TempDir()
	cache := t.TempDir()
	opts := Options{CacheDir: cache, PathDirs: []string{empty, "", pathDir}, NoDownload: true, NoBuild: true}
	m := testManager(t, opts)

	ins, err := m.Ensure(t.Context(), "etcd")
	if err != nil {
		t.Fatal(err)
	}
	if ins.Source != SourcePath || ins.Dir != pathDir || ins.Bin["etcdctl"] != filepath.Join(pathDir, "etcdctl") || ins.Root != "" {
		t.Errorf("etcd = %+v, want it from %s", ins, pathDir)
	}
	if _, err := os.Stat(m.InstallRoot(etcd)); !os.IsNotExist(err) {
		t.Error("a PATH hit for etcd wrote into the cache")
	}

	// pulumi is linked into the cache layout so callers get a Root.
	ins, err = m.Ensure(t.Context(), "pulumi")
	if err != nil {
		t.Fatal(err)
	}
	root := m.InstallRoot(pulumi)
	if ins.Source != SourcePath || ins.Bin["pulumi"] != filepath.Join(pathDir, "pulumi") || ins.Root != root {
		t.Errorf("pulumi = %+v, want PATH binary with Root %s", ins, root)
	}
	if target, err := os.Readlink(filepath.Join(root, "bin", "pulumi")); err != nil || target != filepath.Join(pathDir, "pulumi") {
		t.Errorf("ROOT/bin/pulumi links to %q (%v), want the PATH binary", target, err)
	}
	if mk, err := readMarker(root); err != nil || mk.Source != "path-link" {
		t.Errorf("marker = %+v, %v", mk, err)
	}
	if ins2, err := m.Ensure(t.Context(), "pulumi"); err != nil || ins2.Root != root {
		t.Errorf("second Ensure = %+v, %v", ins2, err)
	}
	assertNoLeftovers(t, m, "pulumi")
	// Without PATH the link is a cache hit.
	noPath := testManager(t, Options{CacheDir: cache, NoDownload: true, NoBuild: true})
	if ins, err := noPath.Ensure(t.Context(), "pulumi"); err != nil || ins.Source != SourceCache {
		t.Errorf("Ensure without PATH = %+v, %v; want the linked cache entry", ins, err)
	}

	// A partial set on PATH is not used; the cache is.
	installFake(t, kube, m.InstallRoot(kube))
	if ins, err := m.Ensure(t.Context(), "kubernetes"); err != nil || ins.Source != SourceCache {
		t.Errorf("kubernetes = %+v, %v; want the cache (kube-scheduler is not on PATH)", ins, err)
	}

	// A wrong version on PATH is passed over for the cache.
	writeExec(t, filepath.Join(pathDir, "etcd"), fakeScript(fakeOutput("etcd", "v3.6.0")))
	installFake(t, etcd, m.InstallRoot(etcd))
	if ins, err := m.Ensure(t.Context(), "etcd"); err != nil || ins.Source != SourceCache {
		t.Errorf("etcd = %+v, %v; want the cache (PATH has 3.6.0)", ins, err)
	}

	// Relative PATH entries are ignored.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, pathDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lookPath(pulumi, []string{rel}); err == nil {
		t.Errorf("lookPath used the relative PATH entry %s", rel)
	}
}

func TestPathDoesNotReplaceRealPulumiInstall(t *testing.T) {
	pathDir := t.TempDir()
	pulumi := pinnedTool(t, "pulumi")
	writeExec(t, filepath.Join(pathDir, "pulumi"), fakeScript(fakeOutput("pulumi", pulumi.Version)))
	m := testManager(t, Options{PathDirs: []string{pathDir}, NoDownload: true, NoBuild: true})
	root := m.InstallRoot(pulumi)
	installFake(t, pulumi, root)
	ins, err := m.Ensure(t.Context(), "pulumi")
	if err != nil {
		t.Fatal(err)
	}
	if ins.Source != SourcePath || ins.Root != root {
		t.Errorf("Installed = %+v", ins)
	}
	if fi, err := os.Lstat(filepath.Join(root, "bin", "pulumi")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the cached pulumi binary was replaced: %v %v", fi, err)
	}
}

func TestListChangesNothing(t *testing.T) {
	pathDir := t.TempDir()
	etcd, pulumi, kube := pinnedTool(t, "etcd"), pinnedTool(t, "pulumi"), pinnedTool(t, "kubernetes")
	writeExec(t, filepath.Join(pathDir, "pulumi"), fakeScript(fakeOutput("pulumi", pulumi.Version)))
	m := testManager(t, Options{PathDirs: []string{pathDir}})
	installFake(t, etcd, m.InstallRoot(etcd))
	installFake(t, kube, m.InstallRoot(kube))
	os.Remove(filepath.Join(m.InstallRoot(kube), "kube-scheduler"))

	got := map[string]Status{}
	for _, st := range m.List(t.Context()) {
		got[st.Name] = st
	}
	if st := got["etcd"]; st.State != StateInstalled || st.Source != SourceCache || st.Bin["etcd"] != filepath.Join(m.InstallRoot(etcd), "etcd") {
		t.Errorf("etcd: %+v", st)
	}
	if st := got["pulumi"]; st.State != StateInstalled || st.Source != SourcePath || st.Bin["pulumi"] != filepath.Join(pathDir, "pulumi") {
		t.Errorf("pulumi: %+v", st)
	}
	if st := got["kubernetes"]; st.State != StateMissing || !strings.Contains(st.Problem, "kube-scheduler is missing") || !strings.Contains(st.Problem, "kube-apiserver is not on PATH") {
		t.Errorf("kubernetes: %+v", st)
	}
	if st := got["vault"]; st.State != StateMissing || !strings.Contains(st.Problem, "not in the cache") {
		t.Errorf("vault: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(m.InstallRoot(etcd), markerName)); !os.IsNotExist(err) {
		t.Error("List wrote a marker")
	}
	for _, name := range []string{"pulumi", "vault"} {
		if _, err := os.Stat(filepath.Join(m.toolsDir, name)); !os.IsNotExist(err) {
			t.Errorf("List created %s's cache directory", name)
		}
	}
}

// TestWaiterRechecksCache: a process that waited for the lock finds the
// tool installed by the holder and uses it instead of installing again.
func TestWaiterRechecksCache(t *testing.T) {
	etcd := pinnedTool(t, "etcd")
	sentinel := &buildSentinel{}
	etcd.Recipe = sentinel.recipe()
	waiting := make(chan struct{})
	var once sync.Once
	m := testManager(t, Options{Tools: []Tool{etcd}, NoDownload: true, Progress: ProgressFunc(func(e Event) {
		if e.Phase == PhaseWaiting {
			once.Do(func() { close(waiting) })
		}
	})})
	if err := os.MkdirAll(filepath.Join(m.toolsDir, "etcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(t.Context(), filepath.Join(m.toolsDir, "etcd", etcd.Version+".lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ins *Installed
		err error
	}
	done := make(chan result, 1)
	go func() {
		ins, err := m.Ensure(t.Context(), "etcd")
		done <- result{ins, err}
	}()
	select {
	case <-waiting:
	case r := <-done:
		t.Fatalf("Ensure returned without waiting for the lock: %+v %v", r.ins, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("Ensure did not report waiting for the lock")
	}
	// The "other process" installs, then releases the lock.
	installFake(t, etcd, m.InstallRoot(etcd))
	unlock()
	r := <-done
	if r.err != nil || r.ins.Source != SourceCache || sentinel.count() != 0 {
		t.Errorf("Ensure = %+v, %v (builds %d); want the holder's install", r.ins, r.err, sentinel.count())
	}

	// A waiter gives up when its context ends.
	os.RemoveAll(m.InstallRoot(etcd))
	unlock, err = lockFile(t.Context(), filepath.Join(m.toolsDir, "etcd", etcd.Version+".lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := m.Ensure(ctx, "etcd"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ensure with an expiring context = %v, want DeadlineExceeded", err)
	}
}
