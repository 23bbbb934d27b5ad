// Package provision turns blueprints into clusters: it resolves the pinned
// toolchain, runs one Pulumi stack per blueprint through the Automation
// API (prod and test concurrently) and hands the live clusters to verify.
// Providers (local now, kind next) declare their resources behind the
// Provider interface.
package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
)

// Registry is every resource type secprov's resource plugin serves.
func Registry() (*provider.Registry, error) {
	return provider.NewRegistry(append(local.ResourceTypes(), vaultres.ResourceTypes()...)...)
}

// Provider creates clusters of one provider type.
type Provider interface {
	Name() string
	// Program declares a cluster's resources; va is how it reaches its
	// Vault (nil when the blueprint uses none).
	Program(bp *blueprints.Blueprint, va *vault.Access) (pulumi.RunFunc, error)
	// Target opens a live cluster for verify.
	Target(cluster string) (verify.Target, error)
	// Notes are things the user should know about how the provider realises
	// a blueprint (e.g. a fallback), printed before `up`.
	Notes(bp *blueprints.Blueprint) []string
}

// Config configures a Provisioner.
type Config struct {
	StateDir string
	Engine   *engine.Engine
	// Binaries of the control plane for the local provider.
	LocalBinaries local.Binaries
	// VaultBinary runs the local Vault for blueprints without
	// spec.vault.address; empty when none is needed.
	VaultBinary string
	Log         *slog.Logger
	// Tweak may change a component's flags before they are declared; tests
	// use it to build a cluster with one control removed.
	Tweak func(cluster, component string, flags hardening.Flags) hardening.Flags
}

// Provisioner runs plan/up/down/status over a set of blueprints.
type Provisioner struct {
	cfg       Config
	providers map[string]Provider

	vaultMu     sync.Mutex
	localAccess *vault.Access // the local Vault, once ensured in this run
}

// New returns a Provisioner.
func New(cfg Config) *Provisioner {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Provisioner{cfg: cfg}
	p.providers = map[string]Provider{v1alpha1.ProviderLocal: &localProvider{p: p}}
	return p
}

func (p *Provisioner) provider(bp *blueprints.Blueprint) (Provider, error) {
	prov, ok := p.providers[bp.Spec.Provider.Type]
	if !ok {
		return nil, fmt.Errorf("%s: provider %q is not available in this version of secprov (available: %s); set spec.provider.type: local",
			bp.Name(), bp.Spec.Provider.Type, v1alpha1.ProviderLocal)
	}
	return prov, nil
}

