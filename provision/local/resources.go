package local

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault/kms"
)

// Resource type tokens of the local provider. ClusterType is the shared
// record resource (cluster.RecordType), named here as before.
const (
	ClusterType = cluster.RecordType
	PKIType     = "secprov:local:Pki"
	ProcessType = "secprov:local:Process"
)

// ResourceTypes are the resource types the local cluster provider serves
// through secprov's resource plugin, besides those every provider shares
// (cluster.Registry adds them).
func ResourceTypes() []provider.ResourceType {
	return []provider.ResourceType{
		pkiResourceType().ResourceType(),
		processResourceType().ResourceType(),
	}
}

func apiServerURL(port int) string { return cluster.APIServerURL(port) }

// StopAll stops every component of a cluster, last started first.
func StopAll(ctx context.Context, l paths.Layout) error {
	var errs []error
	for _, c := range slices.Backward(processes) {
		if err := proc.Stop(ctx, l.PidFile(c), stopGrace(c)); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// stopGrace: kube-apiserver may take over a minute to drain watches on
// SIGTERM; nothing it holds needs a graceful drain when secprov stops it.
func stopGrace(component string) time.Duration {
	if component == APIServer {
		return 5 * time.Second
	}
	return 10 * time.Second
}

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

// --- Process: one supervised control-plane component --------------------

type readiness struct {
	URL string `json:"url"`
	// CAFile verifies the server; empty skips verification (kube-scheduler
	// and kube-controller-manager serve self-signed loopback health ports).
	CAFile   string `json:"caFile,omitempty"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// Socket, instead of URL: a KMS v2 plugin socket, ready when the
	// plugin's Status says healthy.
	Socket string `json:"socket,omitempty"`
}

type processIn struct {
	Dir       string   `json:"dir" secprov:"replace"`
	Component string   `json:"component" secprov:"replace"`
	Binary    string   `json:"binary"`
	Args      []string `json:"args"`
	// Restart is an opaque token of what the process reads at start
	// (config and certificate hashes): a change restarts it.
	Restart string    `json:"restart"`
	Ready   readiness `json:"ready"`
}

type processOut struct {
	Pid       int    `json:"pid"`
	StartedAt string `json:"startedAt"`
	LogFile   string `json:"logFile"`
}

// ReadyTimeout bounds how long a component may take to become ready.
const ReadyTimeout = 3 * time.Minute

func startProcess(ctx context.Context, in processIn) (processOut, error) {
	l := paths.NewLayout(in.Dir)
	pidFile := l.PidFile(in.Component)
	// Adopt-by-restart: whatever an interrupted run left behind is stopped,
	// so the process always runs with the current arguments.
	if err := proc.Stop(ctx, pidFile, stopGrace(in.Component)); err != nil {
		return processOut{}, err
	}
	if in.Component == Etcd {
		if err := paths.EnsurePrivateDir(l.EtcdDataDir()); err != nil {
			return processOut{}, err
		}
	}
	if in.Ready.Socket != "" {
		// The socket's directory may be outside the cluster directory
		// (see Layout.KMSSocket); it must be private either way.
		if err := paths.EnsurePrivateDir(filepath.Dir(in.Ready.Socket)); err != nil {
			return processOut{}, err
		}
	}
	p, err := proc.Start(proc.Spec{
		Name: in.Component, Path: in.Binary, Args: in.Args, Dir: l.Dir,
		Env:     []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + l.Dir},
		LogFile: l.LogFile(in.Component), PidFile: pidFile,
	})
	if err != nil {
		return processOut{}, err
	}
	out := processOut{Pid: p.Pid, StartedAt: p.StartedAt.UTC().Format(time.RFC3339Nano), LogFile: p.LogFile}
	probe, err := readyProbe(in.Ready)
	if err != nil {
		return out, err
	}
	rctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	if err := proc.WaitReady(rctx, probe, 50*time.Millisecond, pidFile); err != nil {
		return out, fmt.Errorf("%s did not become ready (log: %s): %w", in.Component, p.LogFile, err)
	}
	return out, nil
}

func readyProbe(r readiness) (proc.Probe, error) {
	if r.Socket != "" {
		return func(ctx context.Context) error {
			st, err := kms.Probe(ctx, r.Socket)
			if err != nil {
				return err
			}
			if !st.Healthy() {
				return fmt.Errorf("KMS plugin not healthy: %s", st.Healthz)
			}
			return nil
		}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.CAFile == "" {
		cfg.InsecureSkipVerify = true // loopback health port with an in-memory self-signed cert
	} else {
		ca, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("no certificate in %s", r.CAFile)
		}
		cfg.RootCAs = pool
	}
	if r.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return proc.HTTPSReady(r.URL, cfg), nil
}

// diffReadyWait bounds how long a diff waits for a running component to
// answer its readiness probe before judging it not ready.
const diffReadyWait = 3 * time.Second

// ready probes a running component the way startProcess waited for it.
func ready(ctx context.Context, in processIn) bool {
	probe, err := readyProbe(in.Ready)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, diffReadyWait)
	defer cancel()
	for {
		if probe(ctx) == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func processResourceType() provider.TypedResourceType[processIn, processOut] {
	alive := func(in processIn) bool { return proc.Alive(paths.NewLayout(in.Dir).PidFile(in.Component)) }
	return provider.TypedResourceType[processIn, processOut]{
		Token:               ProcessType,
		DeleteBeforeReplace: true, // same ports
		Check: func(_ context.Context, in *processIn) []provider.Failure {
			if !slices.Contains(processes, in.Component) {
				return []provider.Failure{{Property: "component", Reason: "unknown component; want one of " + strings.Join(processes, ", ")}}
			}
			return nil
		},
		Create: func(ctx context.Context, req provider.TypedRequest[processIn, processOut]) (string, processOut, error) {
			out, err := startProcess(ctx, req.Inputs)
			return req.Inputs.Component, out, err
		},
		// A component is judged by readiness, not by a live pid: one that
		// died (crash, reboot) or is still shutting down after a SIGTERM
		// shows as a change, so up waits for it to exit and starts it again
		// instead of reporting no changes or failing on a refused
		// connection further down.
		Diff: func(ctx context.Context, req provider.TypedRequest[processIn, processOut], d provider.Diff) (provider.Diff, error) {
			if d.Replaces() {
				return d, nil
			}
			if !alive(req.Inputs) {
				d.Changes = append(d.Changes, provider.Change{Path: "running", Kind: provider.Update})
			} else if !ready(ctx, req.Inputs) {
				d.Changes = append(d.Changes, provider.Change{Path: "ready", Kind: provider.Update})
			}
			return d, nil
		},
		Read: func(_ context.Context, req provider.TypedRequest[processIn, processOut]) (processIn, processOut, bool, error) {
			return req.Inputs, req.State, alive(req.Inputs), nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[processIn, processOut]) (processOut, error) {
			return startProcess(ctx, req.Inputs)
		},
		Delete: func(ctx context.Context, req provider.TypedRequest[processIn, processOut]) error {
			return proc.Stop(ctx, paths.NewLayout(req.Inputs.Dir).PidFile(req.Inputs.Component), stopGrace(req.Inputs.Component))
		},
	}
}

// WriteConfigForBenchmark renders a cluster's config files exactly as the
// Config resource does, for benchmarks that start components by hand.
func WriteConfigForBenchmark(dir string, spec v1alpha1.Spec) error {
	cfg, err := cluster.RenderConfig(dir, spec)
	if err == nil {
		_, err = cluster.WriteConfig(cfg)
	}
	return err
}
