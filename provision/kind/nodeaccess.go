package kind

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
)

// kindRoleLabel is the label kind puts on a node container: its role.
const kindRoleLabel = "io.x-k8s.kind.role"

// listNodes returns the node containers of the kind cluster name with
// their addresses on the cluster's own network.
func listNodes(ctx context.Context, name, environment string) ([]verify.Node, error) {
	network := NetworkName(name)
	out, err := docker(ctx, "ps", "-a", "--filter", "label="+kindClusterLabel+"="+name, "--format",
		fmt.Sprintf(`{{.Names}}	{{.Label %q}}`, kindRoleLabel))
	if err != nil {
		return nil, err
	}
	var nodes []verify.Node
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 2 || f[0] == "" {
			continue
		}
		n := verify.Node{Name: f[0], Role: f[1], Cluster: name, Environment: environment, Network: network}
		// Every address on every network the node is attached to: a node
		// attached out of band to another network is reachable there. A
		// stopped node has none; it is listed without, and the checks
		// that need one report that.
		addrs, err := docker(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", n.Name)
		if err == nil {
			for _, f := range strings.Fields(string(addrs)) {
				if a, err := netip.ParseAddr(f); err == nil {
					n.Addresses = append(n.Addresses, a)
				}
			}
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b verify.Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes, nil
}

// Nodes implements verify.NodeAccess: the cluster's node containers.
func (t *Target) Nodes(ctx context.Context) ([]verify.Node, error) {
	nodes, err := listNodes(ctx, t.rec.Name, t.rec.Environment)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("cluster %s has no node containers: run secprov up to create them", t.rec.Name)
	}
	return nodes, nil
}

// ownNode refuses a node name that is not one of this cluster's
// containers, so a check cannot be pointed at another cluster's node.
func (t *Target) ownNode(node string) error {
	if node != t.node && !strings.HasPrefix(node, t.rec.Name+"-worker") {
		return fmt.Errorf("%s is not a node of cluster %s", node, t.rec.Name)
	}
	return nil
}

// NodeReadFile implements verify.NodeAccess through docker exec.
func (t *Target) NodeReadFile(ctx context.Context, node, p string) ([]byte, error) {
	if err := t.ownNode(node); err != nil {
		return nil, err
	}
	out, err := t.sh.get(node).run(ctx, "cat", "--", p)
	return out, nodeFileError(p, err)
}

// NodeStat implements verify.NodeAccess through docker exec.
func (t *Target) NodeStat(ctx context.Context, node, p string) (fs.FileInfo, error) {
	if err := t.ownNode(node); err != nil {
		return nil, err
	}
	out, err := t.sh.get(node).run(ctx, "stat", "-L", "-c", "%f %s %Y", "--", p)
	if err != nil {
		return nil, nodeFileError(p, err)
	}
	return parseStat(p, string(out))
}

// dialScript opens a TCP connection with bash's /dev/tcp inside the node
// (the node image has bash and coreutils' timeout, not nc) and says how it
// ended: "connected", or bash's error, or "timeout".
const dialScript = `if timeout "$3" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/tmp/.secprov-dial; then echo connected; ` +
	`else rc=$?; if [ $rc -eq 124 ]; then echo "timed out after $3s"; else sed -n '$p' /tmp/.secprov-dial; fi; fi; rm -f /tmp/.secprov-dial`

// NodeDial implements verify.NodeAccess: a TCP connect from inside the
// node's network namespace.
func (t *Target) NodeDial(ctx context.Context, node string, addr netip.AddrPort, timeout time.Duration) error {
	if err := t.ownNode(node); err != nil {
		return err
	}
	secs := max(1, int(timeout.Round(time.Second)/time.Second))
	out, err := nodeExec(ctx, node, "bash", "-c", dialScript, "_", addr.Addr().String(), strconv.Itoa(int(addr.Port())), strconv.Itoa(secs))
	if err != nil {
		return fmt.Errorf("probe from %s: %w", node, err)
	}
	verdict := strings.TrimSpace(string(out))
	if verdict == "connected" {
		return nil
	}
	if i := strings.LastIndex(verdict, ": "); i >= 0 {
		verdict = verdict[i+2:]
	}
	if verdict == "" {
		verdict = "no connection"
	}
	return fmt.Errorf("%s", strings.ToLower(verdict))
}

// PeerNodes implements verify.NodeAccess: the nodes of the other kind
// clusters of this machine's state whose environment differs.
func (t *Target) PeerNodes(ctx context.Context) ([]verify.Node, error) {
	if t.peers == nil {
		return nil, nil
	}
	recs, err := t.peers()
	if err != nil {
		return nil, err
	}
	var nodes []verify.Node
	for _, r := range recs {
		if r.Name == t.rec.Name || r.ProviderType() != v1alpha1.ProviderKind {
			continue
		}
		ns, err := listNodes(ctx, r.Name, r.Environment)
		if err != nil {
			return nil, fmt.Errorf("nodes of %s: %w", r.Name, err)
		}
		nodes = append(nodes, ns...)
	}
	return nodes, nil
}
