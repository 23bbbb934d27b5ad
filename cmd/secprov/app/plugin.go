package app

import (
	"context"
	"errors"
)

// pluginBinaryName is the name under which the Pulumi engine starts secprov
// as its resource provider.
const pluginBinaryName = "pulumi-resource-secprov"

func servePlugin(ctx context.Context, args []string) error {
	return errors.New("the secprov resource provider is not built into this binary yet")
}
