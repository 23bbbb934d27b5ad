package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

// Resource type tokens of the kind provider.
const (
	NetworkType = "secprov:kind:Network"
	ClusterType = "secprov:kind:Cluster"
	CiliumType  = "secprov:kind:Cilium"
)

// APIReadyTimeout bounds how long up waits for the API server of a
// created, started or restarted cluster.
const APIReadyTimeout = 4 * time.Minute

// servingWait is how long a create waits for the kubelets to ask for
// their serving certificates.
const servingWait = 90 * time.Second

func logOf(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// --- Network: the cluster's own Docker network ---------------------------

type networkIn struct {
	Name        string `json:"name" secprov:"replace"`
	Cluster     string `json:"cluster" secprov:"replace"`
	Environment string `json:"environment"`
}

type networkOut struct {
	Name string `json:"name"`
	// Gateway is this machine's address on the network (where the
	// cluster's nodes and pods reach it) and Subnet the network's IPv4
	// range.
	Gateway string `json:"gateway"`
	Subnet  string `json:"subnet"`
}

// networkState ensures the network and reads its addresses.
func networkState(ctx context.Context, in networkIn) (networkOut, error) {
	if err := ensureNetwork(ctx, in); err != nil {
		return networkOut{}, err
	}
	gw, subnet, err := networkIPv4(ctx, in.Name)
	if err != nil {
		return networkOut{}, err
	}
	return networkOut{Name: in.Name, Gateway: gw.String(), Subnet: subnet.String()}, nil
}

func ensureNetwork(ctx context.Context, in networkIn) error {
	labels, found, err := networkLabels(ctx, in.Name)
	if err != nil {
		return err
	}
	if found {
		if labels[labelCluster] != in.Cluster {
			return fmt.Errorf("a Docker network named %s exists that secprov did not make for cluster %s: remove it (docker network rm %s) or rename the blueprint", in.Name, in.Cluster, in.Name)
		}
		return nil
	}
	_, err = docker(ctx, "network", "create", "--driver", "bridge",
		"--label", labelCluster+"="+in.Cluster, "--label", labelEnvironment+"="+in.Environment, in.Name)
	return err
}

// removeNetwork removes the cluster's network if secprov made it.
func removeNetwork(ctx context.Context, name, clusterName string) error {
	labels, found, err := networkLabels(ctx, name)
	if err != nil || !found || labels[labelCluster] != clusterName {
		return err
	}
	_, err = docker(ctx, "network", "rm", name)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (containers still attached? see docker network inspect %s)", err, name)
	}
	return nil
}

func networkResourceType() provider.TypedResourceType[networkIn, networkOut] {
	return provider.TypedResourceType[networkIn, networkOut]{
		Token: NetworkType,
		Create: func(ctx context.Context, req provider.TypedRequest[networkIn, networkOut]) (string, networkOut, error) {
			out, err := networkState(ctx, req.Inputs)
			if err != nil {
				return "", networkOut{}, err
			}
			return req.Inputs.Name, out, nil
		},
		Read: func(ctx context.Context, req provider.TypedRequest[networkIn, networkOut]) (networkIn, networkOut, bool, error) {
			labels, found, err := networkLabels(ctx, req.Inputs.Name)
			if err != nil {
				return req.Inputs, req.State, true, nil // cannot tell: keep it
			}
			found = found && labels[labelCluster] == req.Inputs.Cluster
			st := req.State
			if found {
				if gw, subnet, err := networkIPv4(ctx, req.Inputs.Name); err == nil {
					st.Gateway, st.Subnet = gw.String(), subnet.String()
				}
			}
			return req.Inputs, st, found, nil
		},
		// A network removed out of band shows, and up makes it again.
		Diff: func(ctx context.Context, req provider.TypedRequest[networkIn, networkOut], d provider.Diff) (provider.Diff, error) {
			if d.Replaces() {
				return d, nil
			}
			if _, found, err := networkLabels(ctx, req.Inputs.Name); err == nil && !found {
				d.Changes = append(d.Changes, provider.Change{Path: "network", Kind: provider.Update})
			}
			return d, nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[networkIn, networkOut]) (networkOut, error) {
			return networkState(ctx, req.Inputs)
		},
		Delete: func(ctx context.Context, req provider.TypedRequest[networkIn, networkOut]) error {
			return removeNetwork(ctx, req.Inputs.Name, req.Inputs.Cluster)
		},
	}
}

// --- Cluster: the kind cluster's node containers --------------------------

type fileIn struct {
	Path string `json:"path"`
	Data string `json:"data"`
}

