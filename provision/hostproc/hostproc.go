// Package hostproc runs the processes secprov supervises on this machine
// for a cluster, as a resource of the engine: the control plane of a local
// cluster, and for both providers the KMS v2 plugin and the Vault relay
// (a kind cluster's API server and pods reach them from their nodes). A
// process is started with its pid file and log in the cluster directory,
// judged by a readiness probe, restarted when what it reads changes, and
// stopped on delete.
package hostproc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/provision/vaultserver"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/kms"
)

// ProcessType is the resource type's token. It keeps the name it had when
// only the local provider ran processes, so existing state stays valid.
const ProcessType = "secprov:local:Process"

// Processes of a cluster besides its control-plane components.
const (
	// KMSPlugin is the KMS v2 plugin (secprov kms-plugin) of a cluster
	// that encrypts with vault-kms; it starts before the API server.
	KMSPlugin = "kms-plugin"
	// VaultRelay (secprov vault-relay) lets a kind cluster's pods reach
	// the local Vault at their network's gateway.
	VaultRelay = "vault-relay"
)

// processes are every process a cluster may run, in start order.
var processes = append([]string{KMSPlugin, VaultRelay}, hardening.Components()...)

// Status is a process's state from its pid file: the state's name, whether
// it runs, and its pid when it does.
func Status(l paths.Layout, name string) (state string, running bool, pid int) {
	st, _ := proc.Status(l.PidFile(name))
	running = st == proc.StateRunning
	if rec, err := proc.ReadPidFile(l.PidFile(name)); err == nil && running {
		pid = rec.Pid
	}
	return st.String(), running, pid
}

// Cleanup stops every process of the cluster directory l and removes the
// KMS socket's directory when it is kept outside l (see
// paths.Layout.KMSSocket).
func Cleanup(ctx context.Context, l paths.Layout) error {
	err := StopAll(ctx, l)
	if sock := filepath.Dir(l.KMSSocket()); !strings.HasPrefix(sock, l.Dir+string(filepath.Separator)) {
		if rerr := os.RemoveAll(sock); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// StopAll stops every process of the cluster directory l, last started
// first.
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
	if component == hardening.APIServer {
		return 5 * time.Second
	}
	return 10 * time.Second
}

// KMSPluginStep is the cluster step that runs `secprov kms-plugin` for
// the cluster in dir as a supervised process of this machine, with its own
// narrow token, listening on the cluster's KMS socket. Both providers use
// it: on kind the socket's directory is mounted into the control-plane
// node, where the API server dials it. A new token restarts the plugin so
// it reads it at once.
func KMSPluginStep(dir, binary, cluster string, spec v1alpha1.Spec, v *vault.Access) func(*pulumi.Context, *engine.Res) (*engine.Res, error) {
	l := paths.NewLayout(dir)
	n := vault.NamesFor(cluster, spec)
	args := []string{"kms-plugin", "--socket", l.KMSSocket(), "--vault-addr", v.Address,
		"--token-file", l.KMSToken(), "--transit-mount", n.TransitMount, "--transit-key", n.TransitKey}
	if v.CAFile != "" {
		args = append(args, "--vault-cacert", v.CAFile)
	}
	return func(ctx *pulumi.Context, token *engine.Res) (*engine.Res, error) {
		return engine.Resource(ctx, ProcessType, KMSPlugin, map[string]any{
			"dir": dir, "component": KMSPlugin, "binary": binary, "args": args,
			"restart": token.String("accessor"), "ready": Readiness{Socket: l.KMSSocket()},
		}, engine.DependsOn(token))
	}
}

// VaultRelayStep declares the `secprov vault-relay` process of a kind
// cluster whose pods use the local Vault: it listens on the cluster
// network's gateway (the address the cluster's pods reach this machine
// at) on Vault's own port, accepts only the cluster's subnet (and this
// machine's own addresses), and passes TLS through to Vault's loopback
// listener. It is ready once Vault's
// health endpoint answers through it with Vault's own certificate, checked
// against the name that certificate carries (the gateway is not in it).
func VaultRelayStep(ctx *pulumi.Context, dir, binary string, v *vault.Access, gateway, subnet pulumi.StringOutput, opts ...pulumi.ResourceOption) (*engine.Res, error) {
	u, err := url.Parse(v.Address)
	if err != nil || u.Port() == "" {
		return nil, fmt.Errorf("the local Vault's address %q names no port", v.Address)
	}
	port, to := u.Port(), u.Host
	args := pulumi.All(gateway, subnet).ApplyT(func(xs []any) []string {
		return []string{VaultRelay, "--listen", net.JoinHostPort(xs[0].(string), port), "--allow", xs[1].(string), "--to", to}
	}).(pulumi.StringArrayOutput)
	ready := gateway.ApplyT(func(gw string) map[string]any {
		return map[string]any{"url": "https://" + net.JoinHostPort(gw, port) + "/v1/sys/health", "caFile": v.CAFile, "serverName": vaultserver.ServerName}
	}).(pulumi.MapOutput)
	return engine.Resource(ctx, ProcessType, VaultRelay, map[string]any{
		"dir": dir, "component": VaultRelay, "binary": binary, "args": args,
		"restart": pulumi.All(gateway, subnet).ApplyT(func(xs []any) string { return xs[0].(string) + " " + xs[1].(string) }).(pulumi.StringOutput),
		"ready":   ready,
	}, opts...)
}

// --- Process: one supervised process of this machine -------------------

// Readiness is how a process is judged ready.
type Readiness struct {
	URL string `json:"url"`
	// CAFile verifies the server; empty skips verification (kube-scheduler
	// and kube-controller-manager serve self-signed loopback health ports).
	CAFile   string `json:"caFile,omitempty"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ServerName, if set, is the name the server's certificate is checked
	// against instead of the URL's host (a relay in front of a server
	// whose certificate names its own address).
	ServerName string `json:"serverName,omitempty"`
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
	Ready   Readiness `json:"ready"`
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
	if in.Component == hardening.Etcd {
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
	waitPortFree(ctx, in.Ready.URL, portFreeWait)
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

// portFreeWait bounds how long a restart waits for the component's port.
const portFreeWait = 10 * time.Second

// waitPortFree waits until the loopback port of a readiness URL can be
// bound, or wait has passed: the process just stopped may still hold it
// for a moment, as may another cluster's free-port probe (proc.FreePorts
// binds candidates briefly). Starting into a held port fails with
// "address already in use" (measured once in CI on a restarted API
// server); after wait the start goes ahead and says so if it fails.
func waitPortFree(ctx context.Context, rawURL string, wait time.Duration) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" || !strings.HasPrefix(u.Hostname(), "127.") {
		return
	}
	deadline := time.Now().Add(wait)
	for {
		l, err := net.Listen("tcp", u.Host)
		if err == nil {
			_ = l.Close()
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readyProbe(r Readiness) (proc.Probe, error) {
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
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.ServerName}
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
// answer its Readiness probe before judging it not ready.
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

// ResourceType is the process resource type; cluster.Registry serves it
// for every provider.
func ResourceType() provider.ResourceType { return processResourceType().ResourceType() }

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
		// A component is judged by Readiness, not by a live pid: one that
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
