package kind

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/paths"
)

// What the cluster resource does to and with the nodes, around the kind
// library's create.

// networkEnvMu guards KIND_EXPERIMENTAL_DOCKER_NETWORK, which kind's
// docker provider reads from the process environment when it provisions
// nodes: two creates in one process must not see each other's network.
var networkEnvMu sync.Mutex

const kindNetworkEnv = "KIND_EXPERIMENTAL_DOCKER_NETWORK"

// slogKind adapts a *slog.Logger to kind's logger: its status lines go to
// debug, its warnings to warn.
type slogKind struct{ log *slog.Logger }

func (l slogKind) Warn(m string)                      { l.log.Warn(m) }
func (l slogKind) Warnf(f string, a ...any)           { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l slogKind) Error(m string)                     { l.log.Error(m) }
func (l slogKind) Errorf(f string, a ...any)          { l.log.Error(fmt.Sprintf(f, a...)) }
func (l slogKind) V(kindlog.Level) kindlog.InfoLogger { return slogInfo(l) }

type slogInfo struct{ log *slog.Logger }

func (l slogInfo) Info(m string)            { l.log.Debug(m) }
func (l slogInfo) Infof(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l slogInfo) Enabled() bool            { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func kindProvider(log *slog.Logger) *kindcluster.Provider {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(slogKind{log}))
}

