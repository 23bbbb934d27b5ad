package engine

import (
	"context"
	"os/exec"
)

// umaskCommand runs path directly: Windows has no umask; the state
// directory's ACL protects the files.
func umaskCommand(ctx context.Context, path string, args []string) *exec.Cmd {
	return exec.CommandContext(ctx, path, args...)
}

func detach(*exec.Cmd) {}
