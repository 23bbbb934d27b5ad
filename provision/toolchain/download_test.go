package toolchain

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// TestDownloadPinnedReleases serves every pinned tool's release in its real
// format (plain binaries, tar.gz, zip) with the publishers' checksum files
// from a local https server acting as the mirror, and installs it.
func TestDownloadPinnedReleases(t *testing.T) {
	rs := newReleaseServer(t)
	for _, tool := range Pinned() {
		t.Run(tool.Name, func(t *testing.T) {
			arts := rs.publish(t, tool)
			sentinel := &buildSentinel{}
			tool.Recipe = sentinel.recipe()
			var mu sync.Mutex
			var events []Event
			m := testManager(t, Options{
				Tools: []Tool{tool}, Mirror: rs.URL, HTTPClient: rs.Client(),
				Progress: ProgressFunc(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
			})
			ins, err := m.Ensure(t.Context(), tool.Name)
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(m.toolsDir, tool.Name, tool.Version)
			if ins.Source != SourceDownload || ins.Dir != root || ins.Root != root || ins.Version != tool.Version {
				t.Errorf("Installed = %+v, want a download into %s", ins, root)
			}
			for _, b := range tool.Binaries {
				p := filepath.Join(root, tool.BinDir, b.Name)
				if ins.Bin[b.Name] != p {
					t.Errorf("Bin[%s] = %q, want %q", b.Name, ins.Bin[b.Name], p)
				}
				fi, err := os.Stat(p)
				if err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("%s: %v, mode %v; want an executable file", p, err, fi)
				}
			}
			if tool.Name == "pulumi" {
				// Language hosts and plugins come along, as the installer does.
				if _, err := os.Stat(filepath.Join(root, "bin", "helper-plugin")); err != nil {
					t.Errorf("pulumi archive's other files were not kept beside it: %v", err)
				}
			} else if _, err := os.Stat(filepath.Join(root, "README.md")); err == nil {
				t.Error("files not listed for extraction were extracted")
			}
			mk, err := readMarker(root)
			if err != nil {
				t.Fatal(err)
			}
			if mk.Source != "download" || len(mk.Origin) != len(arts) || len(mk.Binaries) != len(tool.Binaries) {
				t.Errorf("marker = %+v", mk)
			}
			for name, rec := range mk.Binaries {
				if sum, _ := FileSHA256(ins.Bin[name]); rec.SHA256 != sum {
					t.Errorf("marker digest of %s = %s, file has %s", name, rec.SHA256, sum)
				}
			}
			assertNoLeftovers(t, m, tool.Name)
			if sentinel.count() != 0 {
				t.Error("a build was attempted although the download worked")
			}
			mu.Lock()
			kinds := []EventKind{}
			for _, e := range events {
				kinds = append(kinds, e.Kind)
			}
			mu.Unlock()
			if len(kinds) < 3 || kinds[0] != EventStart || events[0].Phase != PhaseDownload || kinds[len(kinds)-1] != EventDone {
				t.Errorf("events = %+v, want Start(download), steps, Done", events)
			}

			// Second run: a cache hit, no network.
			before := rs.hitCount(t, arts[0].URL)
			ins2, err := m.Ensure(t.Context(), tool.Name)
			if err != nil || ins2.Source != SourceCache || !reflect.DeepEqual(ins2.Bin, ins.Bin) {
				t.Errorf("second Ensure = %+v, %v; want the cached copy", ins2, err)
			}
			if rs.hitCount(t, arts[0].URL) != before {
				t.Error("a cache hit downloaded again")
			}
		})
	}
}

