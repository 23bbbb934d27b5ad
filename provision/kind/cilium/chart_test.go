package cilium

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChartDir(t *testing.T) {
	dir, err := chartDirOnce()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(filepath.ToSlash(dir), "github.com/cilium/cilium@"+Version+"/"+ChartPath) {
		t.Errorf("ChartDir = %s, want the pinned module's %s", dir, ChartPath)
	}
	if _, err := loadChart(dir); err != nil {
		t.Error(err)
	}
}

func TestChartDirErrors(t *testing.T) {
	bin := t.TempDir()
	failing := filepath.Join(bin, "go-failing")
	script := "#!/bin/sh\necho '{\"Path\":\"github.com/cilium/cilium\",\"Version\":\"v1.20.2\",\"Error\":\"module lookup disabled by GOPROXY=off\"}'\nexit 1\n"
	if err := os.WriteFile(failing, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, goCmd string
		want        []string
	}{
		{"no go command", filepath.Join(bin, "no-such-go"), []string{"needs the go command", "install Go"}},
		{"module unavailable", failing, []string{"go mod download github.com/cilium/cilium@v1.20.2 failed", "GOPROXY=off", "module proxy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := chartDir(t.Context(), c.goCmd)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadChartRefusesOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: cilium\nversion: 1.19.0\n"), 0o644)
	_, err := loadChart(dir)
	if err == nil || !strings.Contains(err.Error(), `version "1.19.0", want cilium 1.20.2`) {
		t.Errorf("loadChart of a 1.19.0 chart: %v", err)
	}
}
