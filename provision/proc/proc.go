// Package proc starts and supervises the long-lived processes of a local
// cluster (etcd, kube-apiserver, …). A process is detached — its own session,
// stdin from /dev/null, output appended to a private log file — so it keeps
// running after secprov (and the Pulumi plugin that started it) exits. Its pid
// file records the pid together with the process start time from
// /proc/<pid>/stat, so a later secprov run, in another process, can tell "our
// etcd" from an unrelated process that happens to have been given the same
// (recycled) pid, and never signals the wrong one.
//
// Linux only: it reads /proc.
package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"secprov.dev/secprov/internal/atomicfile"
)

// Spec describes a process to start.
type Spec struct {
	// Name is used in messages ("etcd exited: …"); default: base of Path.
	Name string
	// Path is the binary; a name without a slash is looked up in PATH.
	Path string
	Args []string
	// Env is the complete environment of the process. Nothing is inherited
	// from secprov: its environment may hold a Pulumi passphrase or a Vault
	// token that a long-lived control-plane process has no business seeing.
	Env []string
	// Dir is the working directory; default "/", so the process does not
	// pin whatever directory secprov happened to be started in.
	Dir string
	// LogFile receives stdout and stderr (appended; created 0600 because
	// component logs can reveal cluster internals). Required.
	LogFile string
	// PidFile is written 0600 once the process runs. Required.
	PidFile string
}

