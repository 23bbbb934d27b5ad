package blueprints

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// What the loader reads, and what it refuses (blueprints/review/README.md,
// "Threat model", is the user-facing statement of this).
//
// Blueprints come from pull requests, so a path the loader is given may be
// a symbolic link planted by an attacker, pointing at a token on the CI
// runner. Every file is therefore read only if its real location lies
// inside the reviewed tree: the working directory for paths inside it,
// else the directory given (or, for a file, its directory). Symbolic links
// that stay inside the tree are followed; others are refused without
// opening the target, so no byte of it can reach an error message or a
// report. Only regular files are read: FIFOs, sockets and devices are
// refused before they are opened for reading (a FIFO would block forever).
// A file reached by two paths is read once, under the first path in sorted
// order.

// candidate is a blueprint file to read: the path as the user will see it,
// and the real directory it must stay inside.
type candidate struct {
	path string
	root string // real (symlink-free) absolute path of the reviewed tree
}

// expandPaths turns files and directories into a sorted list of candidate
// blueprint files, each with the tree it must stay inside.
func expandPaths(paths []string) ([]candidate, ErrorList) {
	var (
		out  []candidate
		errs ErrorList
	)
	wd, wdErr := os.Getwd()
	for _, p := range paths {
		root, err := treeRoot(wd, wdErr, p)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: err.Error()})
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err))})
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// A link given on the command line is judged like any other:
			// it must lead inside the tree. Only then is its target's
			// type looked at.
			real, err := realInside(root, p)
			if err != nil {
				errs = append(errs, &Error{File: p, Message: err.Error()})
				continue
			}
			if fi, err = os.Stat(real); err != nil {
				errs = append(errs, &Error{File: p, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err))})
				continue
			}
		}
		if !fi.IsDir() {
			out = append(out, candidate{path: p, root: root})
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: fmt.Sprintf("cannot list directory: %v", unwrapPathError(err))})
			continue
		}
		found := false
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !IsBlueprintFileName(name) {
				continue
			}
			if e.IsDir() {
				errs = append(errs, &Error{File: filepath.Join(p, name), Message: "is a directory, not a blueprint file; rename it or move it out of the reviewed directory"})
				continue
			}
			out = append(out, candidate{path: filepath.Join(p, name), root: root})
			found = true
		}
		if !found {
			errs = append(errs, &Error{File: p, Message: "directory holds no *.yaml or *.yml blueprint files"})
		}
	}
	slices.SortStableFunc(out, func(a, b candidate) int { return strings.Compare(a.path, b.path) })
	out = slices.CompactFunc(out, func(a, b candidate) bool { return a.path == b.path })
	return out, errs
}

// IsBlueprintFileName reports whether a directory entry is read as a
// blueprint file: *.yaml or *.yml, not hidden.
func IsBlueprintFileName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// treeRoot returns the real path of the tree a path argument may read
// inside: the working directory when p lies (as written) inside it, else
// p's own directory (p itself for a directory).
func treeRoot(wd string, wdErr error, p string) (string, error) {
	abs := p
	if !filepath.IsAbs(p) {
		if wdErr != nil {
			return "", fmt.Errorf("cannot resolve a relative path: %v", wdErr)
		}
		abs = filepath.Join(wd, p)
	}
	abs = filepath.Clean(abs)
	root := ""
	if wdErr == nil && within(filepath.Clean(wd), abs) {
		root = wd
	} else if fi, err := os.Lstat(abs); err == nil && fi.IsDir() {
		root = abs
	} else {
		root = filepath.Dir(abs)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s: %v", root, unwrapPathError(err))
	}
	return real, nil
}

// within reports whether path is dir or lies below it (both clean and
// absolute).
func within(dir, path string) bool {
	if dir == path {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}

// errOutsideTree is returned for a link that leads out of the reviewed
// tree. It names neither the target nor anything read from it.
var errOutsideTree = errors.New("is a symbolic link that leads outside the reviewed tree; blueprints follow links only inside it (copy the file into the tree, or name its real location)")

// realInside resolves every symbolic link in p and insists that the
// result lies inside root. Nothing is opened.
func realInside(root, p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errors.New("is a symbolic link to nothing (a dangling link); remove it or point it at a blueprint inside the tree")
		}
		return "", fmt.Errorf("cannot resolve: %v", unwrapPathError(err))
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", err
	}
	if !within(root, real) {
		return "", errOutsideTree
	}
	return real, nil
}

// fileID identifies a file across the paths that reach it.
type fileID struct{ dev, ino uint64 }

// readCandidate reads one blueprint file under the rules above and
// returns its content and identity.
func readCandidate(c candidate, limit int64) ([]byte, fileID, error) {
	real, err := realInside(c.root, c.path)
	if err != nil {
		return nil, fileID{}, err
	}
	if limit <= 0 {
		limit = DefaultLimits.MaxFileBytes
	}
	// The type is checked before the file is opened for reading, and
	// again on the open descriptor, so a FIFO swapped in between is still
	// caught; openRegular never blocks on a FIFO.
	fi, err := os.Lstat(real)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	if err := regularOnly(fi); err != nil {
		return nil, fileID{}, err
	}
	f, err := openRegular(real)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return nil, fileID{}, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	if err := regularOnly(fi); err != nil {
		return nil, fileID{}, err
	}
	if fi.Size() > limit {
		return nil, fileID{}, fmt.Errorf("file has %d bytes, more than the %d-byte limit for blueprints", fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fileID{}, fmt.Errorf("cannot read blueprint: %w", unwrapPathError(err))
	}
	if int64(len(data)) > limit {
		return nil, fileID{}, fmt.Errorf("file is larger than the %d-byte limit for blueprints", limit)
	}
	return data, idOf(fi, real), nil
}

func regularOnly(fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "a special file"
	switch t := fi.Mode().Type(); {
	case t&fs.ModeDir != 0:
		what = "a directory"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		what = "a socket"
	case t&fs.ModeDevice != 0:
		what = "a device"
	case t&fs.ModeSymlink != 0:
		what = "a symbolic link"
	}
	return fmt.Errorf("is %s, not a regular file; blueprints are read from regular files only", what)
}
