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
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
)

// PluginRegistry is every resource type secprov's resource plugin serves:
// the cluster providers' and the Vault objects'.
func PluginRegistry(providers *cluster.Registry) (*provider.Registry, error) {
	return provider.NewRegistry(append(providers.ResourceTypes(), vaultres.ResourceTypes()...)...)
}

// Config configures a Provisioner.
type Config struct {
	StateDir string
	Engine   *engine.Engine
	// Providers are the cluster providers (providers.Registry()).
	Providers *cluster.Registry
	// Binaries of the toolchain by name, for the providers' programs.
	Binaries cluster.Binaries
	// VaultBinary runs the local Vault for blueprints without
	// spec.vault.address; empty when none is needed.
	VaultBinary string
	// StateSecrets overrides every blueprint's spec.state.secretsProvider
	// when set (passphrase or vault).
	StateSecrets string
	Log          *slog.Logger
	// Tweak may change a component's flags before they are declared; tests
	// use it to build a cluster with one control removed.
	Tweak func(cluster, component string, flags hardening.Flags) hardening.Flags
}

// Provisioner runs plan/up/down/status over a set of blueprints.
type Provisioner struct {
	cfg Config

	vaultMu     sync.Mutex
	localAccess *vault.Access // the local Vault, once ensured in this run
}

// New returns a Provisioner.
func New(cfg Config) *Provisioner {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Providers == nil {
		cfg.Providers = cluster.NewRegistry()
	}
	return &Provisioner{cfg: cfg}
}

func (p *Provisioner) provider(bp *blueprints.Blueprint) (cluster.Provider, error) {
	prov, err := p.cfg.Providers.Get(bp.Spec.Provider.Type)
	if err != nil {
		return nil, fmt.Errorf("%s: spec.provider.type: %w", bp.Name(), err)
	}
	return prov, nil
}

