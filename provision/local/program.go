package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/local/proc"
)

// Binaries are the absolute paths of the control-plane binaries.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler string
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
}

// EffectiveEncryption is the encryption provider the local provider
// configures for a blueprint: vault-kms needs a Vault per cluster, which
// the local provider does not run yet, so it falls back to secretbox with
// a per-cluster key (still encrypted, key on the control plane's disk).
func EffectiveEncryption(spec v1alpha1.Spec) (provider string, note string) {
	p := spec.EncryptionAtRest.Provider
	if p == v1alpha1.EncryptionVaultKMS {
		return v1alpha1.EncryptionSecretbox, "vault-kms is not available on the local provider yet; using secretbox with a per-cluster key"
	}
	return p, ""
}

// ControlPlane renders the hardened control plane of c with the given
// ports.
func (c *Cluster) ControlPlane(ports hardening.Ports) *hardening.ControlPlane {
	l := NewLayout(c.Dir)
	enc, _ := EffectiveEncryption(c.Blueprint.Spec)
	return &hardening.ControlPlane{
		Name: c.Blueprint.Metadata.Name, Spec: c.Blueprint.Spec, Ports: ports,
		Files: l.Files(pki.Paths(l.PKIDir())), EncryptionProvider: enc,
	}
}

// Ports returns the cluster's ports: those recorded in cluster.json by an
// earlier run, else fresh free ports on loopback.
func (c *Cluster) Ports() (hardening.Ports, error) {
	if m, err := NewLayout(c.Dir).ReadMeta(); err == nil {
		return m.Ports, nil
	} else if !errors.Is(err, ErrNoCluster) {
		return hardening.Ports{}, err
	}
	p, err := proc.FreePorts(5)
	if err != nil {
		return hardening.Ports{}, fmt.Errorf("allocate ports: %w", err)
	}
	return hardening.Ports{APIServer: p[0], EtcdClient: p[1], EtcdPeer: p[2], ControllerManager: p[3], Scheduler: p[4]}, nil
}

// Program returns the inline Pulumi program declaring the cluster: its
// directory, PKI, config files, the four components in order, and the
// in-cluster bootstrap objects.
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
	var auditPolicy []byte
	if spec.Audit.IsEnabled() {
		if auditPolicy, err = hardening.AuditPolicy(spec); err != nil {
			return nil, err
		}
	}
	admission, err := hardening.AdmissionConfig(spec)
	if err != nil {
		return nil, err
	}
	objs, err := hardening.Objects(spec)
	if err != nil {
		return nil, err
	}
	objJSON, err := RenderObjects(objs)
	if err != nil {
		return nil, err
	}
	flags := map[string]hardening.Flags{
		Etcd: cp.EtcdFlags(), APIServer: cp.APIServerFlags(),
		ControllerManager: cp.ControllerManagerFlags(), Scheduler: cp.SchedulerFlags(),
	}
	if c.Tweak != nil {
		for comp, f := range flags {
			flags[comp] = c.Tweak(comp, f)
		}
	}
	files := cp.Files
	url := apiServerURL(ports.APIServer)
	ready := map[string]readiness{
		Etcd: {URL: fmt.Sprintf("https://%s:%d/health", hardening.Loopback, ports.EtcdClient), CAFile: files.EtcdCACert,
			CertFile: files.EtcdSelfClientCert, KeyFile: files.EtcdSelfClientKey},
		APIServer: {URL: url + "/readyz", CAFile: files.CACert,
			CertFile: pki.Paths(NewLayout(c.Dir).PKIDir()).SuperAdminCert, KeyFile: pki.Paths(NewLayout(c.Dir).PKIDir()).SuperAdminKey},
		ControllerManager: {URL: fmt.Sprintf("https://%s:%d/healthz", hardening.Loopback, ports.ControllerManager)},
		Scheduler:         {URL: fmt.Sprintf("https://%s:%d/healthz", hardening.Loopback, ports.Scheduler)},
	}
	enc, _ := EffectiveEncryption(spec)

	return func(ctx *pulumi.Context) error {
		cluster, err := engine.Resource(ctx, ClusterType, name, clusterIn{
			Name: name, Dir: c.Dir, Environment: spec.Environment, Ports: ports, Spec: string(specJSON), EncryptionProvider: enc,
		})
		if err != nil {
			return err
		}
		certs, err := engine.Resource(ctx, PKIType, "pki", pkiIn{
			Dir: c.Dir, ClusterName: name, ServiceCIDR: spec.Network.ServiceCIDR, APIServerURL: url,
		}, engine.DependsOn(cluster))
		if err != nil {
			return err
		}
		config, err := engine.Resource(ctx, ConfigType, "config", configIn{
			Dir: c.Dir, EncryptionProvider: enc, EncryptedResources: spec.EncryptionAtRest.Resources,
			AuditPolicy: string(auditPolicy), AdmissionConfig: string(admission),
		}, engine.DependsOn(cluster))
		if err != nil {
			return err
		}
		restart := pulumi.All(certs.String("certsHash"), config.String("hash")).ApplyT(func(v []any) string {
			return fmt.Sprintf("%v;%v", v[0], v[1])
		}).(pulumi.StringOutput)

		deps := []*engine.Res{certs, config}
		procs := map[string]*engine.Res{}
		for _, comp := range Components {
			after := slices.Clone(deps)
			switch comp {
			case APIServer:
				after = append(after, procs[Etcd])
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
				return err
			}
			procs[comp] = r
		}
		if _, err := engine.Resource(ctx, BootstrapType, "bootstrap", bootstrapIn{Dir: c.Dir, Objects: objJSON},
			engine.DependsOn(procs[APIServer])); err != nil {
			return err
		}
		ctx.Export("apiServerURL", pulumi.String(url))
		ctx.Export("kubeconfig", pulumi.String(NewLayout(c.Dir).AdminKubeconfig()))
		ctx.Export("environment", pulumi.String(spec.Environment))
		return nil
	}, nil
}
