package verify

import (
	"context"
	"io/fs"
	"net/netip"
	"time"
)

// Node is one node of a cluster as its provider sees it.
type Node struct {
	// Name is the Kubernetes node name.
	Name string `json:"name"`
	// Role is "control-plane" or "worker".
	Role string `json:"role"`
	// Cluster and Environment name the cluster the node belongs to (for
	// peers: the other environment's cluster).
	Cluster     string `json:"cluster"`
	Environment string `json:"environment"`
	// Addresses are the node's addresses on its network(s).
	Addresses []netip.Addr `json:"addresses"`
	// Network names the network the node is attached to (a Docker
	// network for kind).
	Network string `json:"network,omitempty"`
}

// NodeAccess is what a target with the Nodes capability offers besides
// the API: the nodes themselves, their files, and connections opened from
// inside them. Every Target has these methods; one without nodes returns
// a *CapabilityError (embed NoNodes).
type NodeAccess interface {
	// Nodes lists the cluster's nodes. Nodes.
	Nodes(ctx context.Context) ([]Node, error)
	// NodeReadFile and NodeStat read a file of a node's filesystem. Nodes.
	NodeReadFile(ctx context.Context, node, path string) ([]byte, error)
	NodeStat(ctx context.Context, node, path string) (fs.FileInfo, error)
	// NodeDial opens a TCP connection from inside node to addr within
	// timeout and closes it: nil when the connection was accepted, an
	// error saying refused or timed out otherwise. Nodes.
	NodeDial(ctx context.Context, node string, addr netip.AddrPort, timeout time.Duration) error
	// PeerNodes are the nodes of the other environments' clusters on this
	// machine, which this cluster's nodes must not reach. Nodes.
	PeerNodes(ctx context.Context) ([]Node, error)
}

// NoNodes implements NodeAccess for a target without nodes: every method
// fails with a *CapabilityError naming the provider.
type NoNodes struct{ Provider string }

func (n NoNodes) err(c Capability) error {
	return &CapabilityError{Provider: n.Provider, Capability: c}
}

// Nodes implements NodeAccess.
func (n NoNodes) Nodes(context.Context) ([]Node, error) { return nil, n.err(Nodes) }

// NodeReadFile implements NodeAccess.
func (n NoNodes) NodeReadFile(context.Context, string, string) ([]byte, error) {
	return nil, n.err(Nodes)
}

// NodeStat implements NodeAccess.
func (n NoNodes) NodeStat(context.Context, string, string) (fs.FileInfo, error) {
	return nil, n.err(Nodes)
}

// NodeDial implements NodeAccess.
func (n NoNodes) NodeDial(context.Context, string, netip.AddrPort, time.Duration) error {
	return n.err(Nodes)
}

// PeerNodes implements NodeAccess.
func (n NoNodes) PeerNodes(context.Context) ([]Node, error) { return nil, n.err(Nodes) }
