package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/provision/toolchain"
)

// stateFlags select where secprov keeps its state.
type stateFlags struct {
	backend         string
	secretsProvider string
}

func (f *stateFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.backend, "state", "", "Pulumi backend URL for stack state (file://, s3://, gs://, azblob://, postgres://, https://api.pulumi.com); default $"+engine.EnvState+", else a file backend in the state directory")
}

// registerSecrets adds --secrets-provider (up and plan).
func (f *stateFlags) registerSecrets(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.secretsProvider, "secrets-provider", "", "encrypt the secrets of new clusters' state with passphrase, vault (a Transit key per cluster in its Vault) or hashivault://KEY?engine=MOUNT (your key; VAULT_ADDR and VAULT_TOKEN), overriding spec.state.secretsProvider; move an existing cluster with secprov state rekey")
	completeValues(cmd, "secrets-provider", "passphrase", "vault")
}

// checkSecretsProvider refuses an unknown --secrets-provider before anything runs.
func (f *stateFlags) checkSecretsProvider() error {
	switch p := f.secretsProvider; {
	case p == "", p == v1alpha1.StateSecretsPassphrase, p == v1alpha1.StateSecretsVault:
		return nil
	case strings.HasPrefix(p, "hashivault://") && len(p) > len("hashivault://"):
		return nil
	default:
		return usageErr(fmt.Errorf("--secrets-provider %q: use passphrase, vault or hashivault://KEY?engine=MOUNT", p))
	}
}

// backendURL is the backend the flags select: --state, else $SECPROV_STATE,
// else "" (the file backend in the state directory).
func (f *stateFlags) backendURL() string {
	if f.backend != "" {
		return f.backend
	}
	return os.Getenv(engine.EnvState)
}

// blueprintFlags select blueprints.
type blueprintFlags struct {
	files  []string
	only   []string
	images string
}

func (f *blueprintFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "blueprint file or directory (repeatable; default: the current directory)")
	cmd.Flags().StringArrayVar(&f.only, "only", nil, "only these clusters (cluster name or environment; repeatable)")
	cmd.Flags().StringVar(&f.images, "images", "", "image set of kind clusters, overriding spec.provider.kind.images: upstream (pinned registry images) or offline (what secprov images build made)")
	completeOnly(cmd)
}

// load loads the selected blueprints; any load error stops the command
// before anything is created.
func (f *blueprintFlags) load() ([]*blueprints.Blueprint, error) {
	if err := checkOnly(f.only); err != nil {
		return nil, err
	}
	files := f.files
	if len(files) == 0 {
		files = []string{"."}
	}
	bps, err := blueprints.Load(files...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("blueprints have errors; nothing was changed:\n%w", err))
	}
	if len(f.only) > 0 {
		var kept []*blueprints.Blueprint
		for _, bp := range bps {
			for _, o := range f.only {
				if bp.Name() == o || bp.Spec.Environment == o {
					kept = append(kept, bp)
					break
				}
			}
		}
		if len(kept) == 0 {
			return nil, usageErr(fmt.Errorf("--only %s matches no blueprint in %s", strings.Join(f.only, ","), strings.Join(files, ", ")))
		}
		bps = kept
	}
	if len(bps) == 0 {
		return nil, usageErr(fmt.Errorf("no blueprints in %s; write some with secprov init", strings.Join(files, ", ")))
	}
	if err := f.applyImages(bps); err != nil {
		return nil, err
	}
	return bps, nil
}

// applyImages sets --images on every kind blueprint, as if each said so
// in spec.provider.kind.images.
func (f *blueprintFlags) applyImages(bps []*blueprints.Blueprint) error {
	switch f.images {
	case "":
		return nil
	case v1alpha1.KindImagesUpstream, v1alpha1.KindImagesOffline:
	default:
		return usageErr(fmt.Errorf("--images %q: want upstream or offline; nothing was changed", f.images))
	}
	for _, bp := range bps {
		if k := bp.Spec.Provider.Kind; bp.Spec.Provider.Type == v1alpha1.ProviderKind && k != nil {
			k.Images = f.images
		}
	}
	return nil
}

