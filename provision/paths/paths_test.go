package paths

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateAndCacheDirs(t *testing.T) {
	tests := []struct {
		name               string
		env                map[string]string
		wantState, wantCch string
	}{
		{"override", map[string]string{EnvHome: "/s", EnvCache: "/c", "XDG_STATE_HOME": "/x", "XDG_CACHE_HOME": "/y"}, "/s", "/c"},
		{"xdg", map[string]string{"XDG_STATE_HOME": "/x", "XDG_CACHE_HOME": "/y"}, "/x/secprov", "/y/secprov"},
		{"relative xdg ignored", map[string]string{"XDG_STATE_HOME": "rel", "XDG_CACHE_HOME": "rel", "HOME": "/h"}, "/h/.local/state/secprov", "/h/.cache/secprov"},
		{"home", map[string]string{"HOME": "/h"}, "/h/.local/state/secprov", "/h/.cache/secprov"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvHome, EnvCache, "XDG_STATE_HOME", "XDG_CACHE_HOME"} {
				t.Setenv(k, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := StateDir()
			if err != nil || s != tt.wantState {
				t.Errorf("StateDir() = %q, %v; want %q", s, err, tt.wantState)
			}
			c, err := CacheDir()
			if err != nil || c != tt.wantCch {
				t.Errorf("CacheDir() = %q, %v; want %q", c, err, tt.wantCch)
			}
		})
	}
}

func TestEnsurePrivateDir(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePrivateDir(d); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode = %v, want 0700", fi.Mode().Perm())
	}
}

// TestClusterDirStaysInsideTheStateDir feeds ClusterDir names a hostile
// command line or state file could carry; none may resolve to a path
// outside <state>/clusters, whoever the caller is.
func TestClusterDirStaysInsideTheStateDir(t *testing.T) {
	state := t.TempDir()
	for _, name := range []string{
		"", ".", "..", "../..", "../../etc", "a/b", "/etc", "a/../../b", `a\b`,
		"Prod", "-prod", "prod-", "pröd", "prod\n", "a b", "a.b", "a_b",
		string([]byte{'a', 0xff}), "a\x00b", strings.Repeat("a", 64),
	} {
		if d, err := ClusterDir(state, name); err == nil || !errors.Is(err, ErrClusterName) {
			t.Errorf("ClusterDir(%q) = %q, %v; want ErrClusterName", name, d, err)
		} else if !strings.Contains(err.Error(), "DNS label") || strings.ContainsAny(err.Error(), "\n\x00") {
			t.Errorf("ClusterDir(%q): message %q should explain the rule on one line", name, err)
		}
	}
	for _, name := range []string{"a", "shop-prod", "0", "a-1-b", strings.Repeat("a", 63)} {
		d, err := ClusterDir(state, name)
		if err != nil {
			t.Errorf("ClusterDir(%q): %v", name, err)
			continue
		}
		if want := filepath.Join(state, "clusters", name); d != want {
			t.Errorf("ClusterDir(%q) = %q, want %q", name, d, want)
		}
	}
}
