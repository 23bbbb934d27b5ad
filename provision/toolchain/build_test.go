package toolchain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tinyTool is a tool with a real but cheap recipe: a small main package
// written into the wrapper module and compiled with go build, through the
// same code path as the pinned tools. counter, if set, counts builds.
func tinyTool(version string, counter *atomic.Int32) Tool {
	main := fmt.Sprintf(`package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println("tiny %s")
		return
	}
	fmt.Println("hello from tiny")
}
`, version)
	steps := []Step{{Desc: "go build", Go: []string{"build", "-trimpath", "-o", "{out}/", "."}, Env: []string{"CGO_ENABLED=0"}}}
	if counter != nil {
		steps = append([]Step{{Desc: "count", Func: func(context.Context, *Builder) error {
			counter.Add(1)
			// Widen the window in which a second installer could race.
			time.Sleep(200 * time.Millisecond)
			return nil
		}}}, steps...)
	}
	return Tool{
		Name:    "tiny",
		Version: version,
		Binaries: []Binary{{
			Name: "tiny", VersionArgs: []string{"--version"}, VersionRE: regexp.MustCompile(`tiny (v\S+)`),
		}},
		Recipe: &Recipe{
			Files: map[string]string{"go.mod": "module secprov-toolchain/tiny\n\ngo 1.26\n", "main.go": main},
			Steps: steps,
		},
	}
}

func needGo(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skipf("runs go build: skipped in -short mode")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("the go command is needed to test builds: %v", err)
	}
}

func TestBuildTinyTool(t *testing.T) {
	needGo(t)
	var events []Event
	var mu sync.Mutex
	tool := tinyTool("v0.1.0", nil)
	m := testManager(t, Options{Tools: []Tool{tool}, Progress: ProgressFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})})
	ins, err := m.Ensure(t.Context(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if ins.Source != SourceBuild || ins.Bin["tiny"] != filepath.Join(m.InstallRoot(tool), "tiny") {
		t.Errorf("Installed = %+v", ins)
	}
	out, err := exec.Command(ins.Bin["tiny"]).Output()
	if err != nil || string(out) != "hello from tiny\n" {
		t.Errorf("running the built binary: %q, %v", out, err)
	}
	log, err := os.ReadFile(m.BuildLog(tool))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "build -trimpath -o ", "# ok after"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
	mk, err := readMarker(ins.Root)
	if err != nil || mk.Source != "build" || len(mk.Origin) != 1 || !strings.HasPrefix(mk.Origin[0], "go1.") {
		t.Errorf("marker = %+v, %v", mk, err)
	}
	assertNoLeftovers(t, m, "tiny")
	mu.Lock()
	var steps []string
	for _, e := range events {
		if e.Kind == EventStep && e.Step != "" {
			steps = append(steps, e.Step)
		}
	}
	last := events[len(events)-1]
	mu.Unlock()
	if len(steps) != 1 || steps[0] != "go build [1/1]" || events[0].Kind != EventStart || events[0].Phase != PhaseBuild {
		t.Errorf("progress = %+v", events)
	}
	if last.Kind != EventDone || last.Installed.Source != SourceBuild {
		t.Errorf("last event = %+v", last)
	}
}

func TestBuildFailureReportsLog(t *testing.T) {
	needGo(t)
	tool := tinyTool("v0.1.0", nil)
	tool.Recipe.Files["main.go"] = "package main\n\nfunc main() { undefinedFunction() }\n"
	m := testManager(t, Options{Tools: []Tool{tool}})
	_, err := m.Ensure(t.Context(), "tiny")
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("Ensure = %v, want a BuildError", err)
	}
	if be.Log != m.BuildLog(tool) || be.Step != "go build" {
		t.Errorf("BuildError = %+v", be)
	}
	msg := err.Error()
	for _, want := range []string{"tiny v0.1.0", `failed at step "go build"`, be.Log, "undefined: undefinedFunction"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "wrapper go.mod") {
		t.Errorf("the quoted tail should end at the failure, not the go.mod dump:\n%s", msg)
	}
	log, _ := os.ReadFile(be.Log)
	if !bytes.Contains(log, []byte("module secprov-toolchain/tiny")) {
		t.Error("the log does not record the wrapper go.mod")
	}
	if _, err := os.Stat(m.InstallRoot(tool)); !os.IsNotExist(err) {
		t.Error("a failed build left an install directory")
	}
	assertNoLeftovers(t, m, "tiny")
}

func TestBuildWrongVersionIsRejected(t *testing.T) {
	needGo(t)
	tool := tinyTool("v0.1.0", nil)
	tool.Recipe.Files["main.go"] = tinyTool("v0.2.0", nil).Recipe.Files["main.go"]
	m := testManager(t, Options{Tools: []Tool{tool}})
	_, err := m.Ensure(t.Context(), "tiny")
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Got != "v0.2.0" {
		t.Fatalf("Ensure = %v, want a VersionError reporting v0.2.0", err)
	}
	if _, err := os.Stat(m.InstallRoot(tool)); !os.IsNotExist(err) {
		t.Error("a binary with the wrong version reached the cache")
	}
}

