package toolchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// probeTimeout bounds one version check. Generous because a cold 300 MB
// binary on a loaded machine can take seconds to start, and a failed check
// means reinstalling.
const probeTimeout = 30 * time.Second

// markerName is the file secprov writes into an install directory after
// checking it, recording where the files came from and what they were.
const markerName = ".secprov-tool.json"

// errNotInstalled means the install directory does not exist at all.
var errNotInstalled = errors.New("not installed")

// VersionError says a binary reports another version than the pinned one.
type VersionError struct {
	Path string
	Want string
	Got  string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s reports version %s, want %s", e.Path, e.Got, e.Want)
}

// probeVersion runs the binary's version command and compares the result
// with want.
func probeVersion(ctx context.Context, b Binary, path, want string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, b.VersionArgs...)
	cmd.Env = append(os.Environ(), b.VersionEnv...)
	var out capped
	out.max = 64 << 10
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	got, ok := parseVersion(b, out.String())
	if !ok {
		cmdline := strings.Join(append([]string{path}, b.VersionArgs...), " ")
		if runErr != nil {
			return fmt.Errorf("checking the version with %q: %w (output: %q)", cmdline, runErr, snippet(out.String()))
		}
		return fmt.Errorf("checking the version with %q: no version in its output %q", cmdline, snippet(out.String()))
	}
	// A binary that printed its version and then failed is still the
	// version it printed; the output is what we trust here.
	if !sameVersion(got, want) {
		return &VersionError{Path: path, Want: want, Got: got}
	}
	return nil
}

// parseVersion finds the version in a version command's output.
func parseVersion(b Binary, out string) (string, bool) {
	m := b.VersionRE.FindStringSubmatch(out)
	if len(m) < 2 {
		return "", false
	}
	return m[1], true
}

func snippet(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// capped is a buffer that keeps at most max bytes, so a chatty binary cannot
// grow memory without bound.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// lookPath finds every binary of t in dirs. Relative and empty PATH entries
// are ignored: resolving a tool against the current directory would let a
// checked-out repository substitute binaries.
func lookPath(t Tool, dirs []string) (map[string]string, error) {
	bins := map[string]string{}
	for _, b := range t.Binaries {
		found := ""
		for _, d := range dirs {
			if d == "" || !filepath.IsAbs(d) {
				continue
			}
			p := filepath.Join(d, b.Name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				found = p
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s is not on PATH", b.Name)
		}
		bins[b.Name] = found
	}
	return bins, nil
}

// checkVersions runs every binary's version check.
func checkVersions(ctx context.Context, t Tool, bins map[string]string) error {
	for _, b := range t.Binaries {
		if err := probeVersion(ctx, b, bins[b.Name], t.Version); err != nil {
			return err
		}
	}
	return nil
}

// binPaths returns where t's binaries live below an install root.
func binPaths(t Tool, root string) map[string]string {
	bins := map[string]string{}
	for _, b := range t.Binaries {
		bins[b.Name] = filepath.Join(root, t.BinDir, b.Name)
	}
	return bins
}

// checkInstallDir reports whether root holds a complete, working install of
// t: every binary present and executable, and either a marker saying they
// are unchanged since secprov checked them, or a passing version check.
// With adopt, a directory that passes without a marker (built by hand, or by
// an older secprov) gets one.
func checkInstallDir(ctx context.Context, t Tool, root string, adopt bool) (map[string]string, error) {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, errNotInstalled
	}
	bins := binPaths(t, root)
	stats := map[string]os.FileInfo{}
	for _, b := range t.Binaries {
		p := bins[b.Name]
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s is missing", p)
		case err != nil:
			return nil, err
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file", p)
		case fi.Mode()&0o111 == 0:
			return nil, fmt.Errorf("%s is not executable", p)
		}
		stats[b.Name] = fi
	}
	if mk, err := readMarker(root); err == nil && mk.matches(t, stats) {
		return bins, nil
	}
	if err := checkVersions(ctx, t, bins); err != nil {
		return nil, err
	}
	if adopt {
		// Best effort: a read-only cache still works, it is just re-checked
		// each time.
		_ = writeMarker(root, t, "adopted", nil)
	}
	return bins, nil
}

// marker records a checked install. Size and modification time of each
// binary let later runs skip the version check (like Go's build cache, a
// changed file is noticed by its stat, not re-hashed every time); the
// digests are there for people auditing the cache.
type marker struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is how the files got here: download, build, path-link, or
	// adopted (found complete, e.g. built by hand with the same recipe).
	Source   string                  `json:"source"`
	Time     time.Time               `json:"time"`
	Origin   []string                `json:"origin,omitempty"` // URLs or go version, by source
	Binaries map[string]markerBinary `json:"binaries"`
}

type markerBinary struct {
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

func (mk *marker) matches(t Tool, stats map[string]os.FileInfo) bool {
	if mk.Name != t.Name || !sameVersion(mk.Version, t.Version) {
		return false
	}
	for _, b := range t.Binaries {
		rec, ok := mk.Binaries[b.Name]
		fi := stats[b.Name]
		if !ok || fi == nil || rec.Size != fi.Size() || !rec.ModTime.Equal(fi.ModTime()) {
			return false
		}
	}
	return true
}

func readMarker(root string) (*marker, error) {
	data, err := os.ReadFile(filepath.Join(root, markerName))
	if err != nil {
		return nil, err
	}
	var mk marker
	if err := json.Unmarshal(data, &mk); err != nil {
		return nil, err
	}
	return &mk, nil
}

// writeMarker hashes t's binaries below root and records them, replacing any
// marker atomically.
func writeMarker(root string, t Tool, source string, origin []string) error {
	mk := marker{
		Name: t.Name, Version: t.Version, Source: source,
		Time: time.Now().UTC().Truncate(time.Second), Origin: origin,
		Binaries: map[string]markerBinary{},
	}
	for name, p := range binPaths(t, root) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		sum, err := FileSHA256(p)
		if err != nil {
			return err
		}
		mk.Binaries[name] = markerBinary{SHA256: sum, Size: fi.Size(), ModTime: fi.ModTime()}
	}
	data, err := json.MarshalIndent(mk, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(root, markerName), append(data, '\n'), 0o644)
}

// FileSHA256 is the hex sha256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
