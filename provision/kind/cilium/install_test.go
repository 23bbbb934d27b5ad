package cilium

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// TestSameRelease is the idempotency rule: values as Helm stores them (JSON,
// numbers as float64) equal what Values renders, and any change in a value
// or the chart version means an upgrade.
func TestSameRelease(t *testing.T) {
	in := valuesCases[1].inputs(t)
	vals, err := Values(in)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := normalizeJSON(vals)
	if err != nil {
		t.Fatal(err)
	}
	ch := &chart.Chart{Metadata: &chart.Metadata{Name: "cilium", Version: "1.20.2"}}
	rel := &release.Release{Chart: ch, Config: stored.(map[string]any)}
	if !sameRelease(rel, ch, vals) {
		t.Error("a release with the rendered values is not the same release: every up would upgrade")
	}
	in.DropCapabilities = nil
	changed, _ := Values(in)
	if sameRelease(rel, ch, changed) {
		t.Error("changed capabilities do not cause an upgrade")
	}
	newer := &chart.Chart{Metadata: &chart.Metadata{Name: "cilium", Version: "1.20.3"}}
	if sameRelease(rel, newer, vals) {
		t.Error("a new chart version does not cause an upgrade")
	}
}

// TestApplyConverges drives apply through Helm's own in-memory release
// store and printing kube client (no cluster): install, nothing when
// equal, upgrade when values change, and taking over a release an
// interrupted run left pending, which Helm alone refuses to touch.
func TestApplyConverges(t *testing.T) {
	dir, err := chartDirOnce()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loadChart(dir)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := common.ParseKubeVersion(v1alpha1.KubernetesVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	cfg.Releases = storage.Init(driver.NewMemory())
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
	cfg.Capabilities = caps

	in := valuesCases[1].inputs(t)
	vals, err := Values(in)
	if err != nil {
		t.Fatal(err)
	}
	in.DropCapabilities = nil
	changed, err := Values(in)
	if err != nil {
		t.Fatal(err)
	}
	step := func(vals map[string]any, wantLine string, wantRevision int) {
		t.Helper()
		var out strings.Builder
		if err := apply(t.Context(), cfg, ch, vals, time.Minute, progress{&out}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), wantLine) {
			t.Errorf("apply printed %q, want a line with %q", out.String(), wantLine)
		}
		last, err := lastRelease(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if last.Version != wantRevision || last.Info.Status != rcommon.StatusDeployed {
			t.Errorf("after %q: revision %d %s, want revision %d deployed", wantLine, last.Version, last.Info.Status, wantRevision)
		}
	}
	step(vals, "installing release cilium in kube-system", 1)
	step(vals, "release cilium is up to date (revision 1)", 1)
	step(changed, "upgrading release cilium (values changed)", 2)

	// An up killed during an upgrade leaves the newest revision pending.
	last, _ := lastRelease(cfg)
	last.SetStatus(rcommon.StatusPendingUpgrade, "killed")
	if err := cfg.Releases.Update(last); err != nil {
		t.Fatal(err)
	}
	step(changed, "revision 2 was left pending-upgrade by an interrupted run; taking it over", 3)
	step(changed, "up to date (revision 3)", 3)
}
