package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a short-lived parent: run with helperEnv set it
// starts a process with Start and exits at once, like the Pulumi plugin that
// starts a control plane and goes away.
const (
	helperEnv     = "SECPROV_PROC_TEST_HELPER"
	helperPidFile = "SECPROV_PROC_TEST_PIDFILE"
	helperLogFile = "SECPROV_PROC_TEST_LOGFILE"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "start-and-exit" {
		p, err := Start(Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"300"},
			PidFile: os.Getenv(helperPidFile), LogFile: os.Getenv(helperLogFile)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(p.Pid)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needBinaries(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("needs %s to run real processes: %v", b, err)
		}
	}
}

func spec(t *testing.T, path string, args ...string) Spec {
	dir := t.TempDir()
	return Spec{Path: path, Args: args, PidFile: filepath.Join(dir, "p.pid"), LogFile: filepath.Join(dir, "p.log")}
}

func mustStart(t *testing.T, s Spec) *Process {
	t.Helper()
	p, err := Start(s)
	if err != nil {
		t.Fatalf("Start(%s): %v", s.Path, err)
	}
	t.Cleanup(func() {
		if err := Stop(context.Background(), s.PidFile, time.Second); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	return p
}

// waitLog waits until the log holds want, so a test acts only once the
// process has reached that point (e.g. installed its signal trap).
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s never contained %q; it holds:\n%s", path, want, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStartDetachedAndStop(t *testing.T) {
	needBinaries(t, "/bin/sleep")
	s := spec(t, "/bin/sleep", "300")
	p := mustStart(t, s)

	st, err := readStat(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.startTime != p.StartTime || st.session != p.Pid || st.pgrp != p.Pid {
		t.Errorf("stat start=%d session=%d pgrp=%d; want start %d and its own session and group %d", st.startTime, st.session, st.pgrp, p.StartTime, p.Pid)
	}
	if st.ppid != os.Getpid() {
		t.Errorf("ppid = %d, want us (%d) while we live", st.ppid, os.Getpid())
	}
	fds := map[string]string{"0": os.DevNull, "1": s.LogFile, "2": s.LogFile}
	for fd, want := range fds {
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.Pid, fd))
		if err != nil || got != want {
			t.Errorf("fd %s -> %q (%v), want %q", fd, got, err, want)
		}
	}
	rec, err := ReadPidFile(s.PidFile)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pid != p.Pid || rec.StartTime != p.StartTime || rec.Path != "/bin/sleep" || rec.Name != "sleep" || rec.LogFile != s.LogFile {
		t.Errorf("pid file record %+v does not describe the process %+v", rec, p.Record)
	}
	for _, f := range []string{s.PidFile, s.LogFile} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s mode %o, want 0600", f, m)
		}
	}
	if st, err := Status(s.PidFile); st != StateRunning || err != nil || !Alive(s.PidFile) {
		t.Fatalf("Status = %v, %v; want running", st, err)
	}

	start := time.Now()
	if err := Stop(context.Background(), s.PidFile, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop of a process that honours SIGTERM took %s", d)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child was not reaped after Stop")
	}
	var ee *exec.ExitError
	if err := p.ExitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("exit = %v, want killed by SIGTERM", err)
	}
	if st, err := Status(s.PidFile); st != StateStopped || err != nil {
		t.Errorf("Status after Stop = %v, %v; want stopped", st, err)
	}
	if _, err := os.Stat(s.PidFile); !os.IsNotExist(err) {
		t.Error("pid file still exists after Stop")
	}
	// Stopping again is fine.
	if err := Stop(context.Background(), s.PidFile, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestEnvDirAndLogAppend(t *testing.T) {
	needBinaries(t, "/bin/sh")
	s := spec(t, "/bin/sh", "-c", `echo "X=$X HOME=${HOME-unset} PWD=$(pwd)"`)
	s.Env = []string{"X=1"}
	s.Dir = t.TempDir()
	t.Setenv("HOME", "/should/not/leak")
	// A log that exists with a loose mode is tightened.
	if err := os.WriteFile(s.LogFile, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		p, err := Start(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ExitErr(); err != nil {
			t.Fatalf("exit: %v", err)
		}
	}
	data, _ := os.ReadFile(s.LogFile)
	want := fmt.Sprintf("X=1 HOME=unset PWD=%s", s.Dir)
	if n := strings.Count(string(data), want); n != 2 || !strings.HasPrefix(string(data), "earlier\n") {
		t.Errorf("log =\n%s\nwant the earlier content and %q twice", data, want)
	}
	if n := strings.Count(string(data), "---- secprov: starting sh"); n != 2 {
		t.Errorf("log has %d start markers, want 2", n)
	}
	if m := mode(t, s.LogFile); m != 0o600 {
		t.Errorf("log mode %o, want 0600", m)
	}
	// The process exited on its own: the pid file is stale, not running.
	if st, err := Status(s.PidFile); st != StateStale || err != nil {
		t.Errorf("Status = %v, %v; want stale", st, err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	needBinaries(t, "/bin/sh", "/bin/sleep")
	tests := []struct {
		name    string
		grace   time.Duration
		ctxWait time.Duration // 0: no deadline
		min     time.Duration
	}{
		{"grace runs out", 700 * time.Millisecond, 0, 700 * time.Millisecond},
		{"context ends first", time.Hour, 300 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// SIG_IGN survives exec, so the forked sleep ignores TERM too and
			// only the group SIGKILL ends it.
			s := spec(t, "/bin/sh", "-c", `trap '' TERM; /bin/sleep 1000 & echo "child $!"; echo ready; wait`)
			p := mustStart(t, s)
			log := waitLog(t, s.LogFile, "ready")
			var child int
			if _, err := fmt.Sscanf(log[strings.Index(log, "child "):], "child %d", &child); err != nil {
				t.Fatalf("child pid not in log: %v", err)
			}
			ctx := context.Background()
			if tc.ctxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxWait)
				defer cancel()
			}
			start := time.Now()
			if err := Stop(ctx, s.PidFile, tc.grace); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			d := time.Since(start)
			if d < tc.min || d > tc.min+killWait {
				t.Errorf("Stop took %s, want between %s and %s", d, tc.min, tc.min+killWait)
			}
			<-p.Done()
			var ee *exec.ExitError
			if err := p.ExitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("exit = %v, want killed by SIGKILL", err)
			}
			if st, err := readStat(child); err == nil && st.state != 'Z' {
				t.Errorf("forked child %d survived in state %c", child, st.state)
			}
			t.Logf("Stop took %s", d.Round(time.Millisecond))
		})
	}
}

