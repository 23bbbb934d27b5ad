package toolchain

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Size limits: generous for real releases (the largest, vault, is ~150 MB
// zipped and ~450 MB unpacked) while keeping a hostile server from filling
// the disk.
const (
	maxArtifactBytes = 1 << 30
	maxChecksumBytes = 1 << 20
	maxUnpackedBytes = 4 << 30
	// stallTimeout aborts a download that stops delivering bytes.
	stallTimeout = 60 * time.Second
)

// unavailableError means a release could not be fetched (no network, DNS,
// HTTP status, unsupported platform). Unlike a checksum mismatch it lets
// Ensure fall through to building.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

func unavailable(format string, args ...any) error {
	return &unavailableError{err: fmt.Errorf(format, args...)}
}

// ChecksumError says a downloaded artifact does not match its expected
// SHA-256 digest. The file has been discarded.
type ChecksumError struct {
	Artifact string // file name
	URL      string // where it was fetched from
	Expected string
	Actual   string
	// ExpectedFrom says where Expected came from: "pinned in secprov" or the
	// checksum file's URL.
	ExpectedFrom string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s (from %s): expected sha256 %s (%s), got %s; the download was discarded. "+
		"The file was corrupted in transit or the server (or mirror, %s) serves something else: retry, and if it persists, do not use that source",
		e.Artifact, e.URL, e.Expected, e.ExpectedFrom, e.Actual, EnvMirror)
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Short dial and header timeouts: on an offline machine the fallback
	// (building) must start within seconds, not after minutes of retries.
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect to %s: downloads must stay on https", req.URL)
			}
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// mirrored maps a publisher URL onto the mirror root, if one is set:
// https://HOST/PATH → MIRROR/HOST/PATH.
func (m *Manager) mirrored(raw string) (string, error) {
	if m.mirror == "" {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return m.mirror + "/" + u.Host + u.EscapedPath(), nil
}

// download fetches, verifies and unpacks t's official release, then commits
// it to the cache. The caller holds the lock.
func (m *Manager) download(ctx context.Context, t Tool, tr *tracker) (*Installed, error) {
	arts, err := t.Release(m.goos, m.goarch)
	if err != nil {
		return nil, &unavailableError{err: err}
	}
	tr.phase(PhaseDownload)
	work, err := m.tempDir(t, "work")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	staging, err := m.tempDir(t, "tmp")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	binDir := filepath.Join(staging, t.BinDir)
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	var origin []string
	for _, a := range arts {
		src, err := m.mirrored(a.URL)
		if err != nil {
			return nil, err
		}
		name := path.Base(a.URL)
		tr.step(PhaseDownload, name)
		want, from, err := m.expectedDigest(ctx, t, a)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(work, name)
		got, err := m.fetchFile(ctx, src, file)
		if err != nil {
			return nil, err
		}
		if got != want {
			// The deferred RemoveAll discards the file and anything
			// unpacked so far; nothing reached the install root.
			return nil, &ChecksumError{Artifact: name, URL: src, Expected: want, Actual: got, ExpectedFrom: from}
		}
		m.log.Debug("artifact verified", "artifact", name, "sha256", got, "expected_from", from)
		switch a.Kind {
		case KindBinary:
			err = os.Rename(file, filepath.Join(binDir, a.Binary))
		case KindTarGz:
			err = extractTarGz(file, binDir, a)
		case KindZip:
			err = extractZip(file, binDir, a)
		default:
			err = fmt.Errorf("unknown artifact kind %v", a.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("unpacking %s (from %s): %w", name, src, err)
		}
		origin = append(origin, src)
	}
	if err := m.commit(ctx, t, staging, string(SourceDownload), origin, true); err != nil {
		return nil, err
	}
	root := m.InstallRoot(t)
	return m.installed(t, SourceDownload, root, binPaths(t, root)), nil
}

// expectedDigest returns the artifact's SHA-256: pinned in the tool table,
// else read from the publisher's checksum file.
func (m *Manager) expectedDigest(ctx context.Context, t Tool, a Artifact) (digest, from string, err error) {
	if d := t.Digests[a.URL]; d != "" {
		d = strings.ToLower(d)
		if !isSHA256(d) {
			return "", "", fmt.Errorf("the digest pinned for %s is not a SHA-256 hex digest: %q", a.URL, d)
		}
		return d, "pinned in secprov", nil
	}
	if a.ChecksumURL == "" {
		return "", "", fmt.Errorf("%s has neither a pinned digest nor a checksum file; refusing to install it unverified", a.URL)
	}
	src, err := m.mirrored(a.ChecksumURL)
	if err != nil {
		return "", "", err
	}
	data, err := m.fetchBytes(ctx, src, maxChecksumBytes)
	if err != nil {
		return "", "", err
	}
	d, err := parseChecksum(data, a.ChecksumName)
	if err != nil {
		return "", "", fmt.Errorf("checksum file %s: %w", src, err)
	}
	return d, src, nil
}

// parseChecksum reads a digest from a checksum file: the whole content when
// name is empty (dl.k8s.io's .sha256 files), else the "DIGEST  NAME" line
// for name (sha256sum output, as etcd, pulumi and HashiCorp publish).
func parseChecksum(data []byte, name string) (string, error) {
	if name == "" {
		f := strings.Fields(string(data))
		if len(f) == 0 || !isSHA256(strings.ToLower(f[0])) {
			return "", errors.New("does not start with a SHA-256 hex digest")
		}
		return strings.ToLower(f[0]), nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		entry := strings.TrimPrefix(strings.TrimPrefix(f[1], "*"), "./")
		if entry != name {
			continue
		}
		d := strings.ToLower(f[0])
		if !isSHA256(d) {
			return "", fmt.Errorf("the line for %s has no SHA-256 hex digest", name)
		}
		return d, nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("does not list %s", name)
}

func isSHA256(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// get starts a GET for src. Everything that goes wrong before the body
// arrives (refused plain http aside) means the release is unavailable here.
// The returned cancel aborts the body (used by the stall timer).
func (m *Manager) get(parent context.Context, src string) (*http.Response, context.CancelFunc, error) {
	u, err := url.Parse(src)
	if err != nil || u.Scheme != "https" {
		return nil, nil, fmt.Errorf("refusing to download %s: only https URLs are allowed", src)
	}
	ctx, cancel := context.WithCancel(parent)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		cancel()
		if parent.Err() != nil {
			return nil, nil, parent.Err()
		}
		return nil, nil, unavailable("fetching %s: %w", src, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, nil, unavailable("fetching %s: HTTP %s", src, resp.Status)
	}
	return resp, cancel, nil
}

func (m *Manager) fetchBytes(ctx context.Context, src string, limit int64) ([]byte, error) {
	resp, cancel, err := m.get(ctx, src)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable("reading %s: %w", src, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes; not a checksum file", src, limit)
	}
	return data, nil
}

// fetchFile streams src into a new file at dst and returns its SHA-256.
func (m *Manager) fetchFile(ctx context.Context, src, dst string) (string, error) {
	resp, cancel, err := m.get(ctx, src)
	if err != nil {
		return "", err
	}
	defer cancel()
	defer resp.Body.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	body := &stallReader{r: resp.Body, timer: time.AfterFunc(stallTimeout, cancel)}
	defer body.timer.Stop()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, maxArtifactBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", unavailable("downloading %s: %w after %d bytes", src, err, n)
	}
	if n > maxArtifactBytes {
		return "", fmt.Errorf("%s is larger than %d bytes; refusing it", src, int64(maxArtifactBytes))
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stallReader pushes its timer back on every read, so only a download that
// stops moving is cancelled, however long a slow one takes.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(stallTimeout)
	}
	return n, err
}

// entryName validates an archive member's name and returns it cleaned. Any
// name that could land outside the extraction directory rejects the whole
// archive: a release containing one is not what the publisher ships.
func entryName(name string) (string, error) {
	bad := name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) || strings.ContainsRune(name, 0)
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			bad = true
		}
	}
	if bad {
		return "", fmt.Errorf("archive entry %q points outside the archive; refusing the archive", name)
	}
	return strings.TrimPrefix(path.Clean(name), "./"), nil
}

