package verify

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// The network probes send real traffic between pods to see what the CNI
// enforces (SP-NET-004) and whether pods reach another environment
// (SP-ISO-006). Both checks share one run per target: probe servers in
// the namespaces the allow rules name and in a scratch namespace without
// policy, then one client pod per source that tries every flow of that
// source at once and prints what it observed.
//
// A verdict is only meaningful next to a control: the scratch namespace
// has no policy, so its flows show that the servers, the listener outside
// the cluster and the kubelet port answer when nothing filters. And a
// gate comes first: a flow default deny must drop. If it goes through,
// policy is not enforced at all and every allow result is meaningless;
// the report says so instead of listing them as passes.

const (
	// netProbeValue is ProbeLabel's value on the network probes' pods and
	// scratch namespace, which a later run sweeps if a crash left them.
	netProbeValue = "network"
	// probeServePort is what every probe server listens on besides the
	// ports of the allow rules it stands for.
	probeServePort = 18080
	// probeUnlistedPort is a port no allow rule lists (the next free one
	// above it when a rule does).
	probeUnlistedPort = 18081
	// probeDialTimeout bounds one connection attempt: what a drop costs.
	probeDialTimeout = 2 * time.Second
	// probeUser runs the probe pods (the probe image's user).
	probeUser = 65532
	// netProbeTimeout is the network checks' own timeout: pods start.
	netProbeTimeout = 2 * time.Minute
	// metadataAddr is the cloud metadata service's address.
	metadataAddr = "169.254.169.254:80"
)

// Flow roles.
const (
	roleCheck   = "check"   // judged against its expectation
	roleControl = "control" // must be open, or the flows it backs prove nothing
	roleGate    = "gate"    // must be dropped, or no allow result means anything
)

// Expectations.
const (
	wantOpen     = "open"
	wantDropped  = "dropped"
	wantResolved = "resolved"
)

// probeFlow is one connection or lookup of the matrix.
type probeFlow struct {
	ID      string
	Control blueprints.ControlID
	Role    string
	What    string // "storefront → payments:8443 (allow rule 1)"
	Want    string
	Kind    string // tcp | dns
	// Server and Port name a probe server's port; Addr a fixed address;
	// Name a DNS name.
	Server *probeServer
	Port   int
	Addr   string
	Name   string
	// BackedBy is the control flow whose success makes this one's drop
	// meaningful ("" when none is needed).
	BackedBy string

	// Observed by the client.
	Verdict, Detail string
	Millis          int64
	// Cilium is the datapath's own account of a dropped flow ("drop
	// (Policy denied) on node N"), or why there is none.
	Cilium string
}

// probeServer is a pod answering on ports.
type probeServer struct {
	Namespace string
	Labels    map[string]string
	Ports     []int
	Pod       string
	IP        string
}

// probeClient is a pod trying flows from one namespace with one label set.
type probeClient struct {
	Namespace string
	Labels    map[string]string
	Flows     []*probeFlow
	Pod       string
	IP        string
}

// netMatrix is one run's plan and results.
type netMatrix struct {
	Scratch string
	Servers []*probeServer
	Clients []*probeClient
	// NotProbed says why parts of the blueprint were not probed.
	NotProbed []string
	Took      time.Duration
}

func (m *netMatrix) flows() []*probeFlow {
	var out []*probeFlow
	for _, c := range m.Clients {
		out = append(out, c.Flows...)
	}
	return out
}

