package verify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// Cilium's own account of a dropped probe flow: while the clients run,
// every Cilium agent streams its datapath's drop notifications
// (cilium-dbg monitor --type drop); a flow the client saw time out is
// matched by source and destination to the drop Cilium recorded, whose
// reason ("Policy denied") goes into the flow's evidence. Best effort: a
// cluster without Cilium agents, or an agent that cannot be reached,
// leaves the evidence without it and says why.

// ciliumDrop is one drop notification.
type ciliumDrop struct {
	Node, Reason, Src, Dst string
}

// dropLine matches the summary line of a drop notification:
// "xx drop (Policy denied) flow 0x0 to endpoint 0, ifindex 9, file
// bpf_lxc.c:1234, , identity 12345->world: 10.66.1.7:41234 -> 172.18.0.1:8080 tcp SYN"
var dropLine = regexp.MustCompile(`^xx drop \(([^)]*)\).*: (\S+) -> (\S+) \S+`)

// parseDrops reads the drop notifications of one agent's monitor output.
func parseDrops(node string, out []byte) []ciliumDrop {
	var drops []ciliumDrop
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := dropLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			drops = append(drops, ciliumDrop{Node: node, Reason: m[1], Src: m[2], Dst: m[3]})
		}
	}
	return drops
}

// dropFor finds Cilium's drop of a flow from the client at ip to addr
// (host:port), or nil.
func dropFor(drops []ciliumDrop, ip, addr string) *ciliumDrop {
	for i := range drops {
		d := &drops[i]
		if d.Dst == addr && strings.HasPrefix(d.Src, ip+":") {
			return d
		}
	}
	return nil
}

// dropMonitor streams the drop notifications of every Cilium agent.
type dropMonitor struct {
	mu      sync.Mutex
	outs    map[string]*syncBuffer // by node
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    []string
	started bool
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// monitorWindow bounds how long an agent's monitor runs: the process in
// the agent ends by itself even if the stream is never closed.
const monitorWindow = 3 * time.Minute

// startDropMonitor starts a monitor in each Cilium agent and waits (a few
// seconds at most) until each listens.
func startDropMonitor(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface) *dropMonitor {
	m := &dropMonitor{outs: map[string]*syncBuffer{}}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=cilium"})
	if err != nil || len(pods.Items) == 0 {
		m.errs = append(m.errs, fmt.Sprintf("no Cilium agent pods to read drops from (%v)", err))
		return m
	}
	mctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		buf := &syncBuffer{}
		m.outs[p.Spec.NodeName] = buf
		m.wg.Add(1)
		go func(pod, node string) {
			defer m.wg.Done()
			if err := execStream(mctx, cfg, cs, "kube-system", pod, "cilium-agent",
				[]string{"timeout", fmt.Sprint(int(monitorWindow / time.Second)), "cilium-dbg", "monitor", "--type", "drop"}, buf); err != nil && mctx.Err() == nil {
				m.mu.Lock()
				m.errs = append(m.errs, fmt.Sprintf("node %s: %v", node, err))
				m.mu.Unlock()
			}
		}(p.Name, p.Spec.NodeName)
	}
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		listening := 0
		for _, b := range m.outs {
			if bytes.Contains(b.Bytes(), []byte("Listening for events")) {
				listening++
			}
		}
		if listening == len(m.outs) {
			m.started = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return m
}

// stop ends the monitors and returns the drops they saw, and what kept
// any agent from reporting.
func (m *dropMonitor) stop() ([]ciliumDrop, []string) {
	if m.cancel != nil {
		time.Sleep(500 * time.Millisecond) // the last notifications in flight
		m.cancel()
		m.wg.Wait()
	}
	var drops []ciliumDrop
	for node, b := range m.outs {
		drops = append(drops, parseDrops(node, b.Bytes())...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return drops, m.errs
}

// execStream runs command in a container and copies its output to w
// until it ends or ctx is done.
func execStream(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ns, pod, container string, command []string, w *syncBuffer) error {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool { return true })
	if err != nil {
		return err
	}
	return exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: w, Stderr: w})
}

// attachDrops stops the monitors and gives each flow a client saw dropped
// Cilium's account of it.
func attachDrops(m *netMatrix, mon *dropMonitor) {
	drops, errs := mon.stop()
	why := "no drop notification for this flow"
	switch {
	case len(errs) > 0:
		why = "drop notifications unavailable: " + strings.Join(errs, "; ")
	case !mon.started:
		why = "the agents' drop monitors did not start in time"
	}
	for _, c := range m.Clients {
		for _, f := range c.Flows {
			if f.Kind == "dns" || (f.Verdict != "timeout" && f.Verdict != "unreachable") {
				continue
			}
			if d := dropFor(drops, c.IP, f.Addr); c.IP != "" && d != nil {
				f.Cilium = fmt.Sprintf("drop (%s) on node %s", d.Reason, d.Node)
			} else {
				f.Cilium = why
			}
		}
	}
}
