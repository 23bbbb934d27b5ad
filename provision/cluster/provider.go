package cluster

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/vault"
)

// Provider realises clusters of one spec.provider.type. Everything above
// the providers (provision, cmd) talks to this interface only; a cluster's
// provider is written into its record, so later commands find it again.
type Provider interface {
	// Type is the spec.provider.type value it realises.
	Type() string
	// Tools are the toolchain tools its clusters need besides the engine
	// and Vault (e.g. kubernetes, etcd).
	Tools() []string
	// ResourceTypes are the engine resource types it serves through the
	// secprov resource plugin.
	ResourceTypes() []provider.ResourceType
	// Program declares one cluster's resources.
	Program(c *Spec) (pulumi.RunFunc, error)
	// Open opens a recorded cluster for verify; peers are the other
	// clusters of the machine, of any provider.
	Open(rec *Record, peers Peers) (verify.Target, error)
	// Status reports each component of a recorded cluster.
	Status(ctx context.Context, rec *Record) []Component
	// Cleanup stops whatever still runs for the cluster in dir and removes
	// what the provider made outside it, when the engine's state of it is
	// gone. It returns only when everything it stopped has exited.
	Cleanup(ctx context.Context, dir string) error
	// Notes are what the user should know about how the provider realises
	// a blueprint, printed before up.
	Notes(bp *blueprints.Blueprint) []string
	// Preflight fails, before anything of any cluster is created, when
	// the provider cannot realise bp on this machine (e.g. no container
	// engine), saying what to do.
	Preflight(ctx context.Context, bp *blueprints.Blueprint) error
}

// Spec is what a provider's Program is given for one cluster.
type Spec struct {
	Blueprint *blueprints.Blueprint
	Dir       string // the cluster's private directory
	// Vault is how the cluster reaches its Vault; nil when the blueprint
	// uses none.
	Vault *vault.Access
	// Binaries are the toolchain's binaries by name (etcd,
	// kube-apiserver, …, and secprov itself for the KMS plugin).
	Binaries Binaries
	// Tweak, if set, may change a component's flags before they are
	// declared. Tests use it to build a cluster with one control removed;
	// the CLI never sets it.
	Tweak func(component string, flags hardening.Flags) hardening.Flags
}

// Binaries maps a binary's name to its absolute path.
type Binaries map[string]string

// Self is the key of the secprov binary itself (it serves the KMS plugin).
const Self = "secprov"

// Component is one part of a cluster as status shows it.
type Component struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	State   string `json:"state"`
	Pid     int    `json:"pid,omitempty"`
}

// Registry holds the providers secprov knows, by type.
type Registry struct {
	byType map[string]Provider
}

// NewRegistry registers providers; a type registered twice is a
// programming error.
func NewRegistry(ps ...Provider) *Registry {
	r := &Registry{byType: map[string]Provider{}}
	for _, p := range ps {
		if _, dup := r.byType[p.Type()]; dup {
			panic("provider type " + p.Type() + " registered twice")
		}
		r.byType[p.Type()] = p
	}
	return r
}

// Types lists the registered provider types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.byType))
	for t := range r.byType {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Get returns the provider of a type, or an error naming the available
// ones.
func (r *Registry) Get(typ string) (Provider, error) {
	if p, ok := r.byType[typ]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("provider %q is not available in this version of secprov (available: %s)", typ, strings.Join(r.Types(), ", "))
}

// All returns every provider, sorted by type.
func (r *Registry) All() []Provider {
	var out []Provider
	for _, t := range r.Types() {
		out = append(out, r.byType[t])
	}
	return out
}

// ResourceTypes are the engine resource types every provider's program
// uses (the cluster record, the API server's config files, the in-cluster
// bootstrap) and each provider's own.
func (r *Registry) ResourceTypes() []provider.ResourceType {
	out := []provider.ResourceType{RecordResourceType(r.cleanup), ConfigResourceType(), BootstrapResourceType(), hostproc.ResourceType()}
	for _, p := range r.All() {
		out = append(out, p.ResourceTypes()...)
	}
	return out
}

// cleanup runs the Cleanup of the provider of type typ (records written
// before the field existed are local's).
func (r *Registry) cleanup(ctx context.Context, typ, dir string) error {
	if typ == "" {
		typ = v1alpha1.ProviderLocal
	}
	p, err := r.Get(typ)
	if err != nil {
		return err
	}
	return p.Cleanup(ctx, dir)
}

// Tools are the toolchain tools the given provider types need.
func (r *Registry) Tools(types ...string) []string {
	var out []string
	for _, t := range types {
		if p, ok := r.byType[t]; ok {
			for _, tool := range p.Tools() {
				if !slices.Contains(out, tool) {
					out = append(out, tool)
				}
			}
		}
	}
	return out
}
