package cilium

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// The fake clientset stands in for the API server in these narrow tests of
// the readiness rules and the diagnosis; the real thing is exercised by the
// kind integration test.

func node(name string, ready bool) *corev1.Node {
	st := corev1.ConditionFalse
	reason, msg := "KubeletNotReady", "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
	if ready {
		st, reason, msg = corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: reason, Message: msg}}},
	}
}

var agentSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "cilium"}}

func agentDS(desired, ready int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: AgentDaemonSet, Namespace: Namespace, Generation: 2},
		Spec:       appsv1.DaemonSetSpec{Selector: agentSelector},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: desired, UpdatedNumberScheduled: desired,
			NumberReady: ready, NumberAvailable: ready},
	}
}

func operatorDep(ready int32) *appsv1.Deployment {
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: OperatorDeployment, Namespace: Namespace, Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"io.cilium/app": "operator"}}},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: ready, AvailableReplicas: ready},
	}
}

func agentPod(name, nodeName string, st corev1.PodStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: agentSelector.MatchLabels},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     st,
	}
}

func TestWaitReadyDone(t *testing.T) {
	cs := fake.NewClientset(node("n1", true), node("n2", true), agentDS(2, 2), operatorDep(1))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := waitReady(ctx, cs, "/k", progress{&out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "agents 2/2 ready, operator 1/1 ready, nodes 2/2 Ready") {
		t.Errorf("progress does not show the final state:\n%s", out.String())
	}
}

func TestReadinessRules(t *testing.T) {
	for _, c := range []struct {
		name string
		objs []runtime.Object
		done bool
	}{
		{"all ready", []runtime.Object{node("n1", true), agentDS(1, 1), operatorDep(1)}, true},
		{"node not ready", []runtime.Object{node("n1", true), node("n2", false), agentDS(2, 2), operatorDep(1)}, false},
		{"agent not ready", []runtime.Object{node("n1", true), agentDS(1, 0), operatorDep(1)}, false},
		{"fewer agents than nodes", []runtime.Object{node("n1", true), node("n2", true), agentDS(1, 1), operatorDep(1)}, false},
		{"operator not ready", []runtime.Object{node("n1", true), agentDS(1, 1), operatorDep(0)}, false},
		{"no operator", []runtime.Object{node("n1", true), agentDS(1, 1)}, false},
		{"no nodes", []runtime.Object{agentDS(0, 0), operatorDep(1)}, false},
		{"rollout not observed", []runtime.Object{node("n1", true), func() *appsv1.DaemonSet {
			ds := agentDS(1, 1)
			ds.Status.ObservedGeneration = 1
			return ds
		}(), operatorDep(1)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := observe(t.Context(), fake.NewClientset(c.objs...))
			if err != nil {
				t.Fatal(err)
			}
			if r.done() != c.done {
				t.Errorf("done = %v for %s, want %v", r.done(), r, c.done)
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	crashing := agentPod("cilium-abcde", "n2", corev1.PodStatus{
		Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "cilium-agent", RestartCount: 4,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}}}},
	})
	healthy := agentPod("cilium-aaaaa", "n1", corev1.PodStatus{
		Phase:             corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "cilium-agent", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
	})
	neverPull := agentPod("cilium-fffff", "n1", corev1.PodStatus{
		Phase: corev1.PodPending,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "config",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: `Container image "secprov.local/cilium-agent:x" is not present with pull policy of Never`}}}},
	})
	capsPod := agentPod("cilium-ggggg", "n1", corev1.PodStatus{
		Phase: corev1.PodPending,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "clean-cilium-state",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: "runc create failed: unable to apply caps: operation not permitted"}}}},
	})
	unschedulable := agentPod("cilium-hhhhh", "", corev1.PodStatus{
		Phase:      corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available"}},
	})
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "ev1", Namespace: Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "cilium-abcde", Namespace: Namespace},
		Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container", Count: 7,
	}
	base := []runtime.Object{node("n1", true), node("n2", false), agentDS(2, 1), operatorDep(1)}
	for _, c := range []struct {
		name string
		objs []runtime.Object
		want []string
	}{
		{"crash loop", []runtime.Object{healthy, crashing, event}, []string{
			"agents 1/2 ready", "pod kube-system/cilium-abcde on node n2 is Running", "container cilium-agent: CrashLoopBackOff",
			"event: BackOff: Back-off restarting failed container (×7)", "last 1 log line of cilium-agent:", "| fake logs",
			"next: the log lines above say why", "logs cilium-abcde -c cilium-agent --previous", "--kubeconfig /k"}},
		{"image not preloaded", []runtime.Object{neverPull}, []string{"cilium-fffff", "container config: ErrImageNeverPull", "secprov images build"}},
		{"capability", []runtime.Object{capsPod}, []string{"clean-cilium-state: CreateContainerError", "DropCapabilities"}},
		{"unschedulable", []runtime.Object{unschedulable}, []string{"is Pending: Unschedulable (0/2 nodes are available)"}},
		{"node not ready", []runtime.Object{healthy}, []string{"node n2 is not Ready: KubeletNotReady", "cni plugin not initialized", "describe node n2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset(append(append([]runtime.Object{}, base...), c.objs...)...)
			err := diagnose(t.Context(), cs, "/k", context.DeadlineExceeded)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the error does not wrap why waiting stopped: %v", err)
			}
			msg := err.Error()
			if c.name == "image not preloaded" && strings.Contains(msg, "log line") {
				t.Errorf("a container that never started has no logs to show:\n%s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("diagnosis does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestWaitReadyTimeout(t *testing.T) {
	cs := fake.NewClientset(node("n1", false), agentDS(1, 0), operatorDep(0))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := waitReady(ctx, cs, "/k", progress{&out})
	var nr *NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("want a *NotReadyError, got %v", err)
	}
	if nr.State != "agents 0/1 ready, operator 0/1 ready, nodes 0/1 Ready" || nr.Node != "n1" {
		t.Errorf("state %q node %q", nr.State, nr.Node)
	}
	if !strings.Contains(out.String(), "waiting: agents 0/1 ready") {
		t.Errorf("no progress line:\n%s", out.String())
	}
}

// An agent image the node does not have ends the wait at once, but only
// when it is the image the DaemonSet asks for now: an old pod of a rollout
// that replaces that image must not end the wait for the new one.
func TestWaitReadyGivesUpOnImageThatNeverStarts(t *testing.T) {
	const want, old = "secprov.local/cilium-agent:new", "secprov.local/cilium-agent:absent"
	pod := func(image string) *corev1.Pod {
		p := agentPod("cilium-fffff", "n1", corev1.PodStatus{
			Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "cilium-agent",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull"}}}},
		})
		p.Spec.Containers = []corev1.Container{{Name: "cilium-agent", Image: image}}
		return p
	}
	ds := agentDS(1, 0)
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Name: "cilium-agent", Image: want}}
	for _, c := range []struct {
		name     string
		image    string
		giveUpAt bool // before the deadline
	}{
		{"current image absent", want, true},
		{"old pod of a rollout", old, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset(node("n1", false), ds, operatorDep(0), pod(c.image))
			ctx, cancel := context.WithTimeout(t.Context(), 3*pollInterval)
			defer cancel()
			err := waitReady(ctx, cs, "/k", progress{&bytes.Buffer{}})
			var nr *NotReadyError
			if !errors.As(err, &nr) {
				t.Fatalf("want a *NotReadyError, got %v", err)
			}
			early := !errors.Is(err, context.DeadlineExceeded)
			if early != c.giveUpAt {
				t.Errorf("gave up early = %v, want %v: %v", early, c.giveUpAt, err)
			}
			if c.giveUpAt && (nr.Reason != "ErrImageNeverPull" || !strings.Contains(err.Error(), "can never start")) {
				t.Errorf("the error does not say why it gave up: %v", err)
			}
		})
	}
}
