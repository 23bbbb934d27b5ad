package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
)

// Resource type tokens of the local provider. ClusterType is the shared
// record resource (cluster.RecordType), named here as before.
const (
	ClusterType = cluster.RecordType
	PKIType     = "secprov:local:Pki"
	ProcessType = hostproc.ProcessType
)

// ResourceTypes are the resource types the local cluster provider serves
// through secprov's resource plugin, besides those every provider shares
// (cluster.Registry adds them).
func ResourceTypes() []provider.ResourceType {
	return []provider.ResourceType{
		pkiResourceType().ResourceType(),
		firewallResourceType().ResourceType(),
	}
}

func apiServerURL(port int) string { return cluster.APIServerURL(port) }

// StopAll stops every process of a cluster, last started first.
func StopAll(ctx context.Context, l paths.Layout) error { return hostproc.StopAll(ctx, l) }

// --- Pki: certificates, keys and kubeconfigs ----------------------------

type pkiIn struct {
	Dir          string `json:"dir" secprov:"replace"`
	ClusterName  string `json:"clusterName" secprov:"replace"`
	ServiceCIDR  string `json:"serviceCIDR"`
	APIServerURL string `json:"apiServerURL"`
}

type pkiOut struct {
	Fingerprint string `json:"fingerprint"` // of the CAs
	CertsHash   string `json:"certsHash"`   // of every certificate: changes on renewal
	NotAfter    string `json:"notAfter"`    // earliest leaf expiry, RFC 3339
}

// RenewBefore is how long before expiry `up` renews a certificate.
const RenewBefore = 30 * 24 * time.Hour

func ensurePKI(in pkiIn) (pkiOut, error) {
	l := paths.NewLayout(in.Dir)
	b, err := pki.Ensure(l.PKIDir(), pki.Options{ClusterName: in.ClusterName, ServiceCIDR: in.ServiceCIDR, RenewBefore: RenewBefore})
	if err != nil {
		return pkiOut{}, err
	}
	kubeconfigs := []struct{ path, cert, key, user string }{
		{l.AdminKubeconfig(), b.AdminCert, b.AdminKey, pki.AdminUser},
		{l.SuperAdminKubeconfig(), b.SuperAdminCert, b.SuperAdminKey, pki.SuperAdminUser},
		{l.Kubeconfig(ControllerManager), b.ControllerManagerCert, b.ControllerManagerKey, pki.ControllerManagerUser},
		{l.Kubeconfig(Scheduler), b.SchedulerCert, b.SchedulerKey, pki.SchedulerUser},
	}
	for _, k := range kubeconfigs {
		if err := pki.WriteKubeconfig(k.path, in.APIServerURL, b.CACert, k.cert, k.key, k.user, in.ClusterName); err != nil {
			return pkiOut{}, err
		}
	}
	out := pkiOut{Fingerprint: b.Fingerprint()}
	h := sha256.New()
	var earliest time.Time
	for _, it := range b.Items() {
		h.Write([]byte(it.Name + "=" + it.CertSHA256 + "\n"))
		if !it.IsCA && !it.NotAfter.IsZero() && (earliest.IsZero() || it.NotAfter.Before(earliest)) {
			earliest = it.NotAfter
		}
	}
	out.CertsHash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	out.NotAfter = earliest.UTC().Format(time.RFC3339)
	return out, nil
}

func pkiResourceType() provider.TypedResourceType[pkiIn, pkiOut] {
	return provider.TypedResourceType[pkiIn, pkiOut]{
		Token: PKIType,
		Create: func(_ context.Context, req provider.TypedRequest[pkiIn, pkiOut]) (string, pkiOut, error) {
			out, err := ensurePKI(req.Inputs)
			return req.Inputs.ClusterName, out, err
		},
		// Certificates expire while inputs stay the same: report a change
		// when one is due, so `up` renews it.
		Diff: func(_ context.Context, req provider.TypedRequest[pkiIn, pkiOut], d provider.Diff) (provider.Diff, error) {
			if t, err := time.Parse(time.RFC3339, req.State.NotAfter); err == nil && time.Until(t) < RenewBefore {
				d.Changes = append(d.Changes, provider.Change{Path: "notAfter", Kind: provider.Update})
			}
			l := paths.NewLayout(req.Inputs.Dir)
			if _, err := os.Stat(pki.Paths(l.PKIDir()).Manifest); err != nil {
				d.Changes = append(d.Changes, provider.Change{Path: "dir", Kind: provider.Update})
			} else if cluster.Exposed(l.PKIDir(), l.AdminKubeconfig(), l.SuperAdminKubeconfig(), l.Kubeconfig(ControllerManager), l.Kubeconfig(Scheduler)) {
				// A key or kubeconfig someone made readable: Ensure and the
				// kubeconfig writes put the modes back.
				d.Changes = append(d.Changes, provider.Change{Path: "modes", Kind: provider.Update})
			}
			return d, nil
		},
		Read: func(_ context.Context, req provider.TypedRequest[pkiIn, pkiOut]) (pkiIn, pkiOut, bool, error) {
			_, err := os.Stat(pki.Paths(paths.NewLayout(req.Inputs.Dir).PKIDir()).Manifest)
			return req.Inputs, req.State, err == nil, nil
		},
		Update: func(_ context.Context, req provider.TypedRequest[pkiIn, pkiOut]) (pkiOut, error) {
			return ensurePKI(req.Inputs)
		},
		Delete: func(_ context.Context, req provider.TypedRequest[pkiIn, pkiOut]) error {
			l := paths.NewLayout(req.Inputs.Dir)
			var errs []error
			for _, p := range []string{l.AdminKubeconfig(), l.SuperAdminKubeconfig(), l.Kubeconfig(ControllerManager), l.Kubeconfig(Scheduler)} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			errs = append(errs, cluster.RemoveAll(l.PKIDir()))
			return errors.Join(errs...)
		},
	}
}

// exposed reports whether any of paths (files, or directories walked
// one level deep) can be read by group or others: a key, kubeconfig or
// config file that must stay private, or its directory.

// WriteConfigForBenchmark renders a cluster's config files exactly as the
// Config resource does, for benchmarks that start components by hand.
func WriteConfigForBenchmark(dir string, spec v1alpha1.Spec) error {
	cfg, err := cluster.RenderConfig(dir, spec)
	if err == nil {
		_, err = cluster.WriteConfig(cfg)
	}
	return err
}