// TestDownloadFailures covers what must never reach the cache and what may
// fall through to building.
func TestDownloadFailures(t *testing.T) {
	etcd := pinnedTool(t, "etcd")
	etcdArts, _ := etcd.Release("linux", "amd64")
	etcdURL, etcdSums := etcdArts[0].URL, etcdArts[0].ChecksumURL
	vault := pinnedTool(t, "vault")
	vaultArts, _ := vault.Release("linux", "amd64")
	kube := pinnedTool(t, "kubernetes")
	kubeArts, _ := kube.Release("linux", "amd64")

	etcdEntries := func(extra ...archiveEntry) []archiveEntry {
		return append([]archiveEntry{
			{name: "etcd-v3.7.3-linux-amd64/etcd", body: fakeScript(fakeOutput("etcd", "v3.7.3")), mode: 0o755},
			{name: "etcd-v3.7.3-linux-amd64/etcdctl", body: fakeScript(fakeOutput("etcdctl", "v3.7.3")), mode: 0o755},
		}, extra...)
	}
	sums := func(body []byte, name string) []byte { return []byte(sha(body) + "  " + name + "\n") }

	tests := []struct {
		name  string
		tool  Tool
		setup func(t *testing.T, rs *releaseServer)
		// wantErr are substrings of the error; wantBuild says whether the
		// failure may fall through to a build.
		wantErr      []string
		wantChecksum bool
		wantBuild    bool
	}{
		{
			name: "checksum mismatch against the publisher's file",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries())
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums([]byte("what the publisher released"), etcdArts[0].ChecksumName))
			},
			wantErr:      []string{"checksum mismatch for etcd-v3.7.3-linux-amd64.tar.gz", sha([]byte("what the publisher released"))},
			wantChecksum: true,
		},
		{
			name: "checksum mismatch against a pinned digest",
			tool: func() Tool {
				k := pinnedTool(t, "kubernetes")
				k.Digests[kubeArts[1].URL] = strings.Repeat("0", 64)
				return k
			}(),
			setup: func(t *testing.T, rs *releaseServer) { rs.publish(t, kube) },
			wantErr: []string{"checksum mismatch for kube-controller-manager", "expected sha256 " + strings.Repeat("0", 64) + " (pinned in secprov)",
				"got " + sha(fakeScript(fakeOutput("kube-controller-manager", "v1.37.2")))},
			wantChecksum: true,
		},
		{
			name: "truncated archive with a matching checksum",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries(archiveEntry{name: "etcd-v3.7.3-linux-amd64/README.md", body: []byte(strings.Repeat("docs ", 4000)), mode: 0o644}))
				body = body[:len(body)/2]
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr: []string{"unpacking etcd-v3.7.3-linux-amd64.tar.gz", "corrupt archive"},
		},
		{
			name: "truncated archive against the publisher's checksum",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries())
				rs.put(t, etcdURL, body[:len(body)-10])
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr:      []string{"checksum mismatch"},
			wantChecksum: true,
		},
		{
			name: "tar entry escaping with ../",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries(archiveEntry{name: "etcd-v3.7.3-linux-amd64/../../../evil", body: []byte("pwned"), mode: 0o755}))
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr: []string{`"etcd-v3.7.3-linux-amd64/../../../evil" points outside the archive`},
		},
		{
			name: "tar entry with an absolute path",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, append([]archiveEntry{{name: "/tmp/evil", body: []byte("pwned"), mode: 0o644}}, etcdEntries()...))
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr: []string{`"/tmp/evil" points outside the archive`},
		},
		{
			name: "zip entry escaping with ../",
			tool: vault,
			setup: func(t *testing.T, rs *releaseServer) {
				body := zipBytes(t, []archiveEntry{
					{name: "../../evil", body: []byte("pwned"), mode: 0o755},
					{name: "vault", body: fakeScript(fakeOutput("vault", "v1.17.6")), mode: 0o755},
				})
				rs.put(t, vaultArts[0].URL, body)
				rs.put(t, vaultArts[0].ChecksumURL, sums(body, vaultArts[0].ChecksumName))
			},
			wantErr: []string{`"../../evil" points outside the archive`},
		},
		{
			name: "archive without a required binary",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries()[:1])
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr: []string{"archive has no etcd-v3.7.3-linux-amd64/etcdctl"},
		},
		{
			name: "checksum file that does not list the artifact",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, etcdEntries())
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, "etcd-v3.7.3-linux-arm64.tar.gz"))
			},
			wantErr: []string{"does not list etcd-v3.7.3-linux-amd64.tar.gz"},
		},
		{
			name: "downloaded binary reporting another version",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				body := tarGz(t, []archiveEntry{
					{name: "etcd-v3.7.3-linux-amd64/etcd", body: fakeScript(fakeOutput("etcd", "v3.6.0")), mode: 0o755},
					{name: "etcd-v3.7.3-linux-amd64/etcdctl", body: fakeScript(fakeOutput("etcdctl", "v3.7.3")), mode: 0o755},
				})
				rs.put(t, etcdURL, body)
				rs.put(t, etcdSums, sums(body, etcdArts[0].ChecksumName))
			},
			wantErr: []string{"fails its version check", "reports version 3.6.0, want v3.7.3"},
		},
		{
			name: "artifact 404 falls through to building",
			tool: etcd,
			setup: func(t *testing.T, rs *releaseServer) {
				rs.put(t, etcdSums, sums([]byte("x"), etcdArts[0].ChecksumName))
			},
			wantErr:   []string{errSentinelBuild.Error()},
			wantBuild: true,
		},
		{
			name:      "checksum file 404 falls through to building",
			tool:      kube,
			setup:     func(t *testing.T, rs *releaseServer) { rs.publish(t, kube); rs.del(t, kubeArts[2].ChecksumURL) },
			wantErr:   []string{errSentinelBuild.Error()},
			wantBuild: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReleaseServer(t)
			tt.setup(t, rs)
			sentinel := &buildSentinel{}
			tool := tt.tool
			tool.Recipe = sentinel.recipe()
			cache := t.TempDir()
			m := testManager(t, Options{CacheDir: cache, Tools: []Tool{tool}, Mirror: rs.URL, HTTPClient: rs.Client()})
			ins, err := m.Ensure(t.Context(), tool.Name)
			if err == nil {
				t.Fatalf("Ensure = %+v, want an error", ins)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var ce *ChecksumError
			if errors.As(err, &ce) != tt.wantChecksum {
				t.Errorf("errors.As(ChecksumError) = %v, want %v (%v)", !tt.wantChecksum, tt.wantChecksum, err)
			}
			if ce != nil && (ce.Expected == "" || ce.Actual == "" || ce.Expected == ce.Actual || !strings.Contains(err.Error(), ce.Actual)) {
				t.Errorf("checksum error %+v should name both digests", ce)
			}
			if got := sentinel.count() > 0; got != tt.wantBuild {
				t.Errorf("build attempted = %v, want %v", got, tt.wantBuild)
			}
			if _, err := os.Stat(m.InstallRoot(tool)); !os.IsNotExist(err) {
				t.Errorf("install root exists after a failed install: %v", err)
			}
			assertNoLeftovers(t, m, tool.Name)
			// Nothing anywhere else in the cache either (no escaped files).
			var files []string
			_ = filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					files = append(files, strings.TrimPrefix(p, cache))
				}
				return nil
			})
			sort.Strings(files)
			for _, f := range files {
				if !strings.HasSuffix(f, ".lock") && !strings.HasSuffix(f, ".build.log") {
					t.Errorf("unexpected file %s left in the cache", f)
				}
			}
		})
	}
}

