package cilium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultTimeout bounds Install when InstallOptions.Timeout is zero: the
// agents compile their datapath when they start, which takes a minute or
// two on a busy two-core machine.
const DefaultTimeout = 5 * time.Minute

// historyMax is how many release revisions Helm keeps: each is a Secret
// holding the whole chart, and only the last is ever read.
const historyMax = 3

// InstallOptions configures Install.
type InstallOptions struct {
	// Kubeconfig is the path of a kubeconfig with cluster-admin rights on
	// the cluster; its current context is used.
	Kubeconfig string
	// Inputs are rendered into the chart's values with Values.
	Inputs Inputs
	// ChartDir is the chart's directory; "" locates the pinned chart with
	// ChartDir.
	ChartDir string
	// Timeout bounds the whole install, including the wait for readiness.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Progress receives one line per step a person can follow; nil
	// discards them.
	Progress io.Writer
	// Log receives Helm's and client-go's diagnostics (API warnings, what
	// Helm applies); nil discards them.
	Log *slog.Logger
}

// Install installs the Cilium chart as release "cilium" in kube-system, or
// upgrades it when the rendered values or the chart version differ from
// the deployed release, or leaves it alone when they are equal. Then it
// waits until the agent DaemonSet and the operator Deployment are ready
// and every node is Ready. A failed or interrupted earlier install or
// upgrade is taken over and completed, so running Install again converges.
// When the cluster does not get ready in time the error is a *NotReadyError
// naming the failing pod, with its last log lines and what to do next.
func Install(ctx context.Context, opts InstallOptions) error {
	start := time.Now()
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := progress{w: opts.Progress}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	vals, err := Values(opts.Inputs)
	if err != nil {
		return err
	}
	dir := opts.ChartDir
	if dir == "" {
		if dir, err = ChartDir(ctx); err != nil {
			return err
		}
	}
	ch, err := loadChart(dir)
	if err != nil {
		return err
	}
	getter, err := newRESTGetter(opts.Kubeconfig, log)
	if err != nil {
		return err
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(log.Handler()))
	if err := cfg.Init(getter, Namespace, "secret"); err != nil {
		return fmt.Errorf("setting up Helm for %s: %w", opts.Kubeconfig, err)
	}

	if err := apply(ctx, cfg, ch, vals, timeout, p); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(getter.config)
	if err != nil {
		return fmt.Errorf("client for %s: %w", opts.Kubeconfig, err)
	}
	if err := waitReady(ctx, cs, opts.Kubeconfig, p); err != nil {
		return err
	}
	p.printf("✓ cilium %s ready (%s)\n", Version, time.Since(start).Round(time.Second))
	return nil
}

// apply brings the release to ch with vals: install, upgrade or nothing.
func apply(ctx context.Context, cfg *action.Configuration, ch *chart.Chart, vals map[string]any, timeout time.Duration, p progress) error {
	last, err := lastRelease(cfg)
	if err != nil {
		return err
	}
	if last == nil {
		p.printf("• cilium %s: installing release %s in %s\n", Version, Release, Namespace)
		in := action.NewInstall(cfg)
		in.ReleaseName = Release
		in.Namespace = Namespace
		in.Timeout = timeout
		// Readiness is judged by waitReady, which can say why not; Helm
		// only runs hooks (the chart renders none with these values).
		in.WaitStrategy = kube.HookOnlyStrategy
		// Objects left by an install whose release record was lost (a
		// deleted Secret) are taken over instead of failing the install:
		// in kube-system, these names are Cilium's.
		in.TakeOwnership = true
		if _, err := in.RunWithContext(ctx, ch, vals); err != nil {
			return fmt.Errorf("installing the Cilium chart (release %s/%s): %w; run the same command again to retry", Namespace, Release, err)
		}
		return nil
	}

	status := last.Info.Status
	if status == rcommon.StatusDeployed && sameRelease(last, ch, vals) {
		p.printf("• cilium %s: release %s is up to date (revision %d)\n", Version, Release, last.Version)
		return nil
	}
	if status.IsPending() {
		// Only an interrupted secprov leaves a pending release (secprov
		// runs one operation per cluster at a time), and Helm refuses to
		// touch a pending release: mark it failed so the upgrade below
		// takes over.
		p.printf("• cilium %s: revision %d was left %s by an interrupted run; taking it over\n", Version, last.Version, status)
		last.SetStatus(rcommon.StatusFailed, "interrupted; superseded by the next secprov up")
		if err := cfg.Releases.Update(last); err != nil {
			return fmt.Errorf("marking the interrupted Cilium release revision %d failed: %w", last.Version, err)
		}
	}
	why := "values changed"
	switch {
	case status != rcommon.StatusDeployed:
		why = fmt.Sprintf("revision %d is %s", last.Version, status)
	case last.Chart == nil || last.Chart.Metadata == nil || last.Chart.Metadata.Version != ch.Metadata.Version:
		why = "chart version changed"
	}
	p.printf("• cilium %s: upgrading release %s (%s)\n", Version, Release, why)
	up := action.NewUpgrade(cfg)
	up.Namespace = Namespace
	up.Timeout = timeout
	up.WaitStrategy = kube.HookOnlyStrategy
	up.MaxHistory = historyMax
	up.TakeOwnership = true
	// secprov owns these objects: a field someone changed by hand is set
	// back to what the blueprint renders.
	up.ForceConflicts = true
	if _, err := up.RunWithContext(ctx, Release, ch, vals); err != nil {
		return fmt.Errorf("upgrading the Cilium chart (release %s/%s): %w; run the same command again to retry", Namespace, Release, err)
	}
	return nil
}

