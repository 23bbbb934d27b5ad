package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/kind/images"
)

// CiliumInputs is what the Cilium step knows when it installs Cilium into
// a kind cluster.
type CiliumInputs struct {
	// Kubeconfig authenticates as system:masters (the chart creates
	// cluster roles).
	Kubeconfig  string
	ClusterName string
	Spec        v1alpha1.Spec // defaulted
	// APIServerHost and APIServerPort reach the API server from inside
	// the nodes without a Service (Cilium replaces kube-proxy): the
	// control-plane node's name on the cluster network, and 6443.
	APIServerHost string
	APIServerPort int
	Images        images.Set
	// DropCapabilities are the Linux capabilities (without CAP_) the
	// nodes cannot grant their containers: missing from the control-plane
	// node's bounding set.
	DropCapabilities []string
}

// CiliumInstaller installs (or upgrades) Cilium and waits for it to be
// ready. TODO(provision/kind/cilium): the registration passes an adapter
// to that package's Install once it is merged; until then the provider
// has none, the step is left out, and the nodes stay NotReady.
type CiliumInstaller func(ctx context.Context, in CiliumInputs, log *slog.Logger) error

// capabilityBits are the capabilities Cilium's chart grants, by bit in a
// capability set (linux/capability.h).
var capabilityBits = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "SYS_MODULE": 16, "SYS_CHROOT": 18,
	"SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "SYSLOG": 34,
}

// missingCapabilities reads a node's capability bounding set and returns
// which of capabilityBits it lacks, sorted.
func missingCapabilities(ctx context.Context, node string) ([]string, error) {
	out, err := nodeExec(ctx, node, "grep", "^CapBnd:", "/proc/1/status")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return nil, fmt.Errorf("node %s: unexpected CapBnd line %q", node, out)
	}
	set, ok := new(big.Int).SetString(f[1], 16)
	if !ok {
		return nil, fmt.Errorf("node %s: CapBnd %q is not hex", node, f[1])
	}
	var missing []string
	for name, bit := range capabilityBits {
		if set.Bit(int(bit)) == 0 {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

func ciliumInputs(ctx context.Context, in ciliumIn) (CiliumInputs, error) {
	var ci CiliumInputs
	if err := json.Unmarshal([]byte(in.Spec), &ci.Spec); err != nil {
		return ci, fmt.Errorf("spec: %w", err)
	}
	if err := json.Unmarshal([]byte(in.Images), &ci.Images); err != nil {
		return ci, fmt.Errorf("images: %w", err)
	}
	drop, err := missingCapabilities(ctx, ControlPlaneNode(in.Cluster))
	if err != nil {
		return ci, err
	}
	ci.Kubeconfig = newLayout(in.Dir).SuperAdminKubeconfig()
	ci.ClusterName = in.Cluster
	ci.APIServerHost, ci.APIServerPort = ControlPlaneNode(in.Cluster), APIServerNodePort
	ci.DropCapabilities = drop
	return ci, nil
}
