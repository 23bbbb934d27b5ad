package cilium

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Names of the workloads the chart creates.
const (
	AgentDaemonSet     = "cilium"
	OperatorDeployment = "cilium-operator"
	agentContainer     = "cilium-agent"
)

// logLines is how many of the failing container's last log lines an error
// carries.
const logLines = 20

// pollInterval between readiness checks.
const pollInterval = 2 * time.Second

// NotReadyError says why Cilium or the nodes did not become ready: the
// overall state, the pod most likely at fault with its last log lines, and
// what to do next.
type NotReadyError struct {
	// State summarises readiness when waiting stopped, e.g. "agents 1/2
	// ready, operator 1/1 ready, nodes 1/2 Ready".
	State string
	// Pod is namespace/name of the failing pod ("" when no pod is at fault,
	// e.g. a node is NotReady for another reason); Node is where it runs,
	// or the NotReady node.
	Pod, Node string
	// Container is the failing container of Pod, if one is.
	Container string
	// Phase is the pod's phase; Reason and Message say what is wrong (a
	// container's waiting or terminated reason, the scheduler's reason, a
	// node condition's reason).
	Phase, Reason, Message string
	// Logs are the container's last log lines (of its previous run when it
	// is restarting).
	Logs []string
	// Events are the pod's latest warning events.
	Events []string
	// Next says what to do.
	Next string
	// Err is why waiting stopped (the deadline, or a cancelled context).
	Err error
}

func (e *NotReadyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cilium is not ready (%s): %v", e.State, e.Err)
	switch {
	case e.Pod != "":
		fmt.Fprintf(&b, "\npod %s", e.Pod)
		if e.Node != "" {
			fmt.Fprintf(&b, " on node %s", e.Node)
		}
		fmt.Fprintf(&b, " is %s", e.Phase)
		if e.Container != "" {
			fmt.Fprintf(&b, "; container %s", e.Container)
		}
	case e.Node != "":
		fmt.Fprintf(&b, "\nnode %s is not Ready", e.Node)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (%s)", e.Message)
	}
	for _, ev := range e.Events {
		fmt.Fprintf(&b, "\n  event: %s", ev)
	}
	if len(e.Logs) > 0 {
		lines := "lines"
		if len(e.Logs) == 1 {
			lines = "line"
		}
		fmt.Fprintf(&b, "\nlast %d log %s of %s:", len(e.Logs), lines, e.Container)
		for _, l := range e.Logs {
			fmt.Fprintf(&b, "\n  | %s", l)
		}
	}
	if e.Next != "" {
		fmt.Fprintf(&b, "\nnext: %s", e.Next)
	}
	return b.String()
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// readiness is the state waitReady watches.
type readiness struct {
	agents, agentsWanted     int32
	operator, operatorWanted int32
	nodesReady, nodes        int
	// missing names a workload that does not exist (yet).
	missing string
}

func (r readiness) done() bool {
	return r.missing == "" && r.nodes > 0 && r.nodesReady == r.nodes &&
		r.agentsWanted >= int32(r.nodes) && r.agents == r.agentsWanted &&
		r.operatorWanted > 0 && r.operator == r.operatorWanted
}

func (r readiness) String() string {
	if r.missing != "" {
		return r.missing + " missing"
	}
	return fmt.Sprintf("agents %d/%d ready, operator %d/%d ready, nodes %d/%d Ready",
		r.agents, max(r.agentsWanted, int32(r.nodes)), r.operator, r.operatorWanted, r.nodesReady, r.nodes)
}

// observe reads the current readiness. A rollout in progress counts only
// pods of the newest revision as ready.
func observe(ctx context.Context, cs kubernetes.Interface) (readiness, error) {
	var r readiness
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return r, err
	}
	r.nodes = len(nodes.Items)
	for _, n := range nodes.Items {
		if nodeReady(&n) {
			r.nodesReady++
		}
	}
	ds, err := cs.AppsV1().DaemonSets(Namespace).Get(ctx, AgentDaemonSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.missing = "DaemonSet " + Namespace + "/" + AgentDaemonSet
	case err != nil:
		return r, err
	default:
		r.agentsWanted = ds.Status.DesiredNumberScheduled
		if ds.Status.ObservedGeneration >= ds.Generation && ds.Status.UpdatedNumberScheduled == ds.Status.DesiredNumberScheduled {
			r.agents = min(ds.Status.NumberReady, ds.Status.NumberAvailable)
		}
	}
	dep, err := cs.AppsV1().Deployments(Namespace).Get(ctx, OperatorDeployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if r.missing == "" {
			r.missing = "Deployment " + Namespace + "/" + OperatorDeployment
		}
	case err != nil:
		return r, err
	default:
		r.operatorWanted = 1
		if dep.Spec.Replicas != nil {
			r.operatorWanted = *dep.Spec.Replicas
		}
		st := dep.Status
		if st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas == r.operatorWanted && st.Replicas == r.operatorWanted {
			r.operator = min(st.ReadyReplicas, st.AvailableReplicas)
		}
	}
	return r, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitReady polls until the agents, the operator and every node are ready,
// printing a line whenever the state changes, or until ctx ends; then it
// returns a *NotReadyError with a diagnosis.
func waitReady(ctx context.Context, cs kubernetes.Interface, kubeconfig string, p progress) error {
	start := time.Now()
	var last string
	var lastErr error
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		r, err := observe(ctx, cs)
		if err == nil {
			if r.done() {
				p.printf("• cilium: %s (%s)\n", r, time.Since(start).Round(time.Second))
				return nil
			}
			if s := r.String(); s != last {
				p.printf("• cilium: waiting: %s (%s)\n", s, time.Since(start).Round(time.Second))
				last = s
			}
			// An image that can never start ends the wait at once: the
			// rest of the timeout would change nothing.
			if pod := hopeless(workloads(ctx, cs)); pod != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
				defer cancel()
				return diagnose(dctx, cs, kubeconfig, fmt.Errorf("gave up after %s: pod %s/%s can never start with the image its workload names", time.Since(start).Round(time.Second), Namespace, pod.Name))
			}
		} else if ctx.Err() == nil {
			// The API server may be restarting; keep the error for the report.
			lastErr = err
		}
		select {
		case <-ctx.Done():
			// Diagnose with a fresh deadline: ctx is spent.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			defer cancel()
			cause := fmt.Errorf("gave up after waiting %s: %w", time.Since(start).Round(time.Second), ctx.Err())
			if lastErr != nil && last == "" {
				cause = fmt.Errorf("%w; the API server did not answer: %v", cause, lastErr)
			}
			return diagnose(dctx, cs, kubeconfig, cause)
		case <-t.C:
		}
	}
}