func (m *netMatrix) flow(id string) *probeFlow {
	for _, f := range m.flows() {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// netProbeChecks are SP-NET-004 and SP-ISO-006.
func netProbeChecks() []Check {
	return []Check{
		{ID: blueprints.NetworkEnforced, Run: checkNetworkEnforced, Needs: needs(API, Nodes, NetworkProbes), Timeout: netProbeTimeout},
		{ID: blueprints.IsolationPodReach, Run: checkPodIsolation, Needs: needs(API, Nodes, NetworkProbes), Timeout: netProbeTimeout},
	}
}

// netRuns shares one probe run between the two checks of a verify run.
var netRuns sync.Map // Target → *netRun

type netRun struct {
	once sync.Once
	m    *netMatrix
	err  error
}

func sharedNetRun(ctx context.Context, t Target) (*netMatrix, error) {
	v, _ := netRuns.LoadOrStore(t, &netRun{})
	run := v.(*netRun)
	run.once.Do(func() { run.m, run.err = runNetProbes(ctx, t) })
	return run.m, run.err
}

// checkNetworkEnforced (SP-NET-004): the gate, then every policy flow.
func checkNetworkEnforced(ctx context.Context, t Target) Outcome {
	if !t.Info().Spec.Network.DefaultDenyEnabled() {
		return Skip("spec.network.defaultDeny is false, so there is no default deny to enforce (the default-deny control reports that)")
	}
	m, err := sharedNetRun(ctx, t)
	if o, end := probeRunEnd(err); end {
		return o
	}
	return judgeFlows(m, blueprints.NetworkEnforced, fmt.Sprintf(
		"live traffic: default deny drops what it must, each allow rule's flow gets through and nothing wider does (%d flows in %s)",
		countFlows(m, blueprints.NetworkEnforced), m.Took.Round(100*time.Millisecond)))
}

// checkPodIsolation (SP-ISO-006): pods without any policy still cannot
// open connections to another environment's nodes.
func checkPodIsolation(ctx context.Context, t Target) Outcome {
	peers, err := t.PeerNodes(ctx)
	if err != nil {
		return Errorf("peer nodes: %v", err)
	}
	if len(peers) == 0 {
		return Skip("no cluster of another environment is known here, so there is nothing a pod must not reach")
	}
	m, err := sharedNetRun(ctx, t)
	if o, end := probeRunEnd(err); end {
		return o
	}
	return judgeFlows(m, blueprints.IsolationPodReach, fmt.Sprintf(
		"a pod with no network policy cannot connect to the nodes of %s (%d flows)", peerClusters(peers), countFlows(m, blueprints.IsolationPodReach)))
}

func probeRunEnd(err error) (Outcome, bool) {
	switch {
	case errors.Is(err, ErrNoProbeImage):
		return Skip(err.Error()), true
	case err != nil:
		return Errorf("network probes: %v", err), true
	}
	return Outcome{}, false
}

func countFlows(m *netMatrix, control blueprints.ControlID) int {
	n := 0
	for _, f := range m.flows() {
		if f.Control == control {
			n++
		}
	}
	return n
}

func peerClusters(peers []Node) string {
	var names []string
	for _, p := range peers {
		if !slices.Contains(names, p.Cluster) {
			names = append(names, p.Cluster)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// judgeFlows turns the observed flows of control into an outcome. A gate
// that went through fails, and then the allow results are reported as
// meaningless rather than as passes; a control flow that did not open
// makes the flows it backs unprovable (an error, not a pass).
func judgeFlows(m *netMatrix, control blueprints.ControlID, pass string) Outcome {
	var r findings
	flows := m.flows()
	gateOpen := false
	for _, f := range flows {
		if f.Role == roleGate && f.Verdict == "open" {
			gateOpen = true
		}
	}
	// The gate leads the report, then the controls, then the rest.
	rank := map[string]int{roleGate: 0, roleControl: 1, roleCheck: 2}
	sort.SliceStable(flows, func(i, j int) bool { return rank[flows[i].Role] < rank[flows[j].Role] })
	for _, f := range flows {
		if f.Control != control {
			continue
		}
		ev := Evidence{Object: "flow " + f.What, Field: f.Role, Want: f.Want, Got: observed(f)}
		if c := m.flow(f.BackedBy); c != nil && c.Verdict != "open" {
			// What backs it failed and says so itself.
			ev.Got += fmt.Sprintf(" (not judged: %s did not open)", c.What)
			r.bad = append(r.bad, ev)
			continue
		}
		good := met(f)
		switch {
		case f.Role == roleControl && !good:
			r.bad = append(r.bad, ev)
			r.errorf("control flow %s did not open (%s): the probe cannot tell policy from a broken network", f.What, observed(f))
		case f.Role == roleGate && !good:
			r.fail(ev, fmt.Sprintf("default deny is not enforced: %s went through (%s); the allow results of this run mean nothing", f.What, observed(f)))
		case gateOpen && f.Want == wantOpen:
			ev.Got += " (meaningless: the gate flow went through)"
			r.bad = append(r.bad, ev)
		case !good:
			r.fail(ev, fmt.Sprintf("%s: want %s, observed %s", f.What, f.Want, observed(f)))
		default:
			r.ok(ev)
		}
	}
	if control == blueprints.NetworkEnforced {
		for _, n := range m.NotProbed {
			r.ok(Evidence{Object: "not probed", Got: n})
		}
	}
	return r.outcome(pass)
}

// met reports whether a flow's verdict is what it wants. A drop is a
// timeout or an unreachable destination; a reset means something
// answered, so the packet was not dropped.
func met(f *probeFlow) bool {
	switch f.Want {
	case wantOpen:
		return f.Verdict == "open"
	case wantResolved:
		return f.Verdict == "resolved"
	default:
		return f.Verdict == "timeout" || f.Verdict == "unreachable"
	}
}

func observed(f *probeFlow) string {
	if f.Verdict == "" {
		return "no result"
	}
	s := f.Verdict
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	s = fmt.Sprintf("%s (%d ms)", s, f.Millis)
	if f.Cilium != "" {
		s += "; Cilium: " + f.Cilium
	}
	return s
}

// planNetProbes builds the matrix for spec. nodes are the cluster's node
// addresses, peers the other environments' nodes, outside the listener
// outside the cluster ("" when there is none).
func planNetProbes(spec v1alpha1.Spec, scratch string, nodes, peers []Node, outside string) *netMatrix {
	m := &netMatrix{Scratch: scratch}
	workload := hardening.WorkloadNamespaces(spec)
	w0 := workload[0]
	server := func(ns string, labels map[string]string) *probeServer {
		for _, s := range m.Servers {
			if s.Namespace == ns && maps.Equal(s.Labels, labels) {
				return s
			}
		}
		s := &probeServer{Namespace: ns, Labels: maps.Clone(labels), Ports: []int{probeServePort}}
		m.Servers = append(m.Servers, s)
		return s
	}
	client := func(ns string, labels map[string]string) *probeClient {
		for _, c := range m.Clients {
			if c.Namespace == ns && maps.Equal(c.Labels, labels) {
				return c
			}
		}
		c := &probeClient{Namespace: ns, Labels: maps.Clone(labels)}
		m.Clients = append(m.Clients, c)
		return c
	}
	n := 0
	add := func(c *probeClient, f *probeFlow) *probeFlow {
		n++
		f.ID = "f" + strconv.Itoa(n)
		if f.Kind == "" {
			f.Kind = "tcp"
		}
		if f.Control == "" {
			f.Control = blueprints.NetworkEnforced
		}
		if f.Role == "" {
			f.Role = roleCheck
		}
		c.Flows = append(c.Flows, f)
		return f
	}
	scratchSrv := server(scratch, nil)
	free := client(scratch, nil)
	denied := client(w0, nil)

	// Controls from the scratch namespace, where nothing filters.
	base := add(free, &probeFlow{Role: roleControl, What: fmt.Sprintf("%s → %s probe server :%d (no policy)", scratch, scratch, probeServePort),
		Want: wantOpen, Server: scratchSrv, Port: probeServePort})
	// The gate: default deny in a workload namespace drops egress.
	add(denied, &probeFlow{Role: roleGate, What: fmt.Sprintf("%s → %s probe server :%d (default deny)", w0, scratch, probeServePort),
		Want: wantDropped, Server: scratchSrv, Port: probeServePort, BackedBy: base.ID})
	add(denied, &probeFlow{Kind: "dns", What: w0 + " → cluster DNS (kubernetes.default.svc)", Want: wantResolved, Name: "kubernetes.default.svc"})
	if outside != "" {
		ctl := add(free, &probeFlow{Role: roleControl, What: scratch + " → outside the cluster " + outside + " (no policy)", Want: wantOpen, Addr: outside})
		add(denied, &probeFlow{What: w0 + " → outside the cluster " + outside, Want: wantDropped, Addr: outside, BackedBy: ctl.ID})
	} else {
		m.NotProbed = append(m.NotProbed, "egress to outside the cluster: no address outside the cluster to listen on")
	}
	var kubelet *probeFlow
	for _, nd := range nodes {
		for _, a := range nd.Addresses {
			if !a.Is4() {
				continue
			}
			addr := netip.AddrPortFrom(a, 10250).String()
			if kubelet == nil {
				kubelet = add(free, &probeFlow{Role: roleControl, What: scratch + " → node " + nd.Name + " kubelet " + addr + " (no policy)", Want: wantOpen, Addr: addr})
			}
			add(denied, &probeFlow{What: w0 + " → node " + nd.Name + " kubelet " + addr, Want: wantDropped, Addr: addr, BackedBy: kubelet.ID})
			break
		}
	}
	add(denied, &probeFlow{What: w0 + " → cloud metadata " + metadataAddr, Want: wantDropped, Addr: metadataAddr})

	// Each allow rule: its flow gets through, the same flow to a port it
	// does not list or from a namespace it does not name does not.
	for i, rule := range spec.Network.Allow {
		label := fmt.Sprintf("allow rule %d", i+1)
		dst := rule.To.Namespace
		if dst == "*" {
			dst = w0
		}
		switch {
		case rule.From.CIDR != "":
			m.NotProbed = append(m.NotProbed, fmt.Sprintf("%s (from %s): a CIDR source has no pod to send from", label, rule.From.CIDR))
			continue
		case rule.To.CIDR != "":
			m.NotProbed = append(m.NotProbed, fmt.Sprintf("%s (to %s): an address outside the cluster that verify cannot serve from; default-denied egress to this machine is probed above", label, rule.To.CIDR))
			continue
		case !slices.Contains(workload, dst):
			m.NotProbed = append(m.NotProbed, fmt.Sprintf("%s: namespace %s is not managed by secprov", label, dst))
			continue
		}
		src := rule.From.Namespace
		if src == "*" {
			src = w0
		}
		srv := server(dst, rule.To.PodSelector)
		ports := rule.To.Ports
		if rule.To.Protocol != "" && rule.To.Protocol != "TCP" {
			m.NotProbed = append(m.NotProbed, fmt.Sprintf("%s: %s is not probed (TCP only)", label, rule.To.Protocol))
			continue
		}
		if len(ports) == 0 {
			ports = []int{probeServePort}
		}
		for _, p := range ports {
			if !slices.Contains(srv.Ports, p) {
				srv.Ports = append(srv.Ports, p)
			}
		}
		from := client(src, rule.From.PodSelector)
		var opened *probeFlow
		for _, p := range ports {
			f := add(from, &probeFlow{What: fmt.Sprintf("%s → %s:%d (%s)", describeEnd(src, rule.From.PodSelector), describeEnd(dst, rule.To.PodSelector), p, label),
				Want: wantOpen, Server: srv, Port: p})
			if opened == nil {
				opened = f
			}
		}
		if len(rule.To.Ports) > 0 {
			up := unlistedPort(spec)
			if !slices.Contains(srv.Ports, up) {
				srv.Ports = append(srv.Ports, up)
			}
			// The allowed flow on a listed port shows the server is up.
			add(from, &probeFlow{What: fmt.Sprintf("%s → %s:%d, a port %s does not list", describeEnd(src, rule.From.PodSelector), describeEnd(dst, rule.To.PodSelector), up, label),
				Want: wantDropped, Server: srv, Port: up, BackedBy: opened.ID})
		}
		if rule.From.Namespace != "*" {
			add(free, &probeFlow{What: fmt.Sprintf("%s → %s:%d, a namespace %s does not name", scratch, describeEnd(dst, rule.To.PodSelector), ports[0], label),
				Want: wantDropped, Server: srv, Port: ports[0], BackedBy: opened.ID})
		}
	}

	// Another environment's nodes, from the pod without policy: only the
	// networks keep it out.
	for _, p := range peers {
		for _, a := range p.Addresses {
			if !a.Is4() {
				continue
			}
			for _, port := range []int{6443, 10250} {
				addr := netip.AddrPortFrom(a, uint16(port)).String()
				f := &probeFlow{Control: blueprints.IsolationPodReach, What: fmt.Sprintf("%s → %s node %s %s", scratch, p.Environment, p.Name, addr), Want: wantDropped, Addr: addr}
				if kubelet != nil {
					f.BackedBy = kubelet.ID
				}
				add(free, f)
			}
		}
	}
	return m
}

// unlistedPort is a port no allow rule of spec lists.
func unlistedPort(spec v1alpha1.Spec) int {
	p := probeUnlistedPort
	for {
		used := p == probeServePort
		for _, r := range spec.Network.Allow {
			used = used || slices.Contains(r.To.Ports, p)
		}
		if !used {
			return p
		}
		p++
	}
}

func describeEnd(ns string, labels map[string]string) string {
	if len(labels) == 0 {
		return ns
	}
	return ns + " " + metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels})
}

// runNetProbes plans the matrix for t, runs it and cleans up.
func runNetProbes(ctx context.Context, t Target) (*netMatrix, error) {
	start := time.Now()
	image, err := t.ProbeImage(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := t.Client()
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	peers, err := t.PeerNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer nodes: %w", err)
	}
	info := t.Info()
	sweepNetProbes(ctx, cs, hardening.WorkloadNamespaces(info.Spec))

	outside, stopListener := outsideListener(ctx, t)
	defer stopListener()

	suffix := randSuffix()
	scratch := "secprov-netprobe-" + suffix
	m := planNetProbes(info.Spec, scratch, nodes, peers, outside)
	labels := map[string]string{ProbeLabel: netProbeValue, hardening.ManagedByLabel: hardening.ManagedByValue}
	for k, v := range hardening.PodSecurityLabels(info.Spec) {
		labels[k] = v
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scratch, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create scratch namespace %s: %w", scratch, err)
	}
	defer cleanupNetProbes(cs, m)

	for i, s := range m.Servers {
		s.Pod = fmt.Sprintf("netprobe-server-%d-%s", i, suffix)
		args := []string{"serve"}
		for _, p := range s.Ports {
			args = append(args, strconv.Itoa(p))
		}
		if err := createProbePod(ctx, cs, s.Namespace, s.Pod, image, s.Labels, args); err != nil {
			return nil, err
		}
	}
	for _, s := range m.Servers {
		p, err := waitProbePod(ctx, cs, s.Namespace, s.Pod, false)
		if err != nil {
			return nil, err
		}
		s.IP = p.Status.PodIP
	}
	// Cilium's drop notifications while the clients run, for the evidence.
	var drops *dropMonitor
	if cfg, err := t.RESTConfig(); err == nil {
		drops = startDropMonitor(ctx, cfg, cs)
	}
	for i, c := range m.Clients {
		c.Pod = fmt.Sprintf("netprobe-client-%d-%s", i, suffix)
		plan := struct {
			Timeout string           `json:"timeout"`
			Flows   []map[string]any `json:"flows"`
		}{Timeout: probeDialTimeout.String()}
		for _, f := range c.Flows {
			pf := map[string]any{"id": f.ID, "kind": f.Kind}
			switch {
			case f.Kind == "dns":
				pf["name"] = f.Name
			case f.Server != nil:
				f.Addr = net.JoinHostPort(f.Server.IP, strconv.Itoa(f.Port))
				pf["addr"] = f.Addr
			default:
				pf["addr"] = f.Addr
			}
			if f.Want != wantDropped {
				pf["attempts"] = 3 // a new endpoint may still be settling
			}
			plan.Flows = append(plan.Flows, pf)
		}
		raw, err := json.Marshal(plan)
		if err != nil {
			return nil, err
		}
		if err := createProbePod(ctx, cs, c.Namespace, c.Pod, image, c.Labels, []string{"run", string(raw)}); err != nil {
			return nil, err
		}
	}
	for _, c := range m.Clients {
		p, err := waitProbePod(ctx, cs, c.Namespace, c.Pod, true)
		if err != nil {
			return nil, err
		}
		c.IP = p.Status.PodIP
		if err := readProbeResults(ctx, cs, c); err != nil {
			return nil, err
		}
	}
	if drops != nil {
		attachDrops(m, drops)
	}
	m.Took = time.Since(start)
	return m, nil
}

// outsideListener listens on the target's outside address and accepts
// (and closes) every connection until stop. It returns "" when there is
// no such address here.
func outsideListener(ctx context.Context, t Target) (addr string, stop func()) {
	a, err := t.OutsideAddr(ctx)
	if err != nil {
		return "", func() {}
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		return "", func() {}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close() }
}

func randSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// probePodSpec is Pod Security restricted, without a service account
// token, and never pulls: the image is on the nodes.
func probePodSpec(image string, args []string, restart corev1.RestartPolicy) corev1.PodSpec {
	no, yes := false, true
	uid := int64(probeUser)
	grace := int64(0)
	return corev1.PodSpec{
		RestartPolicy:                 restart,
		AutomountServiceAccountToken:  &no,
		EnableServiceLinks:            &no,
		TerminationGracePeriodSeconds: &grace,
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name: "probe", Image: image, Args: args, ImagePullPolicy: corev1.PullNever,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes, ReadOnlyRootFilesystem: &yes,
				Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		}},
	}
}

func createProbePod(ctx context.Context, cs kubernetes.Interface, ns, name, image string, labels map[string]string, args []string) error {
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[ProbeLabel] = netProbeValue
	restart := corev1.RestartPolicyAlways
	if args[0] == "run" {
		restart = corev1.RestartPolicyNever
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}, Spec: probePodSpec(image, args, restart)}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create probe pod %s/%s: %w", ns, name, err)
	}
	return nil
}