type clusterIn struct {
	Name    string `json:"name" secprov:"replace"`
	Dir     string `json:"dir" secprov:"replace"`
	Network string `json:"network" secprov:"replace"`
	// Config is the rendered kind configuration; the node containers and
	// kubeadm's static pods are made from it, so a change replaces the
	// cluster.
	Config string   `json:"config" secprov:"replace"`
	Files  []fileIn `json:"files" secprov:"replace"`
	Nodes  []string `json:"nodes" secprov:"replace"`
	// APIServerURL is where secprov's kubeconfigs point.
	APIServerURL string `json:"apiServerURL"`
	// Restart changes when a file the API server reads at start changes
	// (the config resource's hash): the API server restarts.
	Restart string `json:"restart"`
	// HostFacts are those Config was rendered with; kept in the cluster
	// directory for the next up (pinnedHostFacts).
	HostFacts HostFacts `json:"hostFacts"`
}

type clusterOut struct {
	Nodes []string `json:"nodes"`
	// CA is the cluster CA's fingerprint.
	CA      string `json:"ca"`
	Restart string `json:"restart"`
}

func (in clusterIn) files() []File {
	out := make([]File, len(in.Files))
	for i, f := range in.Files {
		out[i] = File{Path: f.Path, Data: []byte(f.Data)}
	}
	return out
}

// prepare writes what the nodes mount before they exist: the CA and the
// rendered files.
func prepare(in clusterIn) (string, error) {
	l := newLayout(in.Dir)
	for _, d := range []string{l.KindDir(), l.PatchesDir(), l.LogDir()} {
		if err := paths.EnsurePrivateDir(d); err != nil {
			return "", err
		}
	}
	ca, _, err := ensureCA(l, in.Name)
	if err != nil {
		return "", err
	}
	facts, err := json.Marshal(in.HostFacts)
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(l.HostFactsFile(), facts, 0o600); err != nil {
		return "", err
	}
	return caFingerprint(ca), writeFiles(in.files())
}

// pinnedHostFacts are the host facts the cluster in dir was created with,
// or now when it has none recorded. The kubelets of a kind cluster set
// the kernel settings protectKernelDefaults needs host-wide, so the host
// changes under the first cluster; rendering from now would replace the
// cluster on the next up. Protection follows the host only when the
// cluster is created again.
func pinnedHostFacts(dir string, now HostFacts) HostFacts {
	data, err := os.ReadFile(newLayout(dir).HostFactsFile())
	if err != nil {
		return now
	}
	var f HostFacts
	if err := json.Unmarshal(data, &f); err != nil {
		return now
	}
	return f
}

// complete reports whether the existing nodes are a whole cluster that a
// run interrupted after kind finished: every node there, the control
// plane initialised, every worker joined.
func complete(ctx context.Context, in clusterIn, own []container) bool {
	var names []string
	for _, c := range own {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(in.Nodes))
	if !slices.Equal(names, want) {
		return false
	}
	if err := startNodes(ctx, own); err != nil {
		return false
	}
	for i, n := range in.Nodes {
		file := "/etc/kubernetes/kubelet.conf"
		if i == 0 {
			file = "/etc/kubernetes/manifests/kube-apiserver.yaml"
		}
		if _, err := nodeExec(ctx, n, "test", "-s", file); err != nil {
			return false
		}
	}
	return true
}