// Check refuses blueprint sets that cannot be provisioned before anything
// is created: duplicate cluster names and unavailable providers.
func (p *Provisioner) Check(bps []*blueprints.Blueprint) error {
	errs := []error{blueprints.CheckUniqueNames(bps)}
	for _, bp := range bps {
		if _, err := p.provider(bp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ClusterEvent is an engine progress event of one cluster.
type ClusterEvent struct {
	Cluster string
	engine.Event
}

// ClusterResult is the outcome of one cluster's operation.
type ClusterResult struct {
	Cluster string
	Plan    *engine.Plan   // Plan only
	Result  *engine.Result // Up/Down only
	Err     error
}

// Plan previews every blueprint concurrently.
func (p *Provisioner) Plan(ctx context.Context, bps []*blueprints.Blueprint, onEvent func(ClusterEvent)) []ClusterResult {
	return p.each(ctx, bps, func(ctx context.Context, bp *blueprints.Blueprint) ClusterResult {
		prog, err := p.program(ctx, bp)
		if err != nil {
			return ClusterResult{Cluster: bp.Name(), Err: err}
		}
		plan, err := p.cfg.Engine.Preview(ctx, bp.Name(), prog, engine.Options{OnEvent: clusterEvents(bp.Name(), onEvent)})
		return ClusterResult{Cluster: bp.Name(), Plan: plan, Err: err}
	})
}

// Up creates or updates every blueprint's cluster, concurrently.
func (p *Provisioner) Up(ctx context.Context, bps []*blueprints.Blueprint, onEvent func(ClusterEvent)) []ClusterResult {
	return p.each(ctx, bps, func(ctx context.Context, bp *blueprints.Blueprint) ClusterResult {
		prog, err := p.program(ctx, bp)
		if err != nil {
			return ClusterResult{Cluster: bp.Name(), Err: err}
		}
		res, err := p.cfg.Engine.Up(ctx, bp.Name(), prog, engine.Options{OnEvent: clusterEvents(bp.Name(), onEvent)})
		return ClusterResult{Cluster: bp.Name(), Result: res, Err: err}
	})
}

// ErrUnknownCluster is returned for a cluster secprov has neither state
// nor a directory for.
var ErrUnknownCluster = errors.New("no cluster")

// Down deletes the named clusters (every resource of their stacks, then the
// stacks), concurrently.
func (p *Provisioner) Down(ctx context.Context, names []string, onEvent func(ClusterEvent)) []ClusterResult {
	out := make([]ClusterResult, len(names))
	// The clusters' Vault objects are deleted through the local Vault, so
	// it must run (and be unsealed) while they are destroyed.
	if _, err := os.Stat(vaultserver.DirIn(p.cfg.StateDir)); err == nil {
		if _, err := p.localVault(ctx); err != nil {
			for i, name := range names {
				out[i] = ClusterResult{Cluster: name, Err: err}
			}
			return out
		}
		defer p.stopIdleVault(ctx)
	}
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			res, err := p.cfg.Engine.Destroy(ctx, name, engine.Options{OnEvent: clusterEvents(name, onEvent)})
			if err == nil {
				err = p.cfg.Engine.RemoveStack(ctx, name, false)
			}
			if errors.Is(err, engine.ErrNoStack) {
				if _, statErr := os.Stat(p.clusterDir(name)); statErr != nil {
					out[i] = ClusterResult{Cluster: name, Err: fmt.Errorf("%w %q: see secprov status", ErrUnknownCluster, name)}
					return
				}
				err = nil // state lost, directory left: clean it up below
			}
			if err == nil {
				// The Cluster resource removes its directory; this catches a
				// directory whose stack was lost.
				err = local.StopAll(ctx, local.NewLayout(p.clusterDir(name)))
				if err == nil {
					err = os.RemoveAll(p.clusterDir(name))
				}
			}
			out[i] = ClusterResult{Cluster: name, Result: res, Err: err}
		})
	}
	wg.Wait()
	return out
}

func (p *Provisioner) each(ctx context.Context, bps []*blueprints.Blueprint, f func(context.Context, *blueprints.Blueprint) ClusterResult) []ClusterResult {
	out := make([]ClusterResult, len(bps))
	var wg sync.WaitGroup
	for i, bp := range bps {
		wg.Go(func() { out[i] = f(ctx, bp) })
	}
	wg.Wait()
	return out
}

func clusterEvents(name string, onEvent func(ClusterEvent)) func(engine.Event) {
	if onEvent == nil {
		return nil
	}
	return func(e engine.Event) { onEvent(ClusterEvent{Cluster: name, Event: e}) }
}

func (p *Provisioner) program(ctx context.Context, bp *blueprints.Blueprint) (pulumi.RunFunc, error) {
	prov, err := p.provider(bp)
	if err != nil {
		return nil, err
	}
	va, err := p.vaultAccess(ctx, bp)
	if err != nil {
		return nil, err
	}
	return prov.Program(bp, va)
}

// NeedsVault says whether a blueprint uses Vault: for the KMS key or for
// workload secrets.
func NeedsVault(spec v1alpha1.Spec) bool {
	return spec.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS || spec.Vault.IsEnabled()
}

// vaultAccess is how a blueprint's cluster reaches its Vault (nil: it
// uses none): the operator's Vault at spec.vault.address with their
// VAULT_TOKEN or AppRole, else the local Vault, started on first use.
func (p *Provisioner) vaultAccess(ctx context.Context, bp *blueprints.Blueprint) (*vault.Access, error) {
	if !NeedsVault(bp.Spec) {
		return nil, nil
	}
	if addr := bp.Spec.Vault.Address; addr != "" {
		// The CA path is captured now: the KMS plugin runs with a minimal
		// environment and must be told explicitly.
		a := vault.Access{Address: addr, CAFile: os.Getenv(vault.EnvCACert)}
		if a.CAFile != "" {
			abs, err := filepath.Abs(a.CAFile)
			if err != nil {
				return nil, err
			}
			a.CAFile = abs
		}
		return &a, nil
	}
	return p.localVault(ctx)
}

