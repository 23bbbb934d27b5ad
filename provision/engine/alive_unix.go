//go:build !windows

package engine

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processAlive reports whether pid is still the process that took a lock
// at since. A pid that was reused by a process started later (Linux tells
// us via /proc) counts as dead.
func processAlive(pid int, since time.Time) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return true // can't tell: assume alive, never break a live lock
	}
	state, started, ok := procStat(pid)
	if ok && (state == 'Z' || started.After(since.Add(2*time.Second))) {
		return false // exited but not reaped yet, or the pid was reused
	}
	return true
}

// procStat reads a process's state letter and start time from /proc
// (Linux only).
func procStat(pid int) (byte, time.Time, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, time.Time{}, false
	}
	// Field 22 is the start time in clock ticks after boot; the command
	// name (field 2) may hold spaces, so count from its closing paren.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, time.Time{}, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, time.Time{}, false
	}
	state := fields[0][0]
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return state, time.Time{}, false
	}
	procStat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return state, time.Time{}, false
	}
	for _, line := range strings.Split(string(procStat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return state, time.Time{}, false
			}
			// USER_HZ is 100 on every Linux architecture Go supports.
			return state, time.Unix(boot, 0).Add(time.Duration(ticks) * 10 * time.Millisecond), true
		}
	}
	return state, time.Time{}, false
}