// TestDownloadUnavailableFallsThroughToRealBuild: the release 404s, the
// recipe builds it.
func TestDownloadUnavailableFallsThroughToRealBuild(t *testing.T) {
	needGo(t)
	rs := newReleaseServer(t)
	tool := tinyTool("v0.1.0", nil)
	tool.Release = func(goos, goarch string) ([]Artifact, error) {
		return []Artifact{{URL: "https://tiny.example/tiny", Kind: KindBinary, Binary: "tiny", ChecksumURL: "https://tiny.example/tiny.sha256"}}, nil
	}
	m := testManager(t, Options{Tools: []Tool{tool}, Mirror: rs.URL, HTTPClient: rs.Client()})
	ins, err := m.Ensure(t.Context(), "tiny")
	if err != nil || ins.Source != SourceBuild {
		t.Fatalf("Ensure = %+v, %v; want a build after the 404", ins, err)
	}
	if rs.hitCount(t, "https://tiny.example/tiny.sha256") != 1 {
		t.Error("the download was not tried first")
	}
}

// TestConcurrentEnsureSameCache runs several Managers on one cache at once,
// for a built tool and a downloaded tool: exactly one installs, the others
// wait and find it in the cache.
func TestConcurrentEnsureSameCache(t *testing.T) {
	needGo(t)
	const n = 6
	var builds atomic.Int32
	built := tinyTool("v0.1.0", &builds)

	rs := newReleaseServer(t)
	downloaded := Tool{
		Name: "fetched", Version: "v1.0.0",
		Binaries: []Binary{{Name: "fetched", VersionArgs: []string{"--version"}, VersionRE: regexp.MustCompile(`fetched (v\S+)`)}},
		Release: func(goos, goarch string) ([]Artifact, error) {
			return []Artifact{{URL: "https://fetch.example/v1.0.0/fetched.zip", Kind: KindZip, Files: []string{"fetched"},
				ChecksumURL: "https://fetch.example/v1.0.0/SHA256SUMS", ChecksumName: "fetched.zip"}}, nil
		},
	}
	body := zipBytes(t, []archiveEntry{{name: "fetched", body: fakeScript("fetched v1.0.0"), mode: 0o755}})
	rs.put(t, "https://fetch.example/v1.0.0/fetched.zip", body)
	rs.put(t, "https://fetch.example/v1.0.0/SHA256SUMS", []byte(sha(body)+"  fetched.zip\n"))

	cache := t.TempDir()
	for _, name := range []string{"tiny", "fetched"} {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			results := make([]*Installed, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				m := testManager(t, Options{CacheDir: cache, Tools: []Tool{built, downloaded}, Mirror: rs.URL, HTTPClient: rs.Client()})
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = m.Ensure(t.Context(), name)
				}()
			}
			close(start)
			wg.Wait()
			sources := map[Source]int{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("Ensure %d: %v", i, errs[i])
				}
				sources[results[i].Source]++
				if results[i].Bin[name] != results[0].Bin[name] {
					t.Errorf("Ensure %d got %s, Ensure 0 got %s", i, results[i].Bin[name], results[0].Bin[name])
				}
			}
			installs := sources[SourceBuild] + sources[SourceDownload]
			if installs != 1 || sources[SourceCache] != n-1 {
				t.Errorf("sources = %v, want exactly one install and %d cache hits", sources, n-1)
			}
			if out, err := exec.Command(results[0].Bin[name], "--version").Output(); err != nil || !strings.Contains(string(out), name) {
				t.Errorf("the installed binary does not run: %q %v", out, err)
			}
		})
	}
	if builds.Load() != 1 {
		t.Errorf("the recipe ran %d times, want 1", builds.Load())
	}
	if hits := rs.hitCount(t, "https://fetch.example/v1.0.0/fetched.zip"); hits != 1 {
		t.Errorf("the artifact was downloaded %d times, want 1", hits)
	}
}

// helperEnvCache makes the test binary act as a separate secprov process
// ensuring the tiny tool in that cache (see TestMain).
const helperEnvCache = "SECPROV_TOOLCHAIN_TEST_HELPER_CACHE"

func runHelperProcess() int {
	m, err := New(Options{CacheDir: os.Getenv(helperEnvCache), Tools: []Tool{tinyTool("v0.1.0", nil)}, NoPath: true, NoDownload: true})
	if err == nil {
		var ins *Installed
		if ins, err = m.Ensure(context.Background(), "tiny"); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(ins)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestConcurrentEnsureProcesses runs separate processes (this test binary
// re-executed) against one cache: flock must serialize them too.
func TestConcurrentEnsureProcesses(t *testing.T) {
	needGo(t)
	const n = 3
	cache := t.TempDir()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range n {
		cmds[i] = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), helperEnvCache+"="+cache)
		outs[i] = &bytes.Buffer{}
		cmds[i].Stdout = outs[i]
		cmds[i].Stderr = outs[i]
	}
	for i := range n {
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	sources := map[Source]int{}
	for i := range n {
		if err := cmds[i].Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		var ins Installed
		if err := json.Unmarshal(outs[i].Bytes(), &ins); err != nil {
			t.Fatalf("process %d output %q: %v", i, outs[i], err)
		}
		sources[ins.Source]++
	}
	if sources[SourceBuild] != 1 || sources[SourceCache] != n-1 {
		t.Errorf("sources = %v, want one build and %d cache hits", sources, n-1)
	}
}
