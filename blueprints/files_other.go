//go:build !unix

package blueprints

import (
	"hash/fnv"
	"io/fs"
	"os"
)

func openRegular(path string) (*os.File, error) { return os.Open(path) }

// idOf falls back to the real path where the platform has no inode.
func idOf(_ fs.FileInfo, real string) fileID {
	h := fnv.New64a()
	h.Write([]byte(real))
	return fileID{ino: h.Sum64()}
}
