// Package providers is the registration: the one place that names the
// cluster providers secprov has. Everything else reaches them through
// cluster.Provider, chosen by spec.provider.type or by a cluster's record
// (TestProviderPackagesAreNamedOnce keeps it that way).
package providers

import (
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/kind"
	"secprov.dev/secprov/provision/local"
)

// Registry returns every cluster provider.
func Registry() *cluster.Registry {
	return cluster.NewRegistry(local.New(), kind.New(kind.Options{Cilium: kind.HelmCilium}))
}
