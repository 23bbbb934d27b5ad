package verify

import (
	"context"
	"errors"
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
	// ProbeImage is an image present on every node that runs the network
	// probe program (secprov-probe serve PORT… | run PLAN) as a non-root
	// user, named so that the cluster's image guardrail admits it. An
	// error wrapping ErrNoProbeImage when there is none. NetworkProbes.
	ProbeImage(ctx context.Context) (string, error)
	// OutsideAddr is an address of this machine that the cluster's pods
	// reach as outside the cluster (no node's, no pod's), where verify
	// listens to see whether egress leaves the cluster. NetworkProbes.
	OutsideAddr(ctx context.Context) (netip.Addr, error)
}

// ErrNoProbeImage is wrapped by ProbeImage when the probe image was never
// built: the network probes are skipped, saying how to build it.
var ErrNoProbeImage = errors.New("no network probe image")

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

// ProbeImage implements NodeAccess.
func (n NoNodes) ProbeImage(context.Context) (string, error) { return "", n.err(NetworkProbes) }

// OutsideAddr implements NodeAccess.
func (n NoNodes) OutsideAddr(context.Context) (netip.Addr, error) {
	return netip.Addr{}, n.err(NetworkProbes)
}