// waitProbePod waits for a server to run with an address, or a client to
// finish. A pod that cannot start (the image missing on its node, a
// crash) ends the wait at once with what the kubelet said.
func waitProbePod(ctx context.Context, cs kubernetes.Interface, ns, name string, finish bool) (*corev1.Pod, error) {
	var ip string // a finished pod may no longer report its address
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("probe pod %s/%s: %w", ns, name, err)
		}
		if p.Status.PodIP != "" {
			ip = p.Status.PodIP
		}
		switch {
		case finish && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed):
			p.Status.PodIP = ip
			return p, nil
		case !finish && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "":
			return p, nil
		case !finish && p.Status.Phase != corev1.PodPending && p.Status.Phase != corev1.PodRunning:
			return nil, fmt.Errorf("probe server %s/%s is %s: %s", ns, name, p.Status.Phase, podWhy(p))
		}
		if why := podStuck(p); why != "" {
			return nil, fmt.Errorf("probe pod %s/%s cannot start: %s", ns, name, why)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("probe pod %s/%s: still %s: %s (%w)", ns, name, p.Status.Phase, podWhy(p), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podStuck names a container state that will not get better by waiting.
func podStuck(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError":
				return w.Reason + ": " + w.Message
			}
		}
	}
	return ""
}

