//go:build unix

package blueprints

import (
	"io/fs"
	"os"
	"syscall"
)

// openRegular opens path for reading without following a final symbolic
// link and without blocking: a FIFO opened O_NONBLOCK returns at once,
// and the caller then refuses it by type.
func openRegular(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

func idOf(fi fs.FileInfo, _ string) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}
