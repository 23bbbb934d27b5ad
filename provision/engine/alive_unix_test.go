//go:build !windows

package engine

import (
	"os"
	"testing"
	"time"
)

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid(), time.Now()) {
		t.Errorf("this process reported dead")
	}
	// A lock taken before this process started cannot be ours: pid reuse.
	if _, _, ok := procStat(os.Getpid()); ok && processAlive(os.Getpid(), time.Unix(0, 0)) {
		t.Errorf("a lock older than the process was attributed to it")
	}
	if processAlive(1<<22+12345, time.Now()) {
		t.Errorf("a non-existent pid reported alive")
	}
}
