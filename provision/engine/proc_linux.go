package engine

import (
	"os/exec"
	"syscall"
)

// detach puts the engine in its own process group and has the kernel
// interrupt it if secprov dies.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
}
