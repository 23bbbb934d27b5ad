package app

import (
	"context"
	"fmt"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/providers"
)

// pluginBinaryName is the name under which the Pulumi engine starts secprov
// as its resource provider.
const pluginBinaryName = provider.PluginName

// Option configures Main.
type Option func(*options)

type options struct {
	registry func() (*provider.Registry, error)
}

// WithProviderRegistry sets the resource types secprov serves when the
// engine starts it as its provider plugin. main passes the production
// registry; tests pass their own. Default: provision.PluginRegistry.
func WithProviderRegistry(build func() (*provider.Registry, error)) Option {
	return func(o *options) { o.registry = build }
}

// servePlugin serves the Pulumi provider protocol until the engine is done
// with us. The engine passes its own arguments (read by provider.Serve).
func servePlugin(ctx context.Context, o options) error {
	if o.registry == nil {
		o.registry = func() (*provider.Registry, error) { return provision.PluginRegistry(providers.Registry()) }
	}
	reg, err := o.registry()
	if err != nil {
		return fmt.Errorf("building the resource types: %w", err)
	}
	return provider.Serve(ctx, reg, Version())
}