// localVault starts, initializes and unseals the local Vault once per run.
func (p *Provisioner) localVault(ctx context.Context) (*vault.Access, error) {
	p.vaultMu.Lock()
	defer p.vaultMu.Unlock()
	if p.localAccess != nil {
		return p.localAccess, nil
	}
	if p.cfg.VaultBinary == "" {
		return nil, errors.New("the local Vault is needed but no vault binary was given: run secprov tools install")
	}
	s := &vaultserver.Server{Dir: vaultserver.DirIn(p.cfg.StateDir), Binary: p.cfg.VaultBinary, Log: p.cfg.Log}
	a, err := s.Ensure(ctx)
	if err != nil {
		return nil, fmt.Errorf("local Vault: %w", err)
	}
	p.localAccess = &a
	return &a, nil
}

// stopIdleVault stops the local Vault when no cluster is left to use it;
// its data stays (secprov vault reset removes it).
func (p *Provisioner) stopIdleVault(ctx context.Context) {
	if names, err := Clusters(p.cfg.StateDir); err != nil || len(names) > 0 {
		return
	}
	s := &vaultserver.Server{Dir: vaultserver.DirIn(p.cfg.StateDir), Log: p.cfg.Log}
	if err := s.Stop(ctx); err != nil {
		p.cfg.Log.Warn("stop the idle local Vault", "err", err)
	}
}

// Notes returns the provider notes for every blueprint.
func (p *Provisioner) Notes(bps []*blueprints.Blueprint) map[string][]string {
	out := map[string][]string{}
	for _, bp := range bps {
		if prov, err := p.provider(bp); err == nil {
			if n := prov.Notes(bp); len(n) > 0 {
				out[bp.Name()] = n
			}
		}
	}
	return out
}

func (p *Provisioner) clusterDir(name string) string { return paths.ClusterDir(p.cfg.StateDir, name) }

// Clusters lists the clusters that have a directory in the state dir.
func Clusters(stateDir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(stateDir, "clusters"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Target opens a live cluster for verify.
func Target(stateDir, cluster string) (verify.Target, error) {
	dirs := func() ([]string, error) {
		names, err := Clusters(stateDir)
		var out []string
		for _, n := range names {
			out = append(out, paths.ClusterDir(stateDir, n))
		}
		return out, err
	}
	t, err := local.NewTarget(paths.ClusterDir(stateDir, cluster), dirs)
	if errors.Is(err, local.ErrNoCluster) {
		return nil, fmt.Errorf("no cluster %q in %s: run secprov up first, or pass the right --cluster (see secprov status)", cluster, stateDir)
	}
	return t, err
}

type localProvider struct{ p *Provisioner }

func (l *localProvider) Name() string { return v1alpha1.ProviderLocal }

func (l *localProvider) Program(bp *blueprints.Blueprint, va *vault.Access) (pulumi.RunFunc, error) {
	c := &local.Cluster{Blueprint: bp.Blueprint, Dir: l.p.clusterDir(bp.Name()), Binaries: l.p.cfg.LocalBinaries, Vault: va}
	if tw := l.p.cfg.Tweak; tw != nil {
		name := bp.Name()
		c.Tweak = func(component string, flags hardening.Flags) hardening.Flags { return tw(name, component, flags) }
	}
	return c.Program()
}

func (l *localProvider) Target(cluster string) (verify.Target, error) {
	return Target(l.p.cfg.StateDir, cluster)
}

func (l *localProvider) Notes(bp *blueprints.Blueprint) []string {
	var out []string
	if NeedsVault(bp.Spec) && bp.Spec.Vault.Address == "" {
		out = append(out, "Vault: the local Vault secprov runs on loopback (a local-only convenience; its unseal key and root token are kept 0600 in "+
			vaultserver.DirIn(l.p.cfg.StateDir)+"; set spec.vault.address to use your own)")
	}
	return out
}
