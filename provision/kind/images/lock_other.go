//go:build !unix

package images

import (
	"context"
	"errors"
)

func lockDir(context.Context, string) (func(), error) {
	return nil, errors.New("offline images are built on Linux (debootstrap, Docker)")
}
