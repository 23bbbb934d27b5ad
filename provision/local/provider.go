package local

import (
	"context"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
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

// Notes implements cluster.Provider: local refuses at load what it
// cannot realise (blueprints.FieldSupport); what it does differently from
// a cluster with nodes is said here.
func (*Provider) Notes(bp *blueprints.Blueprint) []string {
	var notes []string
	if f := (&hardening.ControlPlane{Name: bp.Name(), Spec: bp.Spec}).APIFirewall(); f != nil {
		notes = append(notes, fmt.Sprintf("public endpoint: the API server's port accepts only loopback and %d allowed CIDR(s), through the nftables table %s %s", len(f.Allowed), hardening.FirewallFamily, f.Table))
	}
	return append(notes, blueprints.ProviderNotes(bp, v1alpha1.ProviderLocal)...)
}

// Preflight implements cluster.Provider: beyond the toolchain (ensured
// before), a public endpoint with allowedCIDRs needs nft and root.
func (*Provider) Preflight(_ context.Context, bp *blueprints.Blueprint) error {
	if (&hardening.ControlPlane{Name: bp.Name(), Spec: bp.Spec}).APIFirewall() != nil {
		return FirewallPreflight()
	}
	return nil
}
