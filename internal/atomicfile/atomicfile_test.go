package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteModesAndReplacement(t *testing.T) {
	// A permissive umask must not widen a key, a strict one must not narrow
	// a certificate: the mode is set explicitly.
	for _, umask := range []int{0o000, 0o077} {
		old := syscall.Umask(umask)
		dir := t.TempDir()
		for _, tc := range []struct {
			name string
			perm os.FileMode
		}{
			{"key.pem", 0o600},
			{"cert.pem", 0o644},
		} {
			p := filepath.Join(dir, tc.name)
			for _, content := range []string{"first", "second"} {
				if err := Write(p, []byte(content), tc.perm); err != nil {
					t.Fatalf("umask %o: Write(%s): %v", umask, tc.name, err)
				}
				got, err := os.ReadFile(p)
				if err != nil || string(got) != content {
					t.Fatalf("umask %o: %s = %q, %v; want %q", umask, tc.name, got, err, content)
				}
				fi, _ := os.Stat(p)
				if fi.Mode().Perm() != tc.perm {
					t.Errorf("umask %o: %s mode = %o, want %o", umask, tc.name, fi.Mode().Perm(), tc.perm)
				}
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("umask %o: directory holds %d entries, want 2 (temporary files left behind?)", umask, len(entries))
		}
		syscall.Umask(old)
	}
}

func TestWriteMissingDirectory(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o600)
	if err == nil {
		t.Fatal("Write into a missing directory succeeded, want an error")
	}
}