// selectEntry decides whether a (clean) member is extracted and where to,
// relative to the tool's BinDir.
func selectEntry(name string, a Artifact) (string, bool) {
	rel := name
	if p := strings.Trim(a.Prefix, "/"); p != "" {
		var ok bool
		if rel, ok = strings.CutPrefix(name, p+"/"); !ok {
			return "", false
		}
	}
	if rel == "" || rel == "." {
		return "", false
	}
	if len(a.Files) == 0 {
		return rel, true
	}
	for _, f := range a.Files {
		if rel == f {
			return rel, true
		}
	}
	return "", false
}

// unpacker writes selected members below dir, never outside it, and tracks
// what it wrote.
type unpacker struct {
	dir   string
	a     Artifact
	total int64
	got   map[string]bool
}

func (u *unpacker) write(rel string, r io.Reader, exec bool) error {
	if u.got[rel] {
		return fmt.Errorf("archive lists %s twice", rel)
	}
	target := filepath.Join(u.dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(target, u.dir+string(filepath.Separator)) {
		return fmt.Errorf("archive entry %q points outside the archive; refusing the archive", rel)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, maxUnpackedBytes-u.total+1))
	u.total += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corrupt archive: %s: %w", rel, err)
	}
	if u.total > maxUnpackedBytes {
		return fmt.Errorf("archive unpacks to more than %d bytes; refusing it", int64(maxUnpackedBytes))
	}
	u.got[rel] = true
	return nil
}

func (u *unpacker) complete() error {
	for _, f := range u.a.Files {
		if !u.got[f] {
			return fmt.Errorf("archive has no %s", path.Join(u.a.Prefix, f))
		}
	}
	if len(u.got) == 0 {
		return fmt.Errorf("archive has no files below %q", u.a.Prefix)
	}
	return nil
}

func extractTarGz(file, dir string, a Artifact) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("corrupt archive: %w", err)
	}
	u := &unpacker{dir: filepath.Clean(dir), a: a, got: map[string]bool{}}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("corrupt archive: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		// Links and devices are never extracted, so their targets cannot
		// redirect a later write.
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		rel, ok := selectEntry(name, a)
		if !ok {
			continue
		}
		if err := u.write(rel, tr, hdr.Mode&0o111 != 0); err != nil {
			return err
		}
	}
	// Reading to the end checks the gzip trailer (CRC and length), which
	// catches a truncated or damaged stream the tar reader may not notice.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("corrupt archive: %w", err)
	}
	return u.complete()
}

func extractZip(file, dir string, a Artifact) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return fmt.Errorf("corrupt archive: %w", err)
	}
	defer zr.Close()
	u := &unpacker{dir: filepath.Clean(dir), a: a, got: map[string]bool{}}
	// Validate every name before writing anything.
	names := make([]string, len(zr.File))
	for i, zf := range zr.File {
		if names[i], err = entryName(zf.Name); err != nil {
			return err
		}
	}
	for i, zf := range zr.File {
		if !zf.Mode().IsRegular() {
			continue
		}
		rel, ok := selectEntry(names[i], a)
		if !ok {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("corrupt archive: %s: %w", zf.Name, err)
		}
		err = u.write(rel, rc, zf.Mode()&0o111 != 0)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return u.complete()
}