// diagnose finds what keeps Cilium or the nodes from being ready.
func diagnose(ctx context.Context, cs kubernetes.Interface, kubeconfig string, cause error) *NotReadyError {
	e := &NotReadyError{Err: cause}
	r, err := observe(ctx, cs)
	if err != nil {
		e.State = "unknown"
		e.Message = err.Error()
		e.Next = fmt.Sprintf("the API server does not answer: check that the control-plane node runs (docker ps) and that %s reaches it, then run secprov up again", kubeconfig)
		return e
	}
	e.State = r.String()
	kubectl := fmt.Sprintf("kubectl --kubeconfig %s -n %s", kubeconfig, Namespace)

	var pods []corev1.Pod
	for _, w := range workloads(ctx, cs) {
		pods = append(pods, w.pods...)
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })

	// The first pod with a concrete reason is the likeliest cause; a pod
	// that runs but is not ready comes after those.
	var best *podProblem
	for i := range pods {
		if pr := problemOf(&pods[i]); pr != nil && (best == nil || pr.rank < best.rank) {
			best = pr
		}
	}
	if best != nil {
		pod := best.pod
		e.Pod, e.Node, e.Phase = Namespace+"/"+pod.Name, pod.Spec.NodeName, string(pod.Status.Phase)
		e.Container, e.Reason, e.Message = best.container, best.reason, best.message
		e.Events = warningEvents(ctx, cs, pod)
		if best.container != "" && best.started {
			e.Logs = tailLogs(ctx, cs, pod, best.container, best.previous)
		}
		e.Next = nextStep(best, kubectl)
		return e
	}
	switch {
	case r.missing != "":
		e.Reason = r.missing
		e.Next = "the Helm release exists but its workload does not: run secprov up again, which upgrades the release and recreates it"
		return e
	case r.agentsWanted < int32(r.nodes):
		e.Reason = fmt.Sprintf("the agent DaemonSet schedules %d pods for %d nodes", r.agentsWanted, r.nodes)
		e.Next = fmt.Sprintf("%s describe daemonset %s shows why some nodes get no agent", kubectl, AgentDaemonSet)
		return e
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, n := range nodes.Items {
			if nodeReady(&n) {
				continue
			}
			e.Node = n.Name
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					e.Reason, e.Message = c.Reason, c.Message
				}
			}
			e.Next = fmt.Sprintf("kubectl --kubeconfig %s describe node %s; a node becomes Ready only once the Cilium agent on it is ready and the kubelet reports in — if the node container stopped, secprov up restarts it", kubeconfig, n.Name)
			return e
		}
	}
	e.Next = fmt.Sprintf("nothing is failing yet: the cluster may only be slow; run secprov up again (it waits again), or look with %s get pods", kubectl)
	return e
}