// createNodes creates the kind cluster of config on network. A failed
// create leaves no node behind: the nodes' logs are saved first, for the
// error to point at.
func createNodes(ctx context.Context, log *slog.Logger, name, network string, config []byte, l layout) error {
	networkEnvMu.Lock()
	defer networkEnvMu.Unlock()
	old, had := os.LookupEnv(kindNetworkEnv)
	if err := os.Setenv(kindNetworkEnv, network); err != nil {
		return err
	}
	defer func() {
		if had {
			os.Setenv(kindNetworkEnv, old)
		} else {
			os.Unsetenv(kindNetworkEnv)
		}
	}()
	p := kindProvider(log)
	err := p.Create(name,
		kindcluster.CreateWithRawConfig(config),
		// Never the user's ~/.kube/config: kind's own admin kubeconfig
		// goes into the cluster directory and is removed after.
		kindcluster.CreateWithKubeconfigPath(l.KindKubeconfig()),
		kindcluster.CreateWithRetain(true),
		kindcluster.CreateWithWaitForReady(0), // nodes are Ready only once Cilium runs
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("kind could not create cluster %s: %v", name, err)
	if re := kindexec.RunErrorForError(err); re != nil && len(re.Output) > 0 {
		msg += "\n" + tailLines(string(re.Output), 25)
	}
	if cerr := p.CollectLogs(name, l.CreateFailureLogs()); cerr == nil {
		msg += "; the nodes' logs are in " + l.CreateFailureLogs()
	}
	if derr := deleteNodes(context.WithoutCancel(ctx), name, network); derr != nil {
		return fmt.Errorf("%s; removing its nodes failed too: %w (run secprov down)", msg, derr)
	}
	return errors.New(msg)
}

// ownNodes lists the node containers of the kind cluster name that are
// secprov's: attached to the cluster's own network. Containers of a kind
// cluster of the same name that are not are someone else's.
func ownNodes(ctx context.Context, name, network string) (own, foreign []container, err error) {
	cs, err := clusterContainers(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cs {
		if slices.Contains(c.Networks, network) {
			own = append(own, c)
		} else {
			foreign = append(foreign, c)
		}
	}
	return own, foreign, nil
}

func foreignError(name string, foreign []container) error {
	var names []string
	for _, c := range foreign {
		names = append(names, c.Name)
	}
	return fmt.Errorf("a kind cluster named %s exists that secprov did not create (nodes %s are not on network %s): delete it (kind delete cluster --name %s) or rename the blueprint",
		name, strings.Join(names, ", "), NetworkName(name), name)
}

// deleteNodes removes secprov's node containers of the cluster with their
// volumes.
func deleteNodes(ctx context.Context, name, network string) error {
	own, _, err := ownNodes(ctx, name, network)
	if err != nil || len(own) == 0 {
		return err
	}
	args := []string{"rm", "--force", "--volumes"}
	for _, c := range own {
		args = append(args, c.Name)
	}
	_, err = docker(ctx, args...)
	if notFound(err) {
		return nil
	}
	return err
}

// startNodes starts stopped node containers.
func startNodes(ctx context.Context, cs []container) error {
	var names []string
	for _, c := range cs {
		if !c.Running() {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	_, err := docker(ctx, append([]string{"start"}, names...)...)
	return err
}

// nodeFilesScript makes what kubeadm and the kubelet keep in a node
// readable by root alone (CIS 1.1 and 4.1): the directories 0700, keys,
// kubeconfigs, static pod manifests and the kubelet's configuration 0600.
// With "check" it only lists what is not. Files mounted read-only from
// the cluster directory are already 0600 there.
const nodeFilesScript = `
mode=$1
bad=0
fix() { # want path...
  want=$1; shift
  for p in "$@"; do
    [ -e "$p" ] || continue
    [ "$(stat -c %a "$p")" = "$want" ] && continue
    # A file more private than wanted is fine.
    case "$want:$(stat -c %a "$p")" in 600:400|700:500) continue;; esac
    if [ "$mode" = check ]; then echo "$p $(stat -c %a "$p")"; bad=1; else chmod "$want" "$p"; fi
  done
}
fix 700 /etc/kubernetes /etc/kubernetes/pki /etc/kubernetes/pki/etcd /etc/kubernetes/manifests /var/lib/etcd /var/lib/kubelet/pki
fix 600 /etc/kubernetes/*.conf /etc/kubernetes/manifests/* /etc/kubernetes/pki/*.key /etc/kubernetes/pki/etcd/*.key /var/lib/kubelet/config.yaml /var/lib/kubelet/pki/*.key
exit 0
`

// hardenNodeFiles applies nodeFilesScript on every node.
func hardenNodeFiles(ctx context.Context, nodes []string) error {
	var errs []error
	for _, n := range nodes {
		if _, err := nodeSh(ctx, n, nodeFilesScript, "fix"); err != nil {
			errs = append(errs, fmt.Errorf("node %s: file modes: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// exposedNodeFiles lists node files readable beyond root, as node:path.
func exposedNodeFiles(ctx context.Context, nodes []string) []string {
	var out []string
	for _, n := range nodes {
		data, err := nodeSh(ctx, n, nodeFilesScript, "check")
		if err != nil {
			continue // a stopped node: its own change shows
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line != "" {
				out = append(out, n+":"+line)
			}
		}
	}
	return out
}

// superAdminClient is a clientset as system:masters, from the kubeconfig
// secprov issued.
func superAdminClient(l layout) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.SuperAdminKubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 15 * time.Second
	cfg.UserAgent = "secprov-kind"
	cfg.QPS, cfg.Burst = 50, 100
	return kubernetes.NewForConfig(cfg)
}

// waitAPIServer waits until the API server answers /readyz.
func waitAPIServer(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		_, last = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server did not become ready within %v: %w", timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// deleteJoinToken removes the bootstrap token the workers joined with: it
// would let anyone who reads it register a node.
func deleteJoinToken(ctx context.Context, cs kubernetes.Interface) error {
	err := cs.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, "bootstrap-token-"+joinTokenID, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// servingCSRs judges the kubelet serving certificate requests: which are
// pending and which of those secprov approves. A request is approved only
// when it is a node's own (username system:node:NAME of one of nodes, in
// system:nodes), names only that node and its addresses on the cluster
// network, and asks only for server authentication.
func servingCSRs(ctx context.Context, cs kubernetes.Interface, nodes map[string][]string) (approvable, other []certificatesv1.CertificateSigningRequest, err error) {
	list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, csr := range list.Items {
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || decided(csr) {
			continue
		}
		if servingRequestOK(csr, nodes) == nil {
			approvable = append(approvable, csr)
		} else {
			other = append(other, csr)
		}
	}
	return approvable, other, nil
}

func decided(csr certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return true
		}
	}
	return false
}

func servingRequestOK(csr certificatesv1.CertificateSigningRequest, nodes map[string][]string) error {
	node, ok := strings.CutPrefix(csr.Spec.Username, "system:node:")
	ips, known := nodes[node]
	if !ok || !known || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return fmt.Errorf("requested by %s, not one of the cluster's nodes", csr.Spec.Username)
	}
	for _, u := range csr.Spec.Usages {
		if u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment && u != certificatesv1.UsageServerAuth {
			return fmt.Errorf("usage %s", u)
		}
	}
	if !slices.Contains(csr.Spec.Usages, certificatesv1.UsageServerAuth) {
		return errors.New("no server auth usage")
	}
	b, _ := pem.Decode(csr.Spec.Request)
	if b == nil {
		return errors.New("no PEM request")
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return err
	}
	if req.Subject.CommonName != csr.Spec.Username || len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return errors.New("subject or names beyond the node")
	}
	for _, d := range req.DNSNames {
		if d != node {
			return fmt.Errorf("DNS name %s", d)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(ips, func(s string) bool { return net.ParseIP(s).Equal(ip) }) {
			return fmt.Errorf("IP %s", ip)
		}
	}
	return nil
}

// approveServing approves what servingCSRs finds approvable, waiting up
// to wait for every node to have asked.
func approveServing(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, nodes map[string][]string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	served := map[string]bool{}
	for {
		ok, _, err := servingCSRs(ctx, cs, nodes)
		if err != nil {
			return err
		}
		for _, csr := range ok {
			csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
				Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
				Reason: "SecprovNodeServingCertificate", Message: "a node of this kind cluster asks for its own names and addresses only",
				LastUpdateTime: metav1.Now(),
			})
			if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, &csr, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
				return fmt.Errorf("approve %s: %w", csr.Name, err)
			}
			served[strings.TrimPrefix(csr.Spec.Username, "system:node:")] = true
		}
		// Nodes whose certificate was approved by an earlier run count.
		if len(served) < len(nodes) {
			list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, csr := range list.Items {
				if csr.Spec.SignerName == certificatesv1.KubeletServingSignerName && len(csr.Status.Certificate) > 0 {
					served[strings.TrimPrefix(csr.Spec.Username, "system:node:")] = true
				}
			}
		}
		if len(served) >= len(nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			var missing []string
			for n := range nodes {
				if !served[n] {
					missing = append(missing, n)
				}
			}
			slices.Sort(missing)
			log.Warn("kubelet serving certificates not requested yet; the next up approves them", "nodes", strings.Join(missing, ","))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// nodeAddresses maps each running node to its address on the network.
func nodeAddresses(ctx context.Context, nodes []string, network string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, n := range nodes {
		ip, err := nodeIP(ctx, n, network)
		if err != nil {
			return nil, err
		}
		out[n] = []string{ip}
	}
	return out, nil
}

// writeFiles writes the rendered files (0600, in private directories).
func writeFiles(files []File) error {
	for _, f := range files {
		if err := paths.EnsurePrivateDir(filepath.Dir(f.Path)); err != nil {
			return err
		}
		if err := atomicfile.Write(f.Path, f.Data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// controlPlanePid finds the pid, in the control-plane node, of a
// control-plane process, with its argv.
func controlPlanePid(ctx context.Context, node, component string) (int, []string, error) {
	// comm holds at most 15 characters of the program name.
	comm := component
	if len(comm) > 15 {
		comm = comm[:15]
	}
	const script = `for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ] || continue
  printf '%s\n' "${d#/proc/}"; cat "$d/cmdline"; printf '\n'
done`
	out, err := nodeSh(ctx, node, script, comm)
	if err != nil {
		return 0, nil, err
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	pid, argv := 0, []string(nil)
	for i := 0; i+1 < len(lines); i += 2 {
		p, err := strconv.Atoi(lines[i])
		args := strings.Split(strings.TrimRight(lines[i+1], "\x00"), "\x00")
		if err != nil || len(args) == 0 || filepath.Base(args[0]) != component {
			continue
		}
		// The newest of several (one may still be shutting down).
		if p > pid {
			pid, argv = p, args
		}
	}
	if pid == 0 {
		return 0, nil, fmt.Errorf("%s is not running in node %s; run secprov up to repair the cluster", component, node)
	}
	return pid, argv, nil
}

// restartAPIServer kills the API server in the control-plane node; the
// kubelet starts it again from its static pod, reading its files anew.
func restartAPIServer(ctx context.Context, node string) error {
	pid, _, err := controlPlanePid(ctx, node, "kube-apiserver")
	if err != nil {
		return err
	}
	_, err = nodeExec(ctx, node, "kill", "-KILL", strconv.Itoa(pid))
	return err
}

// writeKubeconfigs issues secprov's kubeconfigs when they need it.
func writeKubeconfigs(l layout, name, server string) error {
	ca, caKey, err := loadCA(l)
	if err != nil {
		return err
	}
	for _, c := range credentials(l) {
		if kubeconfigProblem(c, server, ca, time.Now()) == "" {
			continue
		}
		if err := writeKubeconfig(c, name, server, ca, caKey); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", c.path, err)
		}
	}
	return nil
}

// kubeconfigProblems lists the kubeconfigs that need writing, with why.
func kubeconfigProblems(l layout, server string) []string {
	ca, _, err := loadCA(l)
	if err != nil {
		return []string{"CA: " + err.Error()}
	}
	var out []string
	for _, c := range credentials(l) {
		if p := kubeconfigProblem(c, server, ca, time.Now()); p != "" {
			out = append(out, filepath.Base(c.path)+" ("+p+")")
		}
	}
	return out
}

// removeKindFiles removes what the provider wrote into the cluster
// directory besides the shared files.
func removeKindFiles(l layout) error {
	var errs []error
	for _, p := range []string{l.AdminKubeconfig(), l.SuperAdminKubeconfig()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, cluster.RemoveAll(l.KindDir()))
	return errors.Join(errs...)
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kubeadmAdminsBinding is the binding kubeadm init makes: cluster-admin
// for the group of its admin.conf, a credential left in the control-plane
// node that secprov does not use (its own admin and super-admin
// kubeconfigs are issued from the cluster's CA). It is an unnamed
// cluster-admin grant, so secprov removes it (SP-RBAC-001).
const kubeadmAdminsBinding = "kubeadm:cluster-admins"

// removeKubeadmAdmins deletes kubeadmAdminsBinding; absent is fine.
func removeKubeadmAdmins(ctx context.Context, cs kubernetes.Interface) error {
	err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, kubeadmAdminsBinding, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove kubeadm's cluster-admin binding %s: %w", kubeadmAdminsBinding, err)
	}
	return nil
}

// kubeadmAdminsPresent reports whether kubeadmAdminsBinding exists.
func kubeadmAdminsPresent(ctx context.Context, cs kubernetes.Interface) bool {
	_, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, kubeadmAdminsBinding, metav1.GetOptions{})
	return err == nil
}

// waitRestarted waits until each node in names, started at or after
// since, is Ready again as its kubelet reported after since, and runs a
// Cilium agent started after since that is ready. Statuses from before
// the restart do not count: a stopped node stays Ready for the node
// monitor's grace period, and its agent pod's last status says ready.
func waitRestarted(ctx context.Context, cs kubernetes.Interface, names []string, since time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	since = since.Truncate(time.Second) // API times have second precision
	for {
		waiting := restartPending(ctx, cs, names, since)
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after the restart of its nodes, %s within %v: see kubectl -n kube-system get pods -o wide and kubectl describe node", strings.Join(waiting, "; "), timeout)
		case <-time.After(2 * time.Second):
		}
	}
}

// restartPending says what of waitRestarted is not there yet.
func restartPending(ctx context.Context, cs kubernetes.Interface, names []string, since time.Time) []string {
	var out []string
	pods, err := cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=cilium"})
	if err != nil {
		return []string{"cannot list the Cilium agents: " + err.Error()}
	}
	for _, n := range names {
		node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			out = append(out, fmt.Sprintf("node %s: %v", n, err))
			continue
		}
		ready := false
		for _, c := range node.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(since))
		}
		if !ready {
			out = append(out, "node "+n+" is not Ready since the restart")
		}
		agent := false
		for _, p := range pods.Items {
			if p.Spec.NodeName != n {
				continue
			}
			for _, c := range p.Status.ContainerStatuses {
				if c.Name == "cilium-agent" && c.Ready && c.State.Running != nil && !c.State.Running.StartedAt.Time.Before(since) {
					agent = true
				}
			}
		}
		if !agent {
			out = append(out, "the Cilium agent on "+n+" is not ready since the restart")
		}
	}
	return out
}

// ciliumInstalled reports whether the Cilium agent DaemonSet exists: the
// nodes can only be Ready once it does.
func ciliumInstalled(ctx context.Context, cs kubernetes.Interface) bool {
	_, err := cs.AppsV1().DaemonSets(metav1.NamespaceSystem).Get(ctx, "cilium", metav1.GetOptions{})
	return err == nil
}