func podWhy(p *corev1.Pod) string {
	var out []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			out = append(out, string(c.Type)+": "+c.Message)
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			out = append(out, "waiting: "+c.State.Waiting.Reason+" "+c.State.Waiting.Message)
		case c.State.Terminated != nil:
			out = append(out, fmt.Sprintf("exited %d: %s", c.State.Terminated.ExitCode, c.State.Terminated.Message))
		}
	}
	if len(out) == 0 {
		return "no reason given"
	}
	return strings.Join(out, "; ")
}

// readProbeResults reads a finished client's log into its flows.
func readProbeResults(ctx context.Context, cs kubernetes.Interface, c *probeClient) error {
	raw, err := cs.CoreV1().Pods(c.Namespace).GetLogs(c.Pod, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("logs of probe client %s/%s: %w", c.Namespace, c.Pod, err)
	}
	byID := map[string]*probeFlow{}
	for _, f := range c.Flows {
		byID[f.ID] = f
	}
	done := false
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == `{"done":true}` {
			done = true
			break
		}
		var r struct {
			ID      string `json:"id"`
			Verdict string `json:"verdict"`
			Detail  string `json:"detail"`
			Ms      int64  `json:"ms"`
		}
		if json.Unmarshal([]byte(line), &r) != nil {
			continue
		}
		if f := byID[r.ID]; f != nil {
			f.Verdict, f.Detail, f.Millis = r.Verdict, r.Detail, r.Ms
		}
	}
	if !done {
		return fmt.Errorf("probe client %s/%s did not finish its plan; its log: %s", c.Namespace, c.Pod, tail(string(raw), 400))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// cleanupNetProbes deletes the run's pods and scratch namespace, on a
// context of its own: a cancelled check still cleans up.
func cleanupNetProbes(cs kubernetes.Interface, m *netMatrix) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zero := int64(0)
	del := metav1.DeleteOptions{GracePeriodSeconds: &zero}
	for _, s := range m.Servers {
		if s.Pod != "" && s.Namespace != m.Scratch {
			_ = cs.CoreV1().Pods(s.Namespace).Delete(ctx, s.Pod, del)
		}
	}
	for _, c := range m.Clients {
		if c.Pod != "" && c.Namespace != m.Scratch {
			_ = cs.CoreV1().Pods(c.Namespace).Delete(ctx, c.Pod, del)
		}
	}
	_ = cs.CoreV1().Namespaces().Delete(ctx, m.Scratch, del)
}

// sweepNetProbes removes what an interrupted run left: scratch namespaces
// and probe pods older than probeLeftoverAge.
func sweepNetProbes(ctx context.Context, cs kubernetes.Interface, namespaces []string) {
	sel := metav1.ListOptions{LabelSelector: ProbeLabel + "=" + netProbeValue}
	old := func(m metav1.ObjectMeta) bool { return time.Since(m.CreationTimestamp.Time) > probeLeftoverAge }
	if nss, err := cs.CoreV1().Namespaces().List(ctx, sel); err == nil {
		for _, ns := range nss.Items {
			if old(ns.ObjectMeta) && ns.DeletionTimestamp == nil {
				_ = cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
			}
		}
	}
	for _, ns := range namespaces {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			if old(p.ObjectMeta) {
				_ = cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})
			}
		}
	}
}
