package engine

import (
	"os"
	"time"
)

// processAlive reports whether pid still runs. Windows gives no cheap start
// time, so a reused pid counts as alive (the lock then needs a manual
// delete, which the error message explains).
func processAlive(pid int, _ time.Time) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
