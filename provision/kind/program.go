package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/kind/images"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
)

// Pinned upstream images, the default set: kind's node image for the
// pinned Kubernetes version and Cilium's. TODO(provision/kind/images):
// images.Upstream() and the offline set replace this once merged.
var upstreamImages = images.Set{
	Node:           images.Ref{Repository: "kindest/node", Tag: v1alpha1.KubernetesVersion},
	CiliumAgent:    images.Ref{Repository: "quay.io/cilium/cilium", Tag: "v1.20.2"},
	CiliumOperator: images.Ref{Repository: "quay.io/cilium/operator-generic", Tag: "v1.20.2"},
}

// ParseRef splits an image reference repository:tag.
func ParseRef(s string) (images.Ref, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") || strings.Contains(s, "@") || i == len(s)-1 {
		return images.Ref{}, fmt.Errorf("image %q: want repository:tag", s)
	}
	return images.Ref{Repository: s[:i], Tag: s[i+1:]}, nil
}

// DefaultImages is the image set of a blueprint when the provider is not
// told otherwise: the pinned upstream set, or with spec.provider.kind.images
// offline the set the last `secprov images build` made (checked present in
// the Docker engine), with spec.provider.kind.nodeImage as the node image
// when the blueprint names one.
func DefaultImages(ctx context.Context, bp *blueprints.Blueprint) (images.Set, error) {
	set := upstreamImages
	if k := bp.Spec.Provider.Kind; k != nil && k.Images == v1alpha1.KindImagesOffline {
		offline, err := images.Offline(ctx)
		if err != nil {
			return set, fmt.Errorf("spec.provider.kind.images is offline: %w", err)
		}
		set = offline
	}
	if k := bp.Spec.Provider.Kind; k != nil && k.NodeImage != "" {
		ref, err := ParseRef(k.NodeImage)
		if err != nil {
			return set, fmt.Errorf("spec.provider.kind.nodeImage: %w", err)
		}
		set.Node = ref
	}
	return set, nil
}

// endpointAllowed refuses a public endpoint without an unexpired,
// justified exception: kind would publish the API server to every client
// of the host.
func endpointAllowed(bp *blueprints.Blueprint, now time.Time) error {
	if bp.Spec.APIServer.Endpoint != v1alpha1.EndpointPublic {
		return nil
	}
	if _, ok := blueprints.ActiveException(bp.Spec.Exceptions, blueprints.APIEndpointPrivate, now); ok {
		return nil
	}
	return fmt.Errorf("spec.apiServer.endpoint is public, which kind publishes on every address of this host, and the blueprint has no unexpired exception for %s: add one (control, justification, expires) or use endpoint: private", blueprints.APIEndpointPrivate)
}

// apiServerPort is the cluster's host port: the one recorded by an
// earlier run, else a free one.
func apiServerPort(dir string) (int, error) {
	if rec, err := cluster.ReadRecord(dir); err == nil && rec.Ports.APIServer > 0 {
		return rec.Ports.APIServer, nil
	} else if err != nil && !errors.Is(err, cluster.ErrNoCluster) {
		return 0, err
	}
	p, err := proc.FreePort()
	if err != nil {
		return 0, fmt.Errorf("allocate the API server's host port: %w", err)
	}
	return p, nil
}