// Check refuses blueprint sets that cannot be provisioned before anything
// is created: duplicate cluster names, unavailable providers, and what a
// provider's preflight finds missing on this machine.
func (p *Provisioner) Check(ctx context.Context, bps []*blueprints.Blueprint) error {
	errs := []error{blueprints.CheckUniqueNames(bps)}
	for _, bp := range bps {
		prov, err := p.provider(bp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := prov.Preflight(ctx, bp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", bp.Name(), err))
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
		if err := p.useStateSecrets(ctx, bp); err != nil {
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
		if err := p.useStateSecrets(ctx, bp); err != nil {
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
		dir, err := paths.ClusterDir(p.cfg.StateDir, name)
		if err != nil {
			out[i] = ClusterResult{Cluster: name, Err: err}
			continue
		}
		wg.Go(func() {
			secrets, _, serr := p.cfg.Engine.StackSecrets(name)
			if serr == nil {
				serr = p.refreshStateToken(ctx, name, secrets)
			}
			if serr != nil {
				out[i] = ClusterResult{Cluster: name, Err: serr}
				return
			}
			res, err := p.cfg.Engine.Destroy(ctx, name, engine.Options{OnEvent: clusterEvents(name, onEvent)})
			if err == nil {
				err = p.cfg.Engine.RemoveStack(ctx, name, false)
			}
			if err == nil {
				err = p.deleteStateSecrets(ctx, name, secrets)
				if r := secrets.Retired; err == nil && r != nil {
					err = p.deleteStateSecrets(ctx, name, *r)
				}
			}
			if errors.Is(err, engine.ErrNoStack) {
				if _, statErr := os.Stat(dir); statErr != nil {
					out[i] = ClusterResult{Cluster: name, Err: fmt.Errorf("%w %q: see secprov status", ErrUnknownCluster, name)}
					return
				}
				err = nil // state lost, directory left: clean it up below
			}
			if err == nil {
				// The engine removed the directory with the cluster; this
				// catches one whose stack was lost.
				err = p.cleanup(ctx, dir)
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
	dir, err := paths.ClusterDir(p.cfg.StateDir, bp.Name())
	if err != nil {
		return nil, err
	}
	spec := &cluster.Spec{Blueprint: bp, Dir: dir, Vault: va, Binaries: p.cfg.Binaries}
	if tw := p.cfg.Tweak; tw != nil {
		name := bp.Name()
		spec.Tweak = func(component string, flags hardening.Flags) hardening.Flags { return tw(name, component, flags) }
	}
	return prov.Program(spec)
}

// cleanup stops what is left of a cluster whose state is gone and removes
// its directory. The record names the provider; a directory without a
// readable one is handed to every provider, each of which stops only
// what is its own.
func (p *Provisioner) cleanup(ctx context.Context, dir string) error {
	provs := p.cfg.Providers.All()
	if rec, err := cluster.ReadRecord(dir); err == nil {
		prov, err := p.cfg.Providers.Get(rec.ProviderType())
		if err != nil {
			return fmt.Errorf("cluster %s: %w", rec.Name, err)
		}
		provs = []cluster.Provider{prov}
	}
	var errs []error
	for _, prov := range provs {
		errs = append(errs, prov.Cleanup(ctx, dir))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
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
	return p.vaultFor(ctx, bp.Spec)
}

// vaultFor is the Vault of a cluster: the operator's at spec.vault.address,
// else the local Vault.
func (p *Provisioner) vaultFor(ctx context.Context, spec v1alpha1.Spec) (*vault.Access, error) {
	if addr := spec.Vault.Address; addr != "" {
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
		var notes []string
		if prov, err := p.provider(bp); err == nil {
			notes = prov.Notes(bp)
		}
		if NeedsVault(bp.Spec) && bp.Spec.Vault.Address == "" {
			notes = append(notes, "Vault: the local Vault secprov runs on loopback (a local-only convenience; its unseal key and root token are kept 0600 in "+
				vaultserver.DirIn(p.cfg.StateDir)+"; set spec.vault.address to use your own)")
		}
		if len(notes) > 0 {
			out[bp.Name()] = notes
		}
	}
	return out
}

// Clusters lists the clusters that have a directory in the state dir.
// Entries that are not cluster names (nothing secprov made) are left out,
// so every name returned can be passed back to paths.ClusterDir.
func Clusters(stateDir string) ([]string, error) {
	dirs, err := cluster.Dirs(stateDir)
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, filepath.Base(d))
	}
	return out, err
}

// Record reads the record of a cluster, with an error that says what to
// do when there is none.
func Record(stateDir, name string) (*cluster.Record, error) {
	dir, err := paths.ClusterDir(stateDir, name)
	if err != nil {
		return nil, err
	}
	rec, err := cluster.ReadRecord(dir)
	if errors.Is(err, cluster.ErrNoCluster) {
		return nil, fmt.Errorf("no cluster %q in %s: run secprov up first, or pass the right --cluster (see secprov status)", name, stateDir)
	}
	return rec, err
}

// Target opens a recorded cluster for verify through the provider that
// made it.
func (p *Provisioner) Target(name string) (verify.Target, error) {
	return Target(p.cfg.Providers, p.cfg.StateDir, name)
}

// Target opens a recorded cluster for verify through the provider that
// made it, without an engine.
func Target(providers *cluster.Registry, stateDir, name string) (verify.Target, error) {
	rec, err := Record(stateDir, name)
	if err != nil {
		return nil, err
	}
	prov, err := providers.Get(rec.ProviderType())
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	return prov.Open(rec, cluster.RecordPeers(stateDir))
}

// ClusterStatus is one cluster as status shows it.
type ClusterStatus struct {
	Name         string              `json:"name"`
	Environment  string              `json:"environment"`
	Provider     string              `json:"provider"`
	APIServerURL string              `json:"apiServerURL"`
	Kubeconfig   string              `json:"kubeconfig"`
	Components   []cluster.Component `json:"components"`
	Healthy      bool                `json:"healthy"`
	Problem      string              `json:"problem,omitempty"`
	// StateSecrets says what encrypts the secrets in the cluster's state:
	// passphrase or vault ("" when this state directory has no record).
	StateSecrets string `json:"stateSecrets,omitempty"`
}

// Status reports every cluster of the state root through its provider.
func Status(ctx context.Context, providers *cluster.Registry, stateDir string) ([]ClusterStatus, error) {
	dirs, err := cluster.Dirs(stateDir)
	if err != nil {
		return nil, err
	}
	out := []ClusterStatus{}
	for _, d := range dirs {
		cs := ClusterStatus{Name: filepath.Base(d), Kubeconfig: paths.NewLayout(d).AdminKubeconfig(), Healthy: true, Components: []cluster.Component{}}
		if ss, ok, err := engine.RecordedSecrets(stateDir, cs.Name); err == nil && ok {
			cs.StateSecrets = ss.Kind()
		}
		rec, err := cluster.ReadRecord(d)
		if err == nil {
			cs.Environment, cs.Provider, cs.APIServerURL, cs.Kubeconfig = rec.Environment, rec.ProviderType(), rec.APIServerURL, rec.Kubeconfig
		}
		var prov cluster.Provider
		if err == nil {
			prov, err = providers.Get(rec.ProviderType())
		}
		if err != nil {
			cs.Healthy, cs.Problem = false, err.Error()
			out = append(out, cs)
			continue
		}
		for _, c := range prov.Status(ctx, rec) {
			cs.Components = append(cs.Components, c)
			if !c.Running {
				cs.Healthy = false
				cs.Problem = "not every component runs: secprov up restarts them"
			}
		}
		out = append(out, cs)
	}
	return out, nil
}

// BackendStatus lists the clusters whose stacks are in the engine's
// backend but which have no directory in this state root: made from
// another machine or state dir. Each is reported with the provider and
// environment its record names and as not reachable from here (a local
// or kind cluster lives on the machine that made it). A stack whose
// state cannot be read is listed with the reason.
func BackendStatus(ctx context.Context, eng *engine.Engine, stateDir string) ([]ClusterStatus, error) {
	stacks, err := eng.ListStacks(ctx)
	if err != nil {
		return nil, err
	}
	out := []ClusterStatus{}
	for _, s := range stacks {
		if dir, err := paths.ClusterDir(stateDir, s.Name); err == nil {
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				continue // Status reports it through its provider
			}
		}
		cs := ClusterStatus{Name: s.Name, Components: []cluster.Component{}}
		st, err := eng.State(ctx, s.Name)
		if err != nil {
			cs.Problem = fmt.Sprintf("state in %s unreadable: %v", eng.BackendShown(), err)
			out = append(out, cs)
			continue
		}
		cs.StateSecrets = engine.StackSecrets{Provider: st.SecretsProvider}.Kind()
		if st.SecretsProvider == "" {
			cs.StateSecrets = ""
		}
		for _, r := range st.Resources {
			if r.Type != cluster.RecordType {
				continue
			}
			str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
			cs.Environment, cs.Provider = str(r.Inputs, "environment"), str(r.Inputs, "provider")
			if cs.Provider == "" {
				cs.Provider = v1alpha1.ProviderLocal
			}
			cs.APIServerURL = str(r.Outputs, "apiServerURL")
			cs.Problem = fmt.Sprintf("not reachable from here: a %s cluster lives on the machine that made it (%s there)", cs.Provider, str(r.Inputs, "dir"))
		}
		if cs.Problem == "" {
			cs.Problem = "no cluster record in its state (never brought up, or destroyed)"
		}
		out = append(out, cs)
	}
	return out, nil
}
