package local

import (
	"context"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/paths"
)

// Provider is the local provider behind the cluster.Provider interface.
type Provider struct{}

// New returns the local provider.
func New() *Provider { return &Provider{} }

var _ cluster.Provider = (*Provider)(nil)

// Type implements cluster.Provider.
func (*Provider) Type() string { return v1alpha1.ProviderLocal }

// Tools implements cluster.Provider: the control plane's binaries.
func (*Provider) Tools() []string { return []string{"kubernetes", "etcd"} }

// ResourceTypes implements cluster.Provider.
func (*Provider) ResourceTypes() []provider.ResourceType { return ResourceTypes() }

// Program implements cluster.Provider.
func (*Provider) Program(s *cluster.Spec) (pulumi.RunFunc, error) {
	c := &Cluster{Blueprint: s.Blueprint.Blueprint, Dir: s.Dir, Vault: s.Vault, Tweak: s.Tweak, Binaries: Binaries{
		Etcd: s.Binaries[Etcd], APIServer: s.Binaries[APIServer], ControllerManager: s.Binaries[ControllerManager],
		Scheduler: s.Binaries[Scheduler], KMSPlugin: s.Binaries[cluster.Self],
	}}
	return c.Program()
}

// Open implements cluster.Provider.
func (*Provider) Open(rec *cluster.Record, peers cluster.Peers) (verify.Target, error) {
	return NewTarget(rec, peers)
}

// Status implements cluster.Provider: every process from its pid file.
func (*Provider) Status(_ context.Context, rec *cluster.Record) []cluster.Component {
	l := paths.NewLayout(rec.Dir)
	comps := Components
	if rec.Vault != nil && rec.Vault.KMSSocket != "" {
		// The API server cannot write encrypted data without it.
		comps = append([]string{KMSPlugin}, comps...)
	}
	var out []cluster.Component
	for _, c := range comps {
		st, running, pid := hostproc.Status(l, c)
		out = append(out, cluster.Component{Name: c, State: st, Running: running, Pid: pid})
	}
	return out
}

// Cleanup implements cluster.Provider.
func (*Provider) Cleanup(ctx context.Context, dir string) error { return Cleanup(ctx, dir) }

// Cleanup stops every process the cluster directory names and removes the
// KMS socket directory kept outside it.
func Cleanup(ctx context.Context, dir string) error {
	return hostproc.Cleanup(ctx, paths.NewLayout(dir))
}

// Notes implements cluster.Provider: local realises every field as
// written.
func (*Provider) Notes(*blueprints.Blueprint) []string { return nil }

// Preflight implements cluster.Provider: local needs nothing beyond the
// toolchain, which is ensured before.
func (*Provider) Preflight(context.Context, *blueprints.Blueprint) error { return nil }