// workload is the agent DaemonSet or the operator Deployment: its pod
// template and its pods.
type workload struct {
	template corev1.PodTemplateSpec
	pods     []corev1.Pod
}

// workloads reads the agent and operator workloads that exist, with their
// pods.
func workloads(ctx context.Context, cs kubernetes.Interface) []workload {
	var out []workload
	add := func(ls *metav1.LabelSelector, tmpl corev1.PodTemplateSpec) {
		if ls == nil {
			return
		}
		list, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(ls)})
		if err == nil {
			out = append(out, workload{template: tmpl, pods: list.Items})
		}
	}
	if ds, err := cs.AppsV1().DaemonSets(Namespace).Get(ctx, AgentDaemonSet, metav1.GetOptions{}); err == nil {
		add(ds.Spec.Selector, ds.Spec.Template)
	}
	if dep, err := cs.AppsV1().Deployments(Namespace).Get(ctx, OperatorDeployment, metav1.GetOptions{}); err == nil {
		add(dep.Spec.Selector, dep.Spec.Template)
	}
	return out
}

// neverStarts are waiting reasons no amount of waiting cures: the image is
// not on the node and the pull policy forbids pulling, or its name is
// invalid.
var neverStarts = map[string]bool{"ErrImageNeverPull": true, "InvalidImageName": true}

// hopeless finds a pod whose container waits for a reason in neverStarts
// with the image the workload's current template asks for (an old pod of a
// rollout that replaces a broken image does not count), or returns nil.
func hopeless(ws []workload) *corev1.Pod {
	for _, w := range ws {
		want := map[string]string{}
		for _, c := range append(slices.Clone(w.template.Spec.InitContainers), w.template.Spec.Containers...) {
			want[c.Name] = c.Image
		}
		for i := range w.pods {
			p := &w.pods[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			for _, s := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
				if s.State.Waiting != nil && neverStarts[s.State.Waiting.Reason] && podImage(p, s.Name) == want[s.Name] {
					return p
				}
			}
		}
	}
	return nil
}

// podImage is the image pod's spec names for container name.
func podImage(p *corev1.Pod, name string) string {
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if c.Name == name {
			return c.Image
		}
	}
	return ""
}

// podProblem is what is wrong with one pod.
type podProblem struct {
	pod       *corev1.Pod
	container string
	reason    string
	message   string
	previous  bool // the logs worth reading are of the previous run
	started   bool // the container ran at least once, so it has logs
	rank      int  // lower is more telling
}

// problemOf says what keeps pod from being ready, or nil if it is ready.
func problemOf(pod *corev1.Pod) *podProblem {
	if pod.DeletionTimestamp != nil {
		return nil // an old pod on its way out during a rollout
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return &podProblem{pod: pod, reason: c.Reason, message: c.Message, rank: 1}
		}
	}
	check := func(statuses []corev1.ContainerStatus, init bool) *podProblem {
		for _, s := range statuses {
			pr := check1(pod, s, init)
			if pr != nil {
				pr.started = s.RestartCount > 0 || s.State.Running != nil || s.State.Terminated != nil
				return pr
			}
		}
		return nil
	}
	if pr := check(pod.Status.InitContainerStatuses, true); pr != nil {
		return pr
	}
	if pr := check(pod.Status.ContainerStatuses, false); pr != nil {
		return pr
	}
	if pod.Status.Phase != corev1.PodRunning {
		return &podProblem{pod: pod, reason: cmp.Or(pod.Status.Reason, "not running"), message: pod.Status.Message, rank: 4}
	}
	return nil
}

