//go:build !unix

package toolchain

import (
	"context"
	"errors"
	"os/exec"
)

func lockFile(ctx context.Context, path string, onWait func()) (func(), error) {
	return nil, errors.New("the toolchain cache needs flock, which this platform lacks; secprov supports Linux")
}

func killGroupOnCancel(cmd *exec.Cmd) {}
