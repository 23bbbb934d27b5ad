//go:build !windows

package engine

import (
	"context"
	"os/exec"
)

// umaskCommand runs path with umask 077. Go cannot set a child's umask
// without changing secprov's own, so a shell sets it and execs the engine
// (same pid, no shell left behind).
func umaskCommand(ctx context.Context, path string, args []string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `umask 077 && exec "$0" "$@"`, path}, args...)...)
}
