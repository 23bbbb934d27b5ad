package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault"
)

// Binaries are the absolute paths of the control-plane binaries.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler string
	// KMSPlugin is a binary that serves `kms-plugin` (the secprov binary
	// itself; a test binary whose TestMain dispatches it in tests).
	KMSPlugin string
}

func (b Binaries) of(component string) string {
	switch component {
	case Etcd:
		return b.Etcd
	case APIServer:
		return b.APIServer
	case ControllerManager:
		return b.ControllerManager
	default:
		return b.Scheduler
	}
}

// Cluster is what the program needs to declare one local cluster.
type Cluster struct {
	Blueprint v1alpha1.Blueprint // defaulted
	Dir       string             // the cluster's private directory
	Binaries  Binaries
	// Tweak, if set, may change a component's flags before they are
	// declared. Tests use it to build a cluster with one control removed;
	// the CLI never sets it.
	Tweak func(component string, flags hardening.Flags) hardening.Flags
	// Vault is how the cluster reaches its Vault; nil when the blueprint
	// uses none (no vault-kms, vault.enabled false).
	Vault *vault.Access
}

// ControlPlane renders the hardened control plane of c with the given
// ports.
func (c *Cluster) ControlPlane(ports hardening.Ports) *hardening.ControlPlane {
	l := paths.NewLayout(c.Dir)
	cp := &hardening.ControlPlane{Topology: topology,
		Name: c.Blueprint.Metadata.Name, Spec: c.Blueprint.Spec, Ports: ports,
		Files: files(l, pki.Paths(l.PKIDir())), EncryptionProvider: c.Blueprint.Spec.EncryptionAtRest.Provider,
	}
	return cp
}

// Ports returns the cluster's ports: those recorded in cluster.json by an
// earlier run, else fresh free ports on loopback.
func (c *Cluster) Ports() (hardening.Ports, error) {
	if m, err := cluster.ReadRecord(c.Dir); err == nil {
		return m.Ports, nil
	} else if !errors.Is(err, cluster.ErrNoCluster) {
		return hardening.Ports{}, err
	}
	p, err := proc.FreePorts(5)
	if err != nil {
		return hardening.Ports{}, fmt.Errorf("allocate ports: %w", err)
	}
	return hardening.Ports{APIServer: p[0], EtcdClient: p[1], EtcdPeer: p[2], ControllerManager: p[3], Scheduler: p[4]}, nil
}

