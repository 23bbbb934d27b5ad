package cilium

import (
	"context"
	"fmt"
	"log/slog"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	release "helm.sh/helm/v4/pkg/release/v1"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Render renders the chart in chartDir with values in-process, as `helm
// template` would, without a cluster: the manifests Install applies, for
// review, plan output and tests. kubeVersion is the cluster's Kubernetes
// version ("" means the pinned one).
func Render(ctx context.Context, chartDir string, values map[string]any, kubeVersion string) (string, error) {
	ch, err := loadChart(chartDir)
	if err != nil {
		return "", err
	}
	return render(ctx, ch, values, kubeVersion)
}

func render(ctx context.Context, ch *chart.Chart, values map[string]any, kubeVersion string) (string, error) {
	if kubeVersion == "" {
		kubeVersion = v1alpha1.KubernetesVersion
	}
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return "", fmt.Errorf("kubernetes version %q: %w", kubeVersion, err)
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	in := action.NewInstall(cfg)
	in.DryRunStrategy = action.DryRunClient
	in.ReleaseName = Release
	in.Namespace = Namespace
	in.KubeVersion = kv
	in.DisableHooks = true
	rel, err := in.RunWithContext(ctx, ch, values)
	if err != nil {
		return "", fmt.Errorf("rendering the Cilium chart: %w", err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return "", fmt.Errorf("rendering the Cilium chart: unexpected release type %T", rel)
	}
	return r.Manifest, nil
}