// finish brings a created or started cluster to what up promises: API
// server ready, the join token gone, node files private, secprov's
// kubeconfigs valid, every kubelet's serving certificate approved.
func finish(ctx context.Context, log *slog.Logger, in clusterIn) error {
	l := newLayout(in.Dir)
	if err := writeKubeconfigs(l, in.Name, in.APIServerURL); err != nil {
		return err
	}
	cs, err := superAdminClient(l)
	if err != nil {
		return err
	}
	if err := waitAPIServer(ctx, cs, APIReadyTimeout); err != nil {
		return fmt.Errorf("cluster %s: %w (see docker logs %s and the kubelet's journal in it)", in.Name, err, in.Nodes[0])
	}
	if err := deleteJoinToken(ctx, cs); err != nil {
		return fmt.Errorf("delete the join token: %w", err)
	}
	if err := removeKubeadmAdmins(ctx, cs); err != nil {
		return err
	}
	if err := hardenNodeFiles(ctx, in.Nodes); err != nil {
		return err
	}
	addrs, err := nodeAddresses(ctx, in.Nodes, in.Network)
	if err != nil {
		return err
	}
	if err := approveServing(ctx, log, cs, addrs, servingWait); err != nil {
		return fmt.Errorf("kubelet serving certificates: %w", err)
	}
	// kind's own admin kubeconfig is a credential secprov does not use.
	if err := os.Remove(l.KindKubeconfig()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func createCluster(ctx context.Context, log *slog.Logger, in clusterIn) (string, clusterOut, error) {
	if _, err := checkEngine(ctx); err != nil {
		return "", clusterOut{}, err
	}
	ca, err := prepare(in)
	if err != nil {
		return "", clusterOut{}, err
	}
	out := clusterOut{Nodes: in.Nodes, CA: ca, Restart: in.Restart}
	own, foreign, err := ownNodes(ctx, in.Name, in.Network)
	if err != nil {
		return "", out, err
	}
	if len(foreign) > 0 {
		return "", out, foreignError(in.Name, foreign)
	}
	switch {
	case len(own) > 0 && complete(ctx, in, own):
		// A run interrupted after kind finished: adopt the cluster.
		log.Info("adopting the nodes an interrupted run created", "cluster", in.Name)
	default:
		if len(own) > 0 {
			// A half-made cluster cannot be trusted: start over.
			if err := deleteNodes(ctx, in.Name, in.Network); err != nil {
				return "", out, err
			}
		}
		if err := createNodes(ctx, log, in.Name, in.Network, []byte(in.Config), newLayout(in.Dir)); err != nil {
			return "", out, err
		}
	}
	// From here the nodes exist: a failure returns the id, so the next up
	// finishes through Update and down removes them.
	return in.Name, out, finish(ctx, log, in)
}

// clusterChanges are the out-of-band changes of a live cluster: missing
// nodes (replaced), stopped nodes, exposed node files, kubeconfigs to
// reissue, serving certificates to approve.
func clusterChanges(ctx context.Context, in clusterIn) []provider.Change {
	own, _, err := ownNodes(ctx, in.Name, in.Network)
	if err != nil {
		return nil // cannot tell; do not guess
	}
	var out []provider.Change
	byName := map[string]container{}
	for _, c := range own {
		byName[c.Name] = c
	}
	var running []string
	for _, n := range in.Nodes {
		c, ok := byName[n]
		switch {
		case !ok:
			out = append(out, provider.Change{Path: "node " + n + " (missing)", Kind: provider.Update, Replace: true})
		case !c.Running():
			out = append(out, provider.Change{Path: "node " + n + " (" + c.State + ")", Kind: provider.Update})
		default:
			running = append(running, n)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, f := range exposedNodeFiles(ctx, running) {
		out = append(out, provider.Change{Path: "node file " + f + " (readable beyond root)", Kind: provider.Update})
	}
	l := newLayout(in.Dir)
	for _, p := range kubeconfigProblems(l, in.APIServerURL) {
		out = append(out, provider.Change{Path: "kubeconfig " + p, Kind: provider.Update})
	}
	if cs, err := superAdminClient(l); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if kubeadmAdminsPresent(cctx, cs) {
			out = append(out, provider.Change{Path: "clusterrolebinding " + kubeadmAdminsBinding + " (cluster-admin for kubeadm's admin.conf)", Kind: provider.Update})
		}
		if addrs, err := nodeAddresses(ctx, in.Nodes, in.Network); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if ok, _, err := servingCSRs(cctx, cs, addrs); err == nil && len(ok) > 0 {
				out = append(out, provider.Change{Path: fmt.Sprintf("kubelet serving certificates (%d to approve)", len(ok)), Kind: provider.Update})
			}
		}
	}
	return out
}

func updateCluster(ctx context.Context, log *slog.Logger, req provider.TypedRequest[clusterIn, clusterOut]) (clusterOut, error) {
	in := req.Inputs
	if _, err := checkEngine(ctx); err != nil {
		return req.State, err
	}
	ca, err := prepare(in)
	if err != nil {
		return req.State, err
	}
	own, _, err := ownNodes(ctx, in.Name, in.Network)
	if err != nil {
		return req.State, err
	}
	if len(own) < len(in.Nodes) {
		// A create that failed after kind finished left nodes missing, or
		// they were removed since the plan: make the cluster again.
		if err := deleteNodes(ctx, in.Name, in.Network); err != nil {
			return req.State, err
		}
		_, out, err := createCluster(ctx, log, in)
		return out, err
	}
	var stopped []string
	for _, c := range own {
		if !c.Running() {
			stopped = append(stopped, c.Name)
		}
	}
	wasStopped := len(stopped) > 0
	started := time.Now()
	if err := startNodes(ctx, own); err != nil {
		return req.State, fmt.Errorf("start the nodes of %s: %w", in.Name, err)
	}
	if !wasStopped && req.State.Restart != "" && in.Restart != req.State.Restart {
		if err := restartAPIServer(ctx, in.Nodes[0]); err != nil {
			return req.State, err
		}
		// Give the kubelet time to notice the exit before waiting for
		// readiness, or the old process's answer would count.
		time.Sleep(2 * time.Second)
	}
	out := clusterOut{Nodes: in.Nodes, CA: ca, Restart: in.Restart}
	if err := finish(ctx, log, in); err != nil {
		return out, err
	}
	if wasStopped {
		// The CNI runs already (Cilium's step will see no change): wait
		// here until the restarted nodes are Ready again, so up does not
		// report a cluster whose nodes still come up.
		cs, err := superAdminClient(newLayout(in.Dir))
		if err != nil {
			return out, err
		}
		if ciliumInstalled(ctx, cs) {
			if err := waitRestarted(ctx, cs, stopped, started, APIReadyTimeout); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func clusterResourceType() provider.TypedResourceType[clusterIn, clusterOut] {
	return provider.TypedResourceType[clusterIn, clusterOut]{
		Token: ClusterType,
		// Same name, port and network: the old cluster must go first.
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *clusterIn) []provider.Failure {
			var f []provider.Failure
			if len(in.Nodes) == 0 {
				f = append(f, provider.Failure{Property: "nodes", Reason: "a cluster needs its control-plane node"})
			}
			for i, file := range in.Files {
				if !strings.HasPrefix(file.Path, in.Dir+"/") {
					f = append(f, provider.Failure{Property: fmt.Sprintf("files[%d].path", i), Reason: "must be inside the cluster directory"})
				}
			}
			return f
		},
		Create: func(ctx context.Context, req provider.TypedRequest[clusterIn, clusterOut]) (string, clusterOut, error) {
			return createCluster(ctx, logOf(req.Log), req.Inputs)
		},
		Read: func(ctx context.Context, req provider.TypedRequest[clusterIn, clusterOut]) (clusterIn, clusterOut, bool, error) {
			own, _, err := ownNodes(ctx, req.Inputs.Name, req.Inputs.Network)
			if err != nil {
				return req.Inputs, req.State, true, nil // cannot tell: keep it
			}
			return req.Inputs, req.State, len(own) > 0, nil
		},
		Diff: func(ctx context.Context, req provider.TypedRequest[clusterIn, clusterOut], d provider.Diff) (provider.Diff, error) {
			if d.Replaces() {
				return d, nil
			}
			d.Changes = append(d.Changes, clusterChanges(ctx, req.Inputs)...)
			return d, nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[clusterIn, clusterOut]) (clusterOut, error) {
			return updateCluster(ctx, logOf(req.Log), req)
		},
		Delete: func(ctx context.Context, req provider.TypedRequest[clusterIn, clusterOut]) error {
			if err := deleteNodes(ctx, req.Inputs.Name, req.Inputs.Network); err != nil {
				return fmt.Errorf("delete the nodes of %s: %w", req.Inputs.Name, err)
			}
			return removeKindFiles(newLayout(req.Inputs.Dir))
		},
	}
}

// --- Cilium: the CNI, installed through its chart ------------------------

type ciliumIn struct {
	Cluster string `json:"cluster" secprov:"replace"`
	Dir     string `json:"dir" secprov:"replace"`
	// Spec and Images are JSON: what the values are rendered from.
	Spec   string `json:"spec"`
	Images string `json:"images"`
	// Nodes follows the cluster's output, so a new cluster reinstalls.
	Nodes []string `json:"nodes"`
}

type ciliumOut struct {
	Installed string `json:"installed"`
}

func ciliumResourceType(install CiliumInstaller) provider.TypedResourceType[ciliumIn, ciliumOut] {
	run := func(ctx context.Context, log *slog.Logger, in ciliumIn) (ciliumOut, error) {
		kubeconfig, ci, err := ciliumInputs(ctx, in)
		if err != nil {
			return ciliumOut{}, err
		}
		if err := install(ctx, kubeconfig, ci, log); err != nil {
			return ciliumOut{}, err
		}
		return ciliumOut{Installed: time.Now().UTC().Format(time.RFC3339)}, nil
	}
	return provider.TypedResourceType[ciliumIn, ciliumOut]{
		Token: CiliumType,
		Create: func(ctx context.Context, req provider.TypedRequest[ciliumIn, ciliumOut]) (string, ciliumOut, error) {
			out, err := run(ctx, logOf(req.Log), req.Inputs)
			if err != nil {
				// The chart may be half applied: keep the id, so up retries
				// through Update (the install is an upgrade-or-install).
				return req.Inputs.Cluster, out, err
			}
			return req.Inputs.Cluster, out, nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[ciliumIn, ciliumOut]) (ciliumOut, error) {
			return run(ctx, logOf(req.Log), req.Inputs)
		},
		// The cluster it runs in is deleted with its nodes.
		Delete: func(context.Context, provider.TypedRequest[ciliumIn, ciliumOut]) error { return nil },
	}
}

// ResourceTypes are the kind provider's own resource types (the record,
// config and bootstrap are cluster's, registered once for every
// provider). install is the Cilium step; nil leaves it out.
func ResourceTypes(install CiliumInstaller) []provider.ResourceType {
	out := []provider.ResourceType{networkResourceType().ResourceType(), clusterResourceType().ResourceType()}
	if install != nil {
		out = append(out, ciliumResourceType(install).ResourceType())
	}
	return out
}