// lastRelease is the newest revision of the release, or nil when there is
// none (never installed, or uninstalled).
func lastRelease(cfg *action.Configuration) (*release.Release, error) {
	r, err := cfg.Releases.Last(Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the Cilium release %s/%s: %w; check that the kubeconfig reaches the cluster", Namespace, Release, err)
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("reading the Cilium release %s/%s: unexpected release type %T", Namespace, Release, r)
	}
	if rel.Info != nil && rel.Info.Status == rcommon.StatusUninstalled {
		return nil, nil
	}
	return rel, nil
}

// sameRelease reports whether the deployed release has the chart version
// and values that Install would apply. Values are compared as JSON, the
// form Helm stores them in.
func sameRelease(rel *release.Release, ch *chart.Chart, vals map[string]any) bool {
	if rel.Chart == nil || rel.Chart.Metadata == nil || rel.Chart.Metadata.Version != ch.Metadata.Version {
		return false
	}
	a, errA := normalizeJSON(rel.Config)
	b, errB := normalizeJSON(vals)
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

func normalizeJSON(v map[string]any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(data, &out)
}

// UninstallOptions configures Uninstall.
type UninstallOptions struct {
	Kubeconfig string
	Timeout    time.Duration // zero means DefaultTimeout
	Progress   io.Writer
	Log        *slog.Logger
}

// Uninstall removes the release and the objects the chart created; it does
// nothing when the release is absent. It does not undo what the agents did
// on the nodes (CNI configuration, BPF programs, routes): pods keep their
// network until the nodes are recreated, and new pods get none.
//
// The kind provider's down does not call it: deleting the node containers
// removes everything Cilium put on the nodes, and calling Uninstall first
// would only add time and fail when the API server is already gone. It is
// for taking Cilium off a cluster that stays.
func Uninstall(ctx context.Context, opts UninstallOptions) error {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := progress{w: opts.Progress}
	getter, err := newRESTGetter(opts.Kubeconfig, log)
	if err != nil {
		return err
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(log.Handler()))
	if err := cfg.Init(getter, Namespace, "secret"); err != nil {
		return fmt.Errorf("setting up Helm for %s: %w", opts.Kubeconfig, err)
	}
	last, err := lastRelease(cfg)
	if err != nil {
		return err
	}
	if last == nil {
		p.printf("• cilium: release %s is not installed\n", Release)
		return nil
	}
	un := action.NewUninstall(cfg)
	un.IgnoreNotFound = true
	un.Timeout = timeout
	un.WaitStrategy = kube.HookOnlyStrategy
	done := make(chan error, 1)
	// Uninstall.Run takes no context: run it aside so ctx still bounds
	// how long the caller waits.
	go func() {
		_, err := un.Run(Release)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("uninstalling the Cilium release %s/%s: %w; run the same command again to retry", Namespace, Release, err)
	}
	p.printf("✓ cilium release %s uninstalled\n", Release)
	return nil
}

// restGetter gives Helm clients for one kubeconfig. Discovery is cached in
// memory only: Helm's usual getter writes a cache under ~/.kube, which an
// install should not leave behind.
type restGetter struct {
	loader clientcmd.ClientConfig
	config *rest.Config
	disc   discovery.CachedDiscoveryInterface
}

func newRESTGetter(kubeconfig string, log *slog.Logger) (*restGetter, error) {
	if kubeconfig == "" {
		return nil, errors.New("no kubeconfig given for the Cilium install")
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: Namespace}},
	)
	config, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	// Discovery of a cluster with Cilium's CRDs takes dozens of requests;
	// client-go's default 5 QPS would throttle it for seconds.
	config.QPS, config.Burst = 50, 100
	config.WarningHandlerWithContext = warningLogger{log}
	dc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("discovery client for %s: %w", kubeconfig, err)
	}
	return &restGetter{loader: loader, config: config, disc: memory.NewMemCacheClient(dc)}, nil
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.config), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.disc, nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	m := restmapper.NewDeferredDiscoveryRESTMapper(g.disc)
	return restmapper.NewShortcutExpander(m, g.disc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return g.loader }

// warningLogger sends API server warnings to the log instead of stderr.
type warningLogger struct{ log *slog.Logger }

func (w warningLogger) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, text string) {
	w.log.WarnContext(ctx, "kubernetes API warning", "text", text)
}

// progress writes progress lines; a nil writer discards them.
type progress struct{ w io.Writer }

func (p progress) printf(format string, a ...any) {
	if p.w != nil {
		fmt.Fprintf(p.w, format, a...)
	}
}
