package cluster

import (
	"fmt"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/vaultres"
	"secprov.dev/secprov/vault"
)

// Steps are what a provider contributes to a cluster's program. Declare
// owns the rest, the same for every provider: the config files and their
// key store, the order of the steps (the KMS key, token and plugin before
// the API server that needs them; the in-cluster bootstrap once the API
// server is ready; workload secrets after the bootstrap that creates
// their token reviewer) and the exports.
type Steps struct {
	// Record declares the cluster's directory and record; everything
	// else depends on it.
	Record func(ctx *pulumi.Context) (*engine.Res, error)
	// KMSPlugin runs the cluster's KMS v2 plugin once its token exists;
	// called only when the cluster encrypts with vault-kms.
	KMSPlugin func(ctx *pulumi.Context, token *engine.Res) (*engine.Res, error)
	// ControlPlane declares the control plane after the given resources
	// (the config; the KMS plugin, if any) and returns the API server,
	// ready to serve. config's "hash" output changes whenever a file the
	// API server reads does, and must restart it.
	ControlPlane func(ctx *pulumi.Context, config *engine.Res, after []*engine.Res) (*engine.Res, error)
	// Workloads, if set, declares what the provider adds in the cluster
	// once the bootstrap objects (namespaces, default deny) exist: on
	// kind, the way the listed namespaces' pods reach Vault.
	Workloads func(ctx *pulumi.Context, bootstrap *engine.Res) error
}

// DeclareObjects declares a set of in-cluster objects (RenderObjects'
// JSON, possibly known only once other resources exist), applied
// server-side as the bootstrap identity and removed with the resource.
func DeclareObjects(ctx *pulumi.Context, name, dir string, objects pulumi.StringArrayInput, opts ...pulumi.ResourceOption) (*engine.Res, error) {
	return engine.Resource(ctx, BootstrapType, name, map[string]any{"dir": dir, "objects": objects}, opts...)
}

// Declaration is one cluster's program: what the provider rendered and
// where it put it.
type Declaration struct {
	Spec *Spec
	// APIServerURL and Kubeconfig are how clients reach the cluster.
	APIServerURL, Kubeconfig string
	// KMSSocket is where the KMS plugin listens; empty without vault-kms.
	KMSSocket string
	// OwnImages are the images the provider runs in the cluster (the image
	// guardrail allows their registries).
	OwnImages []string
	// Rendering is how the provider realises the blueprint's objects.
	Rendering hardening.Options
	Steps     Steps
}

// KMSName is the KMS v2 provider name in the EncryptionConfiguration; it
// shows in raw etcd values as k8s:enc:kms:v2:<name>:.
func KMSName(cluster string) string { return "vault-" + cluster }

// UsesKMS says whether a cluster of spec encrypts through a KMS plugin
// backed by Vault.
func UsesKMS(s *Spec) bool {
	return s.Vault != nil && s.Blueprint.Spec.EncryptionAtRest.Provider == v1alpha1.EncryptionVaultKMS
}

// RenderConfig renders the files the API server of the cluster in dir
// reads: what the config resource writes (without the KMS plugin's name
// and socket, which the caller adds for vault-kms).
func RenderConfig(dir string, spec v1alpha1.Spec) (ConfigInputs, error) {
	cfg := ConfigInputs{Dir: dir, EncryptionProvider: spec.EncryptionAtRest.Provider, EncryptedResources: spec.EncryptionAtRest.Resources}
	if spec.Audit.IsEnabled() {
		policy, err := hardening.AuditPolicy(spec)
		if err != nil {
			return cfg, err
		}
		cfg.AuditPolicy = string(policy)
	}
	admission, err := hardening.AdmissionConfig(spec)
	if err != nil {
		return cfg, err
	}
	cfg.AdmissionConfig = string(admission)
	return cfg, nil
}