// Record is the content of a pid file.
type Record struct {
	Pid int `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat: clock ticks after boot at
	// which the process started. Pid plus start time identify a process
	// across pid reuse.
	StartTime uint64    `json:"startTime"`
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	LogFile   string    `json:"logFile"`
	StartedAt time.Time `json:"startedAt"`
}

// Process is a process started by Start.
type Process struct {
	Record
	PidFile string

	done    chan struct{}
	waitErr error
}

// Done is closed when the process exits — observed only while the process
// that called Start lives, since only its parent can wait for it.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the exit status after Done is closed (nil for exit code 0).
func (p *Process) ExitErr() error {
	<-p.done
	return p.waitErr
}

// State is what a pid file says about its process.
type State int

const (
	// StateUnknown accompanies an error: the pid file could not be read.
	StateUnknown State = iota
	// StateStopped: there is no pid file.
	StateStopped
	// StateRunning: the recorded process is alive.
	StateRunning
	// StateStale: the pid file exists but its process is gone (or is a
	// zombie), or the pid now belongs to a different process.
	StateStale
)

func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateRunning:
		return "running"
	case StateStale:
		return "stale"
	default:
		return "unknown"
	}
}

// Start starts spec detached from the caller and records it in spec.PidFile.
// It refuses to start when the pid file names a process that is still
// running.
//
// The new process gets its own session (Setsid), so terminal signals meant
// for secprov (Ctrl-C) don't reach it and it does not die with secprov. It is
// still our child until we exit, so a goroutine waits for it: without that a
// process that exits while secprov runs (during tests, or a failed start)
// would linger as a zombie. When secprov exits first, the kernel reparents it
// to init (or the nearest subreaper), which reaps it in our place.
func Start(spec Spec) (*Process, error) {
	if spec.Path == "" || spec.PidFile == "" || spec.LogFile == "" {
		return nil, errors.New("proc: Spec needs Path, PidFile and LogFile")
	}
	path, err := exec.LookPath(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	if path, err = filepath.Abs(path); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	name := spec.Name
	if name == "" {
		name = filepath.Base(path)
	}
	switch st, err := Status(spec.PidFile); {
	case err != nil:
		return nil, fmt.Errorf("start %s: %w", name, err)
	case st == StateRunning:
		rec, _ := ReadPidFile(spec.PidFile)
		return nil, fmt.Errorf("start %s: already running as pid %d (pid file %s); stop it first", name, rec.Pid, spec.PidFile)
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}

	logf, err := openLog(spec.LogFile)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer devnull.Close()
	// A marker separates runs in the appended log, so a log tail shows
	// where the current run begins.
	fmt.Fprintf(logf, "---- secprov: starting %s at %s ----\n", name, time.Now().UTC().Format(time.RFC3339))

	cmd := &exec.Cmd{
		Path: path,
		Args: append([]string{path}, spec.Args...),
		// Non-nil even when empty: a nil Env would inherit ours.
		Env:    append([]string{}, spec.Env...),
		Dir:    dir,
		Stdin:  devnull,
		Stdout: logf,
		Stderr: logf,
		// *os.File outputs are handed to the child as they are: no pipe
		// and no copying goroutine that would die with us.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	p := &Process{PidFile: spec.PidFile, done: make(chan struct{})}
	// Until Wait runs, an early exit leaves a zombie whose stat is still
	// readable, so the start time can always be read here.
	st, statErr := readStat(cmd.Process.Pid)
	if statErr == nil {
		p.Record = Record{
			Pid: cmd.Process.Pid, StartTime: st.startTime, Name: name, Path: path,
			LogFile: spec.LogFile, StartedAt: time.Now().UTC(),
		}
		statErr = writePidFile(spec.PidFile, p.Record)
	}
	if statErr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: record pid %d: %w", name, cmd.Process.Pid, statErr)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	// An existing log keeps whatever mode it had unless we set it.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("set mode 0600 on log file %s: %w", path, err)
	}
	return f, nil
}

func writePidFile(path string, rec Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// ReadPidFile reads a pid file written by Start. A missing file is reported
// with os.ErrNotExist in the chain.
func ReadPidFile(path string) (Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Pid <= 0 || rec.StartTime == 0 {
		return Record{}, fmt.Errorf("pid file %s is not a secprov pid file (corrupted?): check that no process it names is still running, then remove it", path)
	}
	return rec, nil
}

// Status reports whether the process recorded in pidFile runs.
func Status(pidFile string) (State, error) {
	rec, err := ReadPidFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return StateStopped, nil
	}
	if err != nil {
		return StateUnknown, err
	}
	if isAlive(rec) {
		return StateRunning, nil
	}
	return StateStale, nil
}

// Alive says whether the process recorded in pidFile runs.
func Alive(pidFile string) bool {
	st, err := Status(pidFile)
	return err == nil && st == StateRunning
}

// isAlive: same pid, same start time, and not a zombie (a zombie has exited;
// it waits only for its parent, possibly one that never reaps).
func isAlive(rec Record) bool {
	st, err := readStat(rec.Pid)
	return err == nil && st.startTime == rec.StartTime && st.state != 'Z' && st.state != 'X' && st.state != 'x'
}

// Timing of Stop after SIGKILL and of the exit polls.
const (
	killWait = 10 * time.Second
	pollStep = 50 * time.Millisecond
)

// Stop ends the process recorded in pidFile: SIGTERM, up to grace for it to
// exit, then SIGKILL; then it removes the pid file. Stopping what is already
// stopped (no pid file, or a stale one) is not an error. ctx cuts the grace
// period short — SIGKILL follows at once — so Stop does not leave the process
// running just because the caller is in a hurry.
//
// Signals go to the process through a pidfd opened after its identity was
// checked, so they cannot hit a process that took over the pid; its process
// group (its session, since Start used Setsid) gets them too, so helpers it
// forked die with it.
func Stop(ctx context.Context, pidFile string, grace time.Duration) error {
	rec, err := ReadPidFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	who := fmt.Sprintf("%s (pid %d)", rec.Name, rec.Pid)
	p, err := os.FindProcess(rec.Pid) // opens a pidfd on Linux ≥ 5.3
	if err != nil {
		return fmt.Errorf("stop %s: %w", who, err)
	}
	defer p.Release()
	// Checked after the pidfd is open: if the pid is ours now, the pidfd
	// refers to our process for good.
	if !isAlive(rec) {
		// The leader died by itself; members it left would still hold the
		// cluster's ports and files. The group id can only be someone
		// else's if a process took over the leader's pid.
		if _, err := readStat(rec.Pid); errors.Is(err, os.ErrNotExist) && groupAlive(rec.Pid) {
			_ = syscall.Kill(-rec.Pid, syscall.SIGKILL)
			if !waitGone(context.Background(), rec, killWait) {
				return fmt.Errorf("stop %s: processes of its group still run %s after SIGKILL; check them with ps -g %d and stop them by hand", who, killWait, rec.Pid)
			}
		}
		return removePidFile(pidFile, rec)
	}

	signal(p, rec, syscall.SIGTERM)
	if !waitGone(ctx, rec, grace) {
		signal(p, rec, syscall.SIGKILL)
		if !isAlive(rec) {
			// The leader left members behind; the group id is still theirs.
			_ = syscall.Kill(-rec.Pid, syscall.SIGKILL)
		}
		if !waitGone(context.Background(), rec, killWait) {
			return fmt.Errorf("stop %s: still running %s after SIGKILL (stuck in uninterruptible I/O?); check it with ps and stop it by hand", who, killWait)
		}
	}
	return removePidFile(pidFile, rec)
}

func signal(p *os.Process, rec Record, sig syscall.Signal) {
	if st, err := readStat(rec.Pid); err == nil && st.startTime == rec.StartTime && st.pgrp == rec.Pid {
		// Still ours and still leading its group: the group id cannot
		// have been reused while its leader lives.
		_ = syscall.Kill(-rec.Pid, sig)
	}
	_ = p.Signal(sig)
}

// waitGone polls until rec's process and every other member of its
// process group are gone, d passes or ctx ends. The leader's exit alone is
// not enough: a child it forked that ignores SIGTERM would outlive Stop,
// and an up right after could collide with it.
func waitGone(ctx context.Context, rec Record, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollStep)
	defer tick.Stop()
	gone := func() bool { return !isAlive(rec) && !groupAlive(rec.Pid) }
	for {
		if gone() {
			return true
		}
		select {
		case <-ctx.Done():
			return gone()
		case <-deadline.C:
			return gone()
		case <-tick.C:
		}
	}
}

// groupAlive reports whether a process other than a zombie is in process
// group pgid. While any member lives the kernel does not hand pgid out
// again, so the members found are the group Start made.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// removePidFile removes pidFile unless it meanwhile names another process
// (a concurrent Start).
func removePidFile(pidFile string, rec Record) error {
	cur, err := ReadPidFile(pidFile)
	if err == nil && (cur.Pid != rec.Pid || cur.StartTime != rec.StartTime) {
		return nil
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pid file: %w", err)
	}
	return nil
}

type procStat struct {
	state     byte
	ppid      int
	pgrp      int
	session   int
	startTime uint64
}

// readStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var st procStat
	st.state = f[0][0]
	var errs [4]error
	st.ppid, errs[0] = strconv.Atoi(f[1])
	st.pgrp, errs[1] = strconv.Atoi(f[2])
	st.session, errs[2] = strconv.Atoi(f[3])
	st.startTime, errs[3] = strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}