func TestDownload404WithBuildDisabled(t *testing.T) {
	rs := newReleaseServer(t)
	m := testManager(t, Options{Tools: []Tool{pinnedTool(t, "vault")}, Mirror: rs.URL, HTTPClient: rs.Client(), NoBuild: true})
	_, err := m.Ensure(t.Context(), "vault")
	if err == nil {
		t.Fatal("Ensure succeeded with nothing to download and builds disabled")
	}
	for _, w := range []string{"vault v1.17.6", "HTTP 404", "vault_1.17.6_SHA256SUMS", "build: disabled", "PATH: lookup disabled"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestDownloadOffline checks the fall-through on a machine without network
// (this one): the publisher's host does not resolve, and the error comes
// quickly rather than after long retries.
func TestDownloadOffline(t *testing.T) {
	sentinel := &buildSentinel{}
	tool := pinnedTool(t, "etcd")
	tool.Recipe = sentinel.recipe()
	m := testManager(t, Options{Tools: []Tool{tool}, Mirror: "https://mirror.invalid"})
	_, err := m.Ensure(t.Context(), "etcd")
	if !errors.Is(err, errSentinelBuild) || sentinel.count() != 1 {
		t.Errorf("Ensure = %v; want a fall-through to building (builds: %d)", err, sentinel.count())
	}
}
