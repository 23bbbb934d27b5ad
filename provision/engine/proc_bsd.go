//go:build !linux && !windows

package engine

import (
	"os/exec"
	"syscall"
)

// detach puts the engine in its own process group.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
