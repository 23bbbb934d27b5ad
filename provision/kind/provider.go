package kind

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/kind/images"
	"secprov.dev/secprov/provision/paths"
)

// Options configure the kind provider.
type Options struct {
	// Images chooses a blueprint's image set; nil: DefaultImages.
	Images func(ctx context.Context, bp *blueprints.Blueprint) (images.Set, error)
	// Cilium installs Cilium; nil leaves the step out (nodes stay
	// NotReady, and Notes say so).
	Cilium CiliumInstaller
}

// Provider is the kind provider behind the cluster.Provider interface.
type Provider struct {
	images func(ctx context.Context, bp *blueprints.Blueprint) (images.Set, error)
	cilium CiliumInstaller
}

// New returns the kind provider.
func New(o Options) *Provider {
	p := &Provider{images: o.Images, cilium: o.Cilium}
	if p.images == nil {
		p.images = DefaultImages
	}
	return p
}

var _ cluster.Provider = (*Provider)(nil)

// Type implements cluster.Provider.
func (*Provider) Type() string { return v1alpha1.ProviderKind }

// Tools implements cluster.Provider: none. The nodes carry their own
// Kubernetes binaries in the node image, and secprov talks to the
// clusters through client-go and the docker command, not kubectl.
func (*Provider) Tools() []string { return nil }

// ResourceTypes implements cluster.Provider.
func (p *Provider) ResourceTypes() []provider.ResourceType { return ResourceTypes(p.cilium) }

func recordPorts(apiServer int) hardening.Ports { return hardening.Ports{APIServer: apiServer} }

// Open implements cluster.Provider.
func (*Provider) Open(rec *cluster.Record, peers cluster.Peers) (verify.Target, error) {
	return NewTarget(rec, peers)
}

// workersOf reads the recorded worker count.
func workersOf(rec *cluster.Record) int {
	spec, err := rec.DecodeSpec()
	if err != nil || spec.Provider.Kind == nil || spec.Provider.Kind.Workers == nil {
		return 0
	}
	return *spec.Provider.Kind.Workers
}

// Status implements cluster.Provider: one component per node container,
// and the cluster's network.
func (*Provider) Status(ctx context.Context, rec *cluster.Record) []cluster.Component {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	nodes := NodeNames(rec.Name, workersOf(rec))
	var out []cluster.Component
	own, _, err := ownNodes(ctx, rec.Name, NetworkName(rec.Name))
	for _, n := range nodes {
		c := cluster.Component{Name: n, State: "missing"}
		switch i := slices.IndexFunc(own, func(c container) bool { return c.Name == n }); {
		case err != nil:
			c.State = "unknown (" + err.Error() + ")"
		case i >= 0:
			c.State, c.Running = own[i].State, own[i].Running()
		}
		out = append(out, c)
	}
	net := cluster.Component{Name: "network " + NetworkName(rec.Name), State: "missing"}
	if labels, found, err := networkLabels(ctx, NetworkName(rec.Name)); err != nil {
		net.State = "unknown (" + err.Error() + ")"
	} else if found && labels[labelCluster] == rec.Name {
		net.State, net.Running = "present", true
	}
	out = append(out, net)
	if rec.Vault != nil && rec.Vault.KMSSocket != "" {
		// The KMS plugin runs on this machine: the API server cannot
		// write or read encrypted data without it.
		st, running, pid := hostproc.Status(newLayout(rec.Dir).Layout, hostproc.KMSPlugin)
		out = append(out, cluster.Component{Name: hostproc.KMSPlugin, State: st, Running: running, Pid: pid})
	}
	if spec, err := rec.DecodeSpec(); err == nil && rec.Vault != nil && relaysVaultSpec(spec) {
		// The pods of the listed namespaces reach Vault only through it.
		st, running, pid := hostproc.Status(newLayout(rec.Dir).Layout, hostproc.VaultRelay)
		out = append(out, cluster.Component{Name: hostproc.VaultRelay, State: st, Running: running, Pid: pid})
	}
	return out
}

// Cleanup implements cluster.Provider: it removes the cluster's node
// containers and network (only what secprov made: nodes on the cluster's
// own network, a network carrying secprov's label) and the kind files of
// the directory. The cluster is named by its record, else by the
// directory, which is named after it.
func (*Provider) Cleanup(ctx context.Context, dir string) error {
	name := filepath.Base(dir)
	if rec, err := cluster.ReadRecord(dir); err == nil {
		name = rec.Name
	}
	// The KMS plugin and the Vault relay are processes of this machine,
	// engine or not.
	kms := hostproc.Cleanup(ctx, paths.NewLayout(dir))
	if _, err := checkEngine(ctx); err != nil {
		// Without an engine there are no containers left to stop; the
		// directory's own files still go.
		return errors.Join(kms, removeKindFiles(newLayout(dir)))
	}
	return errors.Join(
		kms,
		deleteNodes(ctx, name, NetworkName(name)),
		removeNetwork(ctx, NetworkName(name), name),
		removeKindFiles(newLayout(dir)),
	)
}

// Preflight implements cluster.Provider: a Docker engine must answer, and
// a public endpoint needs its exception; both before anything of any
// cluster is created.
func (*Provider) Preflight(ctx context.Context, bp *blueprints.Blueprint) error {
	if _, err := checkEngine(ctx); err != nil {
		return err
	}
	return endpointAllowed(bp, time.Now())
}

// Notes implements cluster.Provider: how kind realises the blueprint
// where it differs from the local provider, and what the host decides.
func (p *Provider) Notes(bp *blueprints.Blueprint) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	notes := []string{fmt.Sprintf("kind: nodes on their own Docker network %s; API server published on %s:<port> of this host",
		NetworkName(bp.Name()), map[bool]string{true: "0.0.0.0", false: "127.0.0.1"}[bp.Spec.APIServer.Endpoint == v1alpha1.EndpointPublic])}
	if bp.Spec.EncryptionAtRest.Provider == v1alpha1.EncryptionSecretbox {
		notes = append(notes, "encryption at rest: secretbox with a per-cluster key kept 0600 in the cluster directory")
	}
	if bp.Spec.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS {
		notes = append(notes, "encryption at rest: KMS v2 through Vault Transit; the KMS plugin runs on this machine and its socket is mounted into the control-plane node")
	}
	facts, _, err := hostFacts(ctx)
	if err != nil {
		return append(notes, err.Error())
	}
	if facts.CgroupV1 {
		notes = append(notes, "the Docker host runs cgroup v1: the kubelets run with failCgroupV1: false (Kubernetes deprecates cgroup v1; move the host to cgroup v2)")
	}
	if !facts.KernelDefaults {
		why := "the Docker engine is not on this machine, so its kernel settings are unknown"
		if localEngine() {
			why = "this host's kernel settings differ from what the kubelet needs: " + strings.Join(kernelDefaultsMissing(), ", ") +
				"; the nodes share them, and each kubelet sets them host-wide as in any kind cluster. A cluster keeps the setting it was created with: set them with sysctl before up creates it (or secprov down, then up) to turn protection on"
		}
		notes = append(notes, "kubelet protectKernelDefaults (CIS 4.2.6) is off: "+why)
	}
	if p.cilium == nil && bp.Spec.Network.CNI == v1alpha1.CNICilium {
		notes = append(notes, "Cilium is not installed by this build: the nodes stay NotReady and pods do not run")
	}
	return notes
}
