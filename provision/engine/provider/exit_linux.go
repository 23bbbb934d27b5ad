package provider

import "syscall"

// exitWithParent asks the kernel to send us SIGINT (a graceful stop in
// provider.Main) when the engine process that started us dies, instead of
// lingering until the engine health check gives up minutes later.
func exitWithParent() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGINT), 0)
}