// TestOutlivesParent starts a process from a parent that exits right away
// and checks from here (a third process) that it still runs, was reparented,
// and can be stopped through its pid file.
func TestOutlivesParent(t *testing.T) {
	needBinaries(t, "/bin/sleep")
	dir := t.TempDir()
	pidFile, logFile := filepath.Join(dir, "sleeper.pid"), filepath.Join(dir, "sleeper.log")
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=start-and-exit", helperPidFile+"="+pidFile, helperLogFile+"="+logFile)
	out, err := helper.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper printed %q, want a pid", out)
	}
	t.Cleanup(func() { _ = Stop(context.Background(), pidFile, time.Second) })

	// The helper has exited and been reaped; its child lives on.
	if _, err := readStat(helper.Process.Pid); err == nil {
		t.Fatalf("helper %d still exists", helper.Process.Pid)
	}
	if st, err := Status(pidFile); st != StateRunning || err != nil {
		t.Fatalf("Status = %v, %v; want running after its parent exited", st, err)
	}
	st, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid == helper.Process.Pid || st.ppid == os.Getpid() {
		t.Errorf("ppid = %d, want it reparented away from the exited helper", st.ppid)
	}
	t.Logf("pid %d reparented to %d", pid, st.ppid)

	if err := Stop(context.Background(), pidFile, 5*time.Second); err != nil {
		t.Fatalf("Stop from another process: %v", err)
	}
	if s, err := Status(pidFile); s != StateStopped || err != nil {
		t.Errorf("Status after Stop = %v, %v; want stopped", s, err)
	}
	if st, err := readStat(pid); err == nil && st.state != 'Z' {
		t.Errorf("process %d still running in state %c", pid, st.state)
	}
}

