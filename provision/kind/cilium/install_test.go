package cilium

import (
	"testing"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	release "helm.sh/helm/v4/pkg/release/v1"
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