// Program returns the inline Pulumi program declaring the cluster: the
// provider-neutral skeleton (cluster.Program) with the local steps: the
// cluster directory and record, the KMS plugin process, and the control
// plane (PKI, then etcd, API server, controller manager and scheduler as
// supervised processes, in order).
func (c *Cluster) Program() (pulumi.RunFunc, error) {
	ports, err := c.Ports()
	if err != nil {
		return nil, err
	}
	cp := c.ControlPlane(ports)
	spec := c.Blueprint.Spec
	name := c.Blueprint.Metadata.Name
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	flags := map[string]hardening.Flags{}
	for _, comp := range Components {
		flags[comp] = cp.Flags(comp)
		if c.Tweak != nil {
			flags[comp] = c.Tweak(comp, flags[comp])
		}
	}
	l := paths.NewLayout(c.Dir)
	files := cp.Files
	url := apiServerURL(ports.APIServer)
	bundle := pki.Paths(l.PKIDir())
	ready := map[string]hostproc.Readiness{
		Etcd: {URL: fmt.Sprintf("https://%s:%d/health", host, ports.EtcdClient), CAFile: files.EtcdCACert,
			CertFile: files.EtcdSelfClientCert, KeyFile: files.EtcdSelfClientKey},
		APIServer:         {URL: url + "/readyz", CAFile: files.CACert, CertFile: bundle.SuperAdminCert, KeyFile: bundle.SuperAdminKey},
		ControllerManager: {URL: fmt.Sprintf("https://%s:%d/healthz", host, ports.ControllerManager)},
		Scheduler:         {URL: fmt.Sprintf("https://%s:%d/healthz", host, ports.Scheduler)},
	}
	cs := &cluster.Spec{Blueprint: &blueprints.Blueprint{Blueprint: c.Blueprint}, Dir: c.Dir, Vault: c.Vault}
	var vmeta *cluster.VaultRecord
	if c.Vault != nil {
		vmeta = &cluster.VaultRecord{Admin: *c.Vault}
		if cluster.UsesKMS(cs) {
			vmeta.KMSSocket = l.KMSSocket()
		}
	}
	d := cluster.Declaration{Spec: cs, APIServerURL: url, Kubeconfig: l.AdminKubeconfig()}
	if cluster.UsesKMS(cs) {
		d.KMSSocket = l.KMSSocket()
	}
	var dirRes *engine.Res
	d.Steps.Record = func(ctx *pulumi.Context) (*engine.Res, error) {
		var err error
		dirRes, err = engine.Resource(ctx, ClusterType, name, cluster.RecordInputs{
			Name: name, Provider: spec.Provider.Type, Dir: c.Dir, Environment: spec.Environment, Ports: ports, Spec: string(specJSON),
			EncryptionProvider: spec.EncryptionAtRest.Provider, Vault: vmeta,
		})
		return dirRes, err
	}
	if c.Vault != nil {
		d.Steps.KMSPlugin = hostproc.KMSPluginStep(c.Dir, c.Binaries.KMSPlugin, name, spec, c.Vault)
	}
	d.Steps.ControlPlane = func(ctx *pulumi.Context, config *engine.Res, kms []*engine.Res) (*engine.Res, error) {
		certs, err := engine.Resource(ctx, PKIType, "pki", pkiIn{
			Dir: c.Dir, ClusterName: name, ServiceCIDR: spec.Network.ServiceCIDR, APIServerURL: url,
		}, engine.DependsOn(dirRes))
		if err != nil {
			return nil, err
		}
		restart := pulumi.All(certs.String("certsHash"), config.String("hash")).ApplyT(func(v []any) string {
			return fmt.Sprintf("%v;%v", v[0], v[1])
		}).(pulumi.StringOutput)
		deps := []*engine.Res{certs, config}
		var firewall *engine.Res
		if fw := cp.APIFirewall(); fw != nil {
			// Before the API server binds every address: no moment in
			// which the public endpoint takes clients outside the list.
			firewall, err = engine.Resource(ctx, FirewallType, "api-firewall", firewallInputs(fw), engine.DependsOn(dirRes))
			if err != nil {
				return nil, err
			}
		}
		procs := map[string]*engine.Res{}
		for _, comp := range Components {
			after := slices.Clone(deps)
			switch comp {
			case APIServer:
				after = append(append(after, procs[Etcd]), kms...)
				if firewall != nil {
					after = append(after, firewall)
				}
			case ControllerManager, Scheduler:
				after = append(after, procs[APIServer])
			}
			token := restart
			if comp == ControllerManager || comp == Scheduler {
				// Both exit when they lose the API server; restarting the
				// API server restarts them after it, so they come back.
				token = pulumi.All(restart, procs[APIServer].String("startedAt")).ApplyT(func(v []any) string {
					return fmt.Sprintf("%v;apiserver=%v", v[0], v[1])
				}).(pulumi.StringOutput)
			}
			r, err := engine.Resource(ctx, ProcessType, comp, map[string]any{
				"dir": c.Dir, "component": comp, "binary": c.Binaries.of(comp),
				"args": flags[comp].Args(), "restart": token, "ready": ready[comp],
			}, engine.DependsOn(after...))
			if err != nil {
				return nil, err
			}
			procs[comp] = r
		}
		return procs[APIServer], nil
	}
	return cluster.Program(d)
}