func writeRecord(t *testing.T, path string, rec Record) {
	t.Helper()
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// unusedPid finds a pid no process has right now.
func unusedPid(t *testing.T) int {
	for pid := 32000; pid > 1000; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no unused pid found")
	return 0
}

func TestStatusAndStaleStop(t *testing.T) {
	needBinaries(t, "/bin/true")
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A real zombie: a child that exited and that nobody has waited for yet.
	zombie := exec.Command("/bin/true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	var zst procStat
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if zst, err = readStat(zombie.Process.Pid); err == nil && zst.state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never became a zombie: %v %c", err, zst.state)
		}
	}
	defer zombie.Wait()

	tests := []struct {
		name    string
		content any // Record, string, or nil for no file
		want    State
		wantErr bool
	}{
		{"no pid file", nil, StateStopped, false},
		{"this very process", Record{Pid: os.Getpid(), StartTime: self.startTime}, StateRunning, false},
		{"recycled pid: right pid, wrong start time", Record{Pid: os.Getpid(), StartTime: self.startTime + 1}, StateStale, false},
		{"pid of no process", Record{Pid: unusedPid(t), StartTime: 12345}, StateStale, false},
		{"zombie", Record{Pid: zombie.Process.Pid, StartTime: zst.startTime}, StateStale, false},
		{"corrupted", "12345\n", StateUnknown, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pf := filepath.Join(t.TempDir(), "x.pid")
			switch c := tc.content.(type) {
			case Record:
				writeRecord(t, pf, c)
			case string:
				if err := os.WriteFile(pf, []byte(c), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Status(pf)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("Status = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
			if Alive(pf) != (tc.want == StateRunning) {
				t.Errorf("Alive disagrees with Status %v", got)
			}
			if tc.want != StateStale {
				return
			}
			// Stopping a stale entry must signal nothing — the recycled case
			// names this test process — and just clear the pid file.
			if err := Stop(context.Background(), pf, time.Second); err != nil {
				t.Fatalf("Stop of stale entry: %v", err)
			}
			if _, err := os.Stat(pf); !os.IsNotExist(err) {
				t.Error("stale pid file not removed")
			}
		})
	}
	// Stop refuses to guess from a corrupted pid file.
	pf := filepath.Join(t.TempDir(), "bad.pid")
	if err := os.WriteFile(pf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Stop(context.Background(), pf, time.Second); err == nil || !strings.Contains(err.Error(), "not a secprov pid file") {
		t.Errorf("Stop with corrupted pid file: %v, want a clear error", err)
	}
}

func TestStartErrors(t *testing.T) {
	needBinaries(t, "/bin/sleep")
	running := spec(t, "/bin/sleep", "300")
	p := mustStart(t, running)

	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"already running", running, fmt.Sprintf("already running as pid %d", p.Pid)},
		{"missing binary", spec(t, "/nonexistent/etcd"), "/nonexistent/etcd"},
		{"no pid file", Spec{Path: "/bin/sleep", LogFile: "/tmp/x"}, "needs Path, PidFile and LogFile"},
		{"log dir missing", Spec{Path: "/bin/sleep", PidFile: filepath.Join(t.TempDir(), "p"), LogFile: "/nonexistent/dir/log"}, "open log file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want error containing %q", err, tc.want)
			}
			if tc.name != "already running" {
				if _, err := os.Stat(tc.spec.PidFile); tc.spec.PidFile != "" && !os.IsNotExist(err) {
					t.Error("failed Start left a pid file")
				}
			}
		})
	}
	if !Alive(running.PidFile) {
		t.Error("refused second Start disturbed the running process")
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	low := ephemeralLow()
	for _, p := range ports {
		if p <= 0 || p > 65535 || seen[p] {
			t.Fatalf("ports %v: %d is out of range or repeated", ports, p)
		}
		// Outgoing connections take source ports from the ephemeral range;
		// a component's port must not be among them.
		if low-portFloor >= minPortSpan && (p < portFloor || p >= low) {
			t.Errorf("port %d is outside [%d, %d): inside the ephemeral range or among well-known ports", p, portFloor, low)
		}
		seen[p] = true
	}
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// The port really is free on 127.0.0.1.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("bind 127.0.0.1:%d: %v", p, err)
	}
	l.Close()
}

// TestStopEndsWhatTheLeaderLeft: a leader that exited by itself left a
// forked child in its group; Stop must not return while it runs.
func TestStopEndsWhatTheLeaderLeft(t *testing.T) {
	s := spec(t, "/bin/sh", "-c", `trap '' TERM; /bin/sleep 1000 & echo "child $!"; echo ready; sleep 0.3`)
	p := mustStart(t, s)
	log := waitLog(t, s.LogFile, "ready")
	var child int
	if _, err := fmt.Sscanf(log[strings.Index(log, "child "):], "child %d", &child); err != nil {
		t.Fatalf("child pid not in log: %v", err)
	}
	<-p.Done()
	if st, err := readStat(child); err != nil || st.state == 'Z' {
		t.Fatalf("the child should still run after its leader exited (%v, %c)", err, st.state)
	}
	if err := Stop(context.Background(), s.PidFile, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st, err := readStat(child); err == nil && st.state != 'Z' {
		t.Errorf("forked child %d still runs (state %c) after Stop returned", child, st.state)
	}
}
