package paths

import (
	"os"
	"path/filepath"
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
