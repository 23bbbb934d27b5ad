package cilium

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// The chart is read from the pinned Cilium module, never from a chart
// repository: the module proxy is the one source every machine can reach,
// and the module's sum in the checksum database pins the chart's bytes.
const (
	// ChartModule is the Go module that carries the official chart.
	ChartModule = "github.com/cilium/cilium"
	// Version is the pinned Cilium release: the module version, and the
	// chart's version without the "v".
	Version = "v1.20.2"
	// ChartPath is the chart's directory inside the module.
	ChartPath = "install/kubernetes/cilium"
)

// Release and Namespace name the Helm release Install manages.
const (
	Release   = "cilium"
	Namespace = "kube-system"
)

// ChartDir returns the directory of the pinned Cilium chart, downloading the
// module into the Go module cache when it is not there yet. It runs
// `go mod download -json`, so it needs the go command and either the module
// cache or the module proxy (GOPROXY, GOFLAGS and GONOSUMDB are honoured as
// for any go command).
func ChartDir(ctx context.Context) (string, error) {
	return chartDir(ctx, "go")
}

func chartDir(ctx context.Context, goCommand string) (string, error) {
	mod := ChartModule + "@" + Version
	goCmd, err := exec.LookPath(goCommand)
	if err != nil {
		return "", fmt.Errorf("locating the Cilium chart (module %s) needs the go command: %w; install Go 1.26 or newer and put it on PATH", mod, err)
	}
	// Run outside any module or workspace: the download must not depend on,
	// or touch, the go.mod of the directory secprov happens to run in.
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", mod)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GO111MODULE=on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return "", fmt.Errorf("locating the Cilium chart (module %s): %w", mod, ctx.Err())
	}
	var info struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		if runErr == nil {
			runErr = err
		}
		return "", fmt.Errorf("go mod download %s failed: %w: %s; check that the Go module proxy (go env GOPROXY) is reachable or the module is in the module cache (go env GOMODCACHE)", mod, runErr, strings.TrimSpace(stderr.String()))
	}
	if info.Error != "" || runErr != nil {
		msg := info.Error
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		return "", fmt.Errorf("go mod download %s failed: %s; check that the Go module proxy (go env GOPROXY) is reachable or the module is in the module cache (go env GOMODCACHE)", mod, msg)
	}
	dir := filepath.Join(info.Dir, filepath.FromSlash(ChartPath))
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("module %s has no chart at %s: %w; the module cache may be damaged: go clean -modcache, then retry", mod, ChartPath, err)
	}
	return dir, nil
}

// loadChart loads the chart in dir and checks that it is the pinned
// version, so a stray directory is not installed by mistake.
func loadChart(dir string) (*chart.Chart, error) {
	if dir == "" {
		return nil, errors.New("no chart directory: use ChartDir to locate the pinned chart")
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("loading the Cilium chart from %s: %w", dir, err)
	}
	if ch.Metadata == nil || ch.Metadata.Name != "cilium" || "v"+ch.Metadata.Version != Version {
		got := "no Chart.yaml metadata"
		if ch.Metadata != nil {
			got = fmt.Sprintf("chart %q version %q", ch.Metadata.Name, ch.Metadata.Version)
		}
		return nil, fmt.Errorf("%s holds %s, want cilium %s: pass the directory ChartDir returns", dir, got, strings.TrimPrefix(Version, "v"))
	}
	return ch, nil
}
