package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// layerTime is the modification time of every file secprov adds to an
// image, so the same inputs give the same layer bytes.
var layerTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// layer writes a filesystem tarball for `docker import`: root-owned
// entries with explicit modes, parents created before children. Paths are
// absolute image paths ("/usr/bin/x"). A directory already written (by
// the base rootfs copied in first, or earlier) is not written again, so
// adding files never changes a base directory's mode.
//
// Docker refuses a tarball that names a path twice, so a layer is written
// in two passes (see writeLayer): a dry run that only collects the paths
// secprov adds, then the real one, where the base rootfs's entries for
// those paths are left out.
type layer struct {
	tw   *tar.Writer
	seen map[string]bool
	// dry collects names without writing anything.
	dry   bool
	added map[string]bool // non-directory paths written by secprov (dry run)
	skip  map[string]bool // base entries to leave out (real run)
}

func newLayer(w io.Writer) *layer {
	return &layer{tw: tar.NewWriter(w), seen: map[string]bool{}, added: map[string]bool{}}
}

// writeLayer writes the tarball that fn describes into w.
func writeLayer(w io.Writer, fn func(l *layer) error) error {
	dry := &layer{dry: true, seen: map[string]bool{}, added: map[string]bool{}}
	if err := fn(dry); err != nil {
		return err
	}
	l := newLayer(w)
	l.skip = dry.added
	if err := fn(l); err != nil {
		return err
	}
	return l.close()
}

// add marks a non-directory path as written, failing on a second write.
func (l *layer) add(name string) error {
	if l.added[name] {
		return fmt.Errorf("image layer: %s written twice", name)
	}
	l.added[name] = true
	l.seen[name] = true
	return nil
}

func tarName(p string) string { return strings.TrimPrefix(path.Clean(p), "/") }

// copyTar copies every entry of a tarball (a cached rootfs) into the layer.
func (l *layer) copyTar(r io.Reader) error {
	if l.dry {
		return nil
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the rootfs tarball: %w", err)
		}
		name := tarName(h.Name)
		if name == "." || name == "" || (h.Typeflag != tar.TypeDir && l.skip[name]) {
			continue
		}
		l.seen[name] = true
		if err := l.tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(l.tw, tr); err != nil {
			return err
		}
	}
}

// dir writes a directory and any missing parents (0755).
func (l *layer) dir(p string, mode int64) error {
	name := tarName(p)
	if name == "." || l.seen[name] {
		return nil
	}
	if parent := path.Dir(name); parent != "." {
		if err := l.dir(parent, 0o755); err != nil {
			return err
		}
	}
	l.seen[name] = true
	if l.dry {
		return nil
	}
	return l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: layerTime, Format: tar.FormatPAX})
}

// bytes writes a regular file with the given content.
func (l *layer) bytes(p string, mode int64, content []byte) error {
	name := tarName(p)
	if err := l.dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := l.add(name); err != nil || l.dry {
		return err
	}
	if err := l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content)), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := l.tw.Write(content)
	return err
}

// file writes a regular file copied from the host path src.
func (l *layer) file(p string, mode int64, src string) error {
	if l.dry {
		name := tarName(p)
		if err := l.dir(path.Dir(name), 0o755); err != nil {
			return err
		}
		return l.add(name)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	name := tarName(p)
	if err := l.dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := l.add(name); err != nil {
		return err
	}
	if err := l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size(), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(l.tw, f)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s changed while it was copied", src)
	}
	return err
}

// symlink writes a symbolic link p → target.
func (l *layer) symlink(p, target string) error {
	name := tarName(p)
	if err := l.dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := l.add(name); err != nil || l.dry {
		return err
	}
	return l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: layerTime, Format: tar.FormatPAX})
}

// tree copies the regular files under the host directory src to dst,
// each with the mode modeOf returns for its path relative to src; skip
// (may be nil) leaves out files and directories by that relative path.
// Directories are 0755. Files are visited in lexical order.
func (l *layer) tree(dst, src string, modeOf func(rel string) int64, skip func(rel string, dir bool) bool) error {
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, rel := range files {
		if err := l.file(path.Join(dst, rel), modeOf(rel), filepath.Join(src, filepath.FromSlash(rel))); err != nil {
			return err
		}
	}
	return nil
}

func (l *layer) close() error { return l.tw.Close() }
