package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"secprov.dev/secprov/provision/kind/cilium"
)

// CiliumInstaller installs (or upgrades) Cilium into the cluster that
// kubeconfig reaches and waits for it to be ready. HelmCilium is the real
// one; tests of the provider's resources may pass another.
type CiliumInstaller func(ctx context.Context, kubeconfig string, in cilium.Inputs, log *slog.Logger) error

// HelmCilium installs the official chart through the Helm SDK
// (cilium.Install): idempotent, and waits for agents, operator and nodes.
func HelmCilium(ctx context.Context, kubeconfig string, in cilium.Inputs, log *slog.Logger) error {
	return cilium.Install(ctx, cilium.InstallOptions{Kubeconfig: kubeconfig, Inputs: in, Log: log})
}

// ungrantableCapabilities reads a node's capability bounding set: what
// the chart must not request of it.
func ungrantableCapabilities(ctx context.Context, node string) ([]string, error) {
	out, err := nodeExec(ctx, node, "grep", "^CapBnd:", "/proc/1/status")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return nil, fmt.Errorf("node %s: unexpected CapBnd line %q", node, out)
	}
	set, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		return nil, fmt.Errorf("node %s: CapBnd %q: %w", node, f[1], err)
	}
	return cilium.UngrantableCapabilities(set), nil
}

// ciliumInputs turns the resource's inputs into the chart's, and the
// kubeconfig to install with (system:masters: the chart creates cluster
// roles).
func ciliumInputs(ctx context.Context, in ciliumIn) (string, cilium.Inputs, error) {
	var ci cilium.Inputs
	if err := json.Unmarshal([]byte(in.Spec), &ci.Spec); err != nil {
		return "", ci, fmt.Errorf("spec: %w", err)
	}
	if err := json.Unmarshal([]byte(in.Images), &ci.Images); err != nil {
		return "", ci, fmt.Errorf("images: %w", err)
	}
	drop, err := ungrantableCapabilities(ctx, ControlPlaneNode(in.Cluster))
	if err != nil {
		return "", ci, err
	}
	ci.ClusterName = in.Cluster
	ci.APIServerHost, ci.APIServerPort = ControlPlaneNode(in.Cluster), APIServerNodePort
	ci.DropCapabilities = drop
	return newLayout(in.Dir).SuperAdminKubeconfig(), ci, nil
}