// check1 says what is wrong with one container of pod, or nil.
func check1(pod *corev1.Pod, s corev1.ContainerStatus, init bool) *podProblem {
	switch {
	case s.State.Waiting != nil && s.State.Waiting.Reason != "" &&
		s.State.Waiting.Reason != "PodInitializing" && s.State.Waiting.Reason != "ContainerCreating":
		return &podProblem{pod: pod, container: s.Name, reason: s.State.Waiting.Reason, message: s.State.Waiting.Message,
			previous: s.RestartCount > 0, rank: 0}
	case s.State.Terminated != nil && s.State.Terminated.ExitCode != 0:
		return &podProblem{pod: pod, container: s.Name, reason: s.State.Terminated.Reason,
			message: fmt.Sprintf("exit code %d %s", s.State.Terminated.ExitCode, strings.TrimSpace(s.State.Terminated.Message)), rank: 0}
	case init && s.State.Terminated == nil:
		return &podProblem{pod: pod, container: s.Name, reason: "init container not finished", rank: 2}
	case !init && !s.Ready:
		reason := "running, not ready"
		if s.State.Running == nil {
			reason = "not started"
		}
		return &podProblem{pod: pod, container: s.Name, reason: reason, rank: 3}
	}
	return nil
}

// nextStep says what to do about pr, in commands a person can run.
func nextStep(pr *podProblem, kubectl string) string {
	pod := pr.pod.Name
	retry := "then run secprov up again: the install resumes where it stopped"
	switch pr.reason {
	case "ErrImageNeverPull":
		return "the image is not in the node: the offline node image preloads the Cilium images, so rebuild it with secprov images build and recreate the cluster (secprov down, secprov up)"
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
		return "the node cannot pull the image: check the node's access to the registry, or use the offline image set (--images offline), " + retry
	case "CrashLoopBackOff", "Error", "OOMKilled":
		return fmt.Sprintf("the log lines above say why it exits; more with %s logs %s -c %s --previous; %s", kubectl, pod, pr.container, retry)
	case "CreateContainerError", "RunContainerError", "StartError", "CreateContainerConfigError":
		if strings.Contains(pr.message, "caps") || strings.Contains(pr.message, "operation not permitted") {
			return "the node's container runtime cannot grant a capability the container asks for: pass it in Inputs.DropCapabilities (the kind provider reads them from the node's capability bounding set), " + retry
		}
		return fmt.Sprintf("the runtime cannot start the container: %s describe pod %s; %s", kubectl, pod, retry)
	case "Unschedulable":
		return fmt.Sprintf("the scheduler cannot place the pod (see its message); %s get nodes -o wide shows the nodes and their taints; %s", kubectl, retry)
	}
	if pr.container == agentContainer {
		return fmt.Sprintf("the agent runs but is not healthy: %s exec %s -c %s -- cilium-dbg status --verbose shows which part fails; %s", kubectl, pod, agentContainer, retry)
	}
	return fmt.Sprintf("%s describe pod %s; %s", kubectl, pod, retry)
}

// warningEvents are the pod's latest warning events, newest last.
func warningEvents(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) []string {
	list, err := cs.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": pod.Name, "type": corev1.EventTypeWarning}.String(),
	})
	if err != nil {
		return nil
	}
	evs := list.Items
	slices.SortFunc(evs, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	if len(evs) > 3 {
		evs = evs[len(evs)-3:]
	}
	var out []string
	for _, ev := range evs {
		if ev.InvolvedObject.Name != pod.Name || ev.Type != corev1.EventTypeWarning {
			continue // a client that ignores field selectors (a fake)
		}
		s := fmt.Sprintf("%s: %s", ev.Reason, strings.TrimSpace(ev.Message))
		if ev.Count > 1 {
			s += fmt.Sprintf(" (×%d)", ev.Count)
		}
		out = append(out, s)
	}
	return out
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	return e.EventTime.Time
}

// tailLogs returns the container's last logLines lines, or one line
// saying why there are none.
func tailLogs(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, container string, previous bool) []string {
	n := int64(logLines)
	get := func(prev bool) ([]byte, error) {
		return cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container, TailLines: &n, Previous: prev}).DoRaw(ctx)
	}
	data, err := get(previous)
	if err != nil && previous {
		data, err = get(false)
	}
	if err != nil {
		var status apierrors.APIStatus
		msg := err.Error()
		if errors.As(err, &status) {
			msg = status.Status().Message
		}
		return []string{"(no logs: " + msg + ")"}
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if len(out) > logLines {
		out = out[len(out)-logLines:]
	}
	return out
}