// providerTypes are the provider types of bps, each checked against the
// registration before anything expensive starts.
func providerTypes(bps []*blueprints.Blueprint) ([]string, error) {
	reg := providers.Registry()
	var types []string
	var errs []error
	for _, bp := range bps {
		t := bp.Spec.Provider.Type
		if _, err := reg.Get(t); err != nil {
			errs = append(errs, fmt.Errorf("%s: spec.provider.type: %w", bp.Name(), err))
			continue
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types, errors.Join(errs...)
}

// env is what provisioning commands share: the state dir, the toolchain
// and the engine.
type env struct {
	stateDir string
	prov     *provision.Provisioner
	eng      *engine.Engine
}

// openEnv ensures the toolchain the given provider types need (with
// progress on stderr) and opens the engine.
func openEnv(ctx context.Context, s Streams, root *rootFlags, sf *stateFlags, providerTypes ...string) (*env, error) {
	if err := engine.CheckBackendURL(sf.backendURL()); err != nil {
		return nil, usageErr(err)
	}
	stateDir, err := paths.StateDir()
	if err != nil {
		return nil, err
	}
	log := root.logger(s.Err)
	progress := newToolProgress(s.Err, isTerminal(s.Err), true)
	m, err := toolchain.New(toolchain.Options{Logger: log, Progress: progress})
	if err != nil {
		progress.stop()
		return nil, err
	}
	reg := providers.Registry()
	installed, err := m.EnsureAll(ctx, append([]string{"pulumi", "vault"}, reg.Tools(providerTypes...)...)...)
	progress.stop()
	if err != nil {
		return nil, fmt.Errorf("toolchain: %w\nrun `secprov tools install -v` to see what failed", err)
	}
	tools := map[string]*toolchain.Installed{}
	for _, t := range installed {
		tools[t.Name] = t
	}
	backend := sf.backendURL()
	pass, err := engine.ResolvePassphrase(stateDir, os.Getenv(engine.EnvPassphrase))
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx, engine.Config{PulumiRoot: tools["pulumi"].Root, PulumiVersion: tools["pulumi"].Version, StateDir: stateDir, Backend: backend, Passphrase: pass, Log: log})
	if err != nil {
		return nil, err
	}
	bins := cluster.Binaries{}
	for _, t := range installed {
		maps.Copy(bins, t.Bin)
	}
	// The KMS plugin is this binary, run as `secprov kms-plugin`.
	if bins[cluster.Self], err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find the secprov binary for the KMS plugin: %w", err)
	}
	return &env{stateDir: stateDir, eng: eng,
		prov: provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: reg, Binaries: bins,
			VaultBinary: tools["vault"].Bin["vault"], StateSecrets: sf.secretsProvider, Log: log})}, nil
}

// stepPrinter prints engine progress as a step list: one line per finished
// resource step with ✓/✗ and its time, prefixed by the cluster when
// several run at once.
type stepPrinter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  bool
	verbose bool
	width   int
}

func newStepPrinter(w io.Writer, clusters []string, verbose bool) *stepPrinter {
	width := 0
	for _, c := range clusters {
		width = max(width, len(c))
	}
	return &stepPrinter{w: w, prefix: len(clusters) > 1, verbose: verbose, width: width}
}

func (p *stepPrinter) event(e provision.ClusterEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pre := ""
	if p.prefix {
		pre = fmt.Sprintf("%-*s  ", p.width, e.Cluster)
	}
	switch e.Kind {
	case engine.StepDone:
		if e.Op == engine.OpSame || e.Op == engine.OpRead || e.Op == engine.OpRefresh {
			if !p.verbose {
				return
			}
		}
		fmt.Fprintf(p.w, "%s✓ %-10s %-28s %s\n", pre, opVerb(e.Op), resourceLabel(e.Type, e.Name), e.Elapsed.Round(10*time.Millisecond))
	case engine.StepFailed:
		fmt.Fprintf(p.w, "%s✗ %-10s %-28s %s\n", pre, opVerb(e.Op), resourceLabel(e.Type, e.Name), e.Elapsed.Round(10*time.Millisecond))
		if e.Message != "" {
			for _, line := range strings.Split(strings.TrimSpace(e.Message), "\n") {
				fmt.Fprintf(p.w, "%s    %s\n", pre, line)
			}
		}
	case engine.Diagnostic:
		if e.Severity == "warning" || p.verbose {
			fmt.Fprintf(p.w, "%s! %s\n", pre, strings.TrimSpace(e.Message))
		}
	}
}

func opVerb(op engine.Op) string {
	switch op {
	case engine.OpCreate, engine.OpCreateReplacement:
		return "created"
	case engine.OpUpdate:
		return "updated"
	case engine.OpReplace:
		return "replaced"
	case engine.OpDelete, engine.OpDeleteReplaced:
		return "deleted"
	case engine.OpSame:
		return "unchanged"
	}
	return string(op)
}

// resourceLabel names a resource for people: the component for processes,
// else the kind.
func resourceLabel(typ, name string) string {
	kind := typ[strings.LastIndex(typ, ":")+1:]
	switch kind {
	case "Process":
		return name
	case "Cluster":
		return "cluster directory"
	case "Pki":
		return "PKI and kubeconfigs"
	case "Config":
		return "config files"
	case "Bootstrap":
		return "RBAC, namespaces, policies"
	case "Transit":
		return "Vault transit key"
	case "Kv":
		return "Vault KV mount"
	case "KmsToken":
		return "Vault KMS token"
	case "KubernetesAuth":
		return "Vault Kubernetes auth"
	case "NamespaceRole":
		return "Vault role " + strings.TrimPrefix(name, "vault-role-")
	}
	return strings.ToLower(kind) + " " + name
}