// Program returns the cluster's program: the provider-neutral skeleton
// (cluster.Program) with the kind steps: the record, then the cluster's
// Docker network, the kind cluster made from the rendered configuration
// (after the config files it mounts), and Cilium once the nodes exist.
func (p *Provider) Program(s *cluster.Spec) (pulumi.RunFunc, error) {
	bp := s.Blueprint
	name, spec := bp.Name(), bp.Spec
	if err := endpointAllowed(bp, time.Now()); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	// Transparent encryption resolves against the kernel the nodes share,
	// before anything is created; the record keeps the resolved mode, so
	// verify judges the cluster by what it runs.
	mode, err := resolveTransparentEncryption(spec, hostKernelEncryption())
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	spec.Network.TransparentEncryption = mode
	ctx := context.Background()
	facts, _, err := hostFacts(ctx)
	if err != nil {
		return nil, err
	}
	facts = pinnedHostFacts(s.Dir, facts)
	set, err := p.images(ctx, bp)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	port, err := apiServerPort(s.Dir)
	if err != nil {
		return nil, err
	}
	l := newLayout(s.Dir)
	var kmsSocket string
	if cluster.UsesKMS(s) {
		kmsSocket = l.KMSSocket()
	}
	r, err := Render(RenderInput{Name: name, Spec: spec, Dir: s.Dir, Images: set, APIServerPort: port, Host: facts, Tweak: s.Tweak, KMSSocket: kmsSocket})
	if err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	// Cilium's resource takes the set without the probe image, which
	// verify loads on its own: a new probe never reinstalls Cilium.
	forCilium := set
	forCilium.Probe = images.Ref{}
	setJSON, err := json.Marshal(forCilium)
	if err != nil {
		return nil, err
	}
	url := cluster.APIServerURL(port)
	var vrec *cluster.VaultRecord
	if s.Vault != nil {
		vrec = &cluster.VaultRecord{Admin: *s.Vault, KMSSocket: kmsSocket}
	}
	files := make([]fileIn, len(r.Files))
	for i, f := range r.Files {
		files[i] = fileIn{Path: f.Path, Data: string(f.Data)}
	}
	own := set.Own()
	// Cilium serves its own policy kinds: spec.network becomes a
	// cluster-wide default deny and a CiliumNetworkPolicy per side of each
	// allow rule, applied once Cilium runs.
	withCilium := p.cilium != nil && spec.Network.CNI == v1alpha1.CNICilium
	rendering := hardening.Options{CiliumPolicies: withCilium}
	d := cluster.Declaration{Spec: s, APIServerURL: url, Kubeconfig: l.AdminKubeconfig(), OwnImages: own, KMSSocket: kmsSocket, Rendering: rendering}
	var record *engine.Res
	d.Steps.Record = func(ctx *pulumi.Context) (*engine.Res, error) {
		record, err = engine.Resource(ctx, cluster.RecordType, name, cluster.RecordInputs{
			Name: name, Provider: v1alpha1.ProviderKind, Dir: s.Dir, Environment: spec.Environment,
			Ports: recordPorts(port), Spec: string(specJSON), EncryptionProvider: spec.EncryptionAtRest.Provider, Vault: vrec,
			OwnImages: own, Rendering: rendering,
		})
		return record, err
	}
	if s.Vault != nil {
		// The plugin runs on this machine, as for local: beside Vault,
		// with its token in the cluster directory, never inside a node.
		d.Steps.KMSPlugin = hostproc.KMSPluginStep(s.Dir, s.Binaries[cluster.Self], name, spec, s.Vault)
	}
	var network, relay *engine.Res
	d.Steps.ControlPlane = func(ctx *pulumi.Context, config *engine.Res, after []*engine.Res) (*engine.Res, error) {
		network, err = engine.Resource(ctx, NetworkType, "network", networkIn{Name: NetworkName(name), Cluster: name, Environment: spec.Environment},
			engine.DependsOn(record))
		if err != nil {
			return nil, err
		}
		if relaysVault(s) {
			relay, err = hostproc.VaultRelayStep(ctx, s.Dir, s.Binaries[cluster.Self], s.Vault,
				network.String("gateway"), network.String("subnet"), engine.DependsOn(network))
			if err != nil {
				return nil, err
			}
		}
		kc, err := engine.Resource(ctx, ClusterType, name, map[string]any{
			"name": name, "dir": s.Dir, "network": NetworkName(name), "config": string(r.Config), "files": files,
			"nodes": r.Nodes, "apiServerURL": url, "restart": config.String("hash"),
			"hostFacts": map[string]any{"cgroupV1": facts.CgroupV1, "kernelDefaults": facts.KernelDefaults},
		}, engine.DependsOn(append([]*engine.Res{network, config}, after...)...))
		if err != nil {
			return nil, err
		}
		if withCilium {
			// The bootstrap objects wait for Cilium: its policy kinds
			// exist once its agents run.
			return engine.Resource(ctx, CiliumType, "cilium", map[string]any{
				"cluster": name, "dir": s.Dir, "spec": string(specJSON), "images": string(setJSON), "nodes": kc.Output("nodes"),
			}, engine.DependsOn(kc))
		}
		return kc, nil
	}
	if relaysVault(s) {
		ca, err := os.ReadFile(s.Vault.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: the local Vault's CA certificate: %w", name, err)
		}
		port, err := vaultPort(s.Vault)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		d.Steps.Workloads = func(ctx *pulumi.Context, bootstrap *engine.Res) error {
			objs := network.String("gateway").ApplyT(func(gw string) ([]string, error) {
				addr, err := netip.ParseAddr(gw)
				if err != nil {
					return nil, fmt.Errorf("network %s: gateway %q: %w", NetworkName(name), gw, err)
				}
				return cluster.RenderObjects(hardening.VaultAccessObjects(name, spec, hardening.VaultAccess{
					Address: netip.AddrPortFrom(addr, port), ServerName: vaultserver.ServerName, CACert: string(ca)}))
			}).(pulumi.StringArrayOutput)
			_, err := cluster.DeclareObjects(ctx, "vault-access", s.Dir, objs, engine.DependsOn(bootstrap, relay))
			return err
		}
	}
	return cluster.Program(d)
}

// relaysVault says whether the cluster's pods reach the local Vault
// through a relay: the blueprint lists namespaces for Vault secrets and
// names no Vault of its own (secprov's local Vault listens on loopback).
func relaysVault(s *cluster.Spec) bool {
	return s.Vault != nil && relaysVaultSpec(s.Blueprint.Spec)
}

func relaysVaultSpec(spec v1alpha1.Spec) bool {
	v := spec.Vault
	return v.IsEnabled() && v.Address == "" && len(v.Namespaces) > 0
}

// vaultPort is the local Vault's port, which the relay listens on too.
func vaultPort(v *vault.Access) (uint16, error) {
	u, err := url.Parse(v.Address)
	if err != nil {
		return 0, fmt.Errorf("the local Vault's address %q: %w", v.Address, err)
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("the local Vault's address %q names no port", v.Address)
	}
	return uint16(p), nil
}