// Program renders what every provider renders the same way and returns
// the program that declares the cluster.
func Program(d Declaration) (pulumi.RunFunc, error) {
	s := d.Spec
	spec := s.Blueprint.Spec
	name := s.Blueprint.Name()
	enc := spec.EncryptionAtRest.Provider
	if enc == v1alpha1.EncryptionVaultKMS && !UsesKMS(s) {
		return nil, fmt.Errorf("cluster %s: encryptionAtRest.provider vault-kms needs a Vault", name)
	}
	// Refused before anything changes: data stored under the current
	// provider must stay readable.
	if rec, err := ReadRecord(s.Dir); err == nil {
		if err := blueprints.EncryptionChangeAllowed(rec.EncryptionProvider, enc); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
	}
	cfg, err := RenderConfig(s.Dir, spec)
	if err != nil {
		return nil, err
	}
	if UsesKMS(s) {
		cfg.KMSName, cfg.KMSSocket = KMSName(name), d.KMSSocket
	}
	objs, err := hardening.Objects(spec, d.Rendering)
	if err != nil {
		return nil, err
	}
	objJSON, err := RenderObjects(objs)
	if err != nil {
		return nil, err
	}
	guards, err := hardening.Guardrails(spec, hardening.GuardrailInputs{OwnImages: d.OwnImages, Now: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: guardrails: %w", name, err)
	}
	guardJSON, err := RenderObjects(hardening.GuardrailObjects(guards))
	if err != nil {
		return nil, err
	}
	var vc vaultres.Cluster
	if s.Vault != nil {
		vc = vaultres.Cluster{Access: *s.Vault, Names: vault.NamesFor(name, spec), Kubeconfig: d.Kubeconfig,
			TokenFile: paths.NewLayout(s.Dir).KMSToken(), EvidenceTokenFile: paths.NewLayout(s.Dir).EvidenceToken()}
	}

	return func(ctx *pulumi.Context) error {
		record, err := d.Steps.Record(ctx)
		if err != nil {
			return err
		}
		var after []*engine.Res
		vres := &vaultres.Resources{}
		if UsesKMS(s) {
			if err := vaultres.DeclareKMS(ctx, vc, vres, engine.DependsOn(record)); err != nil {
				return err
			}
			plugin, err := d.Steps.KMSPlugin(ctx, vres.KMSToken)
			if err != nil {
				return err
			}
			after = append(after, plugin)
		}
		if s.Vault != nil {
			// verify --attest signs with the environment's key.
			if err := vaultres.DeclareEvidence(ctx, vc, vres, engine.DependsOn(record)); err != nil {
				return err
			}
		}
		config, err := engine.Resource(ctx, ConfigType, "config", cfg, engine.DependsOn(record))
		if err != nil {
			return err
		}
		apiServer, err := d.Steps.ControlPlane(ctx, config, after)
		if err != nil {
			return err
		}
		bootstrap, err := engine.Resource(ctx, BootstrapType, "bootstrap", bootstrapIn{Dir: s.Dir, Objects: objJSON}, engine.DependsOn(apiServer))
		if err != nil {
			return err
		}
		// The admission guardrails come last: they judge everyone but the
		// bootstrap identity, and nothing secprov creates needs them absent.
		if _, err := engine.Resource(ctx, BootstrapType, "guardrails", bootstrapIn{Dir: s.Dir, Objects: guardJSON}, engine.DependsOn(bootstrap)); err != nil {
			return err
		}
		if d.Steps.Workloads != nil {
			if err := d.Steps.Workloads(ctx, bootstrap); err != nil {
				return err
			}
		}
		// Workload secrets: KV mount, Kubernetes auth against this API
		// server (its token reviewer is among the bootstrap objects), and
		// one read-only role per listed namespace.
		if s.Vault != nil && spec.Vault.IsEnabled() {
			if err := vaultres.DeclareSecrets(ctx, vc, vres, []pulumi.ResourceOption{engine.DependsOn(bootstrap)}, engine.DependsOn(record)); err != nil {
				return err
			}
		}
		ctx.Export("apiServerURL", pulumi.String(d.APIServerURL))
		ctx.Export("kubeconfig", pulumi.String(d.Kubeconfig))
		ctx.Export("environment", pulumi.String(spec.Environment))
		return nil
	}, nil
}
