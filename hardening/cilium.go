package hardening

import (
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Cilium's policy kinds, which secprov renders spec.network into on a
// cluster whose CNI is Cilium (kind): one cluster-wide default deny and
// one CiliumNetworkPolicy per side of each allow rule.
const (
	CiliumAPIVersion     = "cilium.io/v2"
	CiliumPolicyKind     = "CiliumNetworkPolicy"
	CiliumClusterwide    = "CiliumClusterwideNetworkPolicy"
	ciliumNamespaceLabel = "k8s:io.kubernetes.pod.namespace"
)

// Options says how a provider realises the blueprint's objects.
type Options struct {
	// CiliumPolicies renders spec.network as Cilium's own policy kinds
	// (the cluster runs Cilium, which serves them) instead of
	// NetworkPolicies.
	CiliumPolicies bool `json:"ciliumPolicies,omitempty"`
}

// CiliumDefaultDeny is the CiliumClusterwideNetworkPolicy of
// network.defaultDeny (SP-NET-002) on a Cilium cluster: every pod of the
// workload namespaces is denied all ingress and egress but DNS to the
// cluster's kube-dns. An empty rule (ingress: [{}]) selects no peer, so it
// turns default deny on for ingress without allowing anything;
// enableDefaultDeny says the same explicitly. verify compares the live
// policy with this rendering.
func CiliumDefaultDeny(spec v1alpha1.Spec) *unstructured.Unstructured {
	return ciliumPolicy(CiliumClusterwide, "", DefaultDenyPolicy, map[string]any{
		"description": "secprov: default deny for the workload namespaces; DNS to kube-dns only",
		"endpointSelector": map[string]any{"matchExpressions": []any{map[string]any{
			"key": ciliumNamespaceLabel, "operator": "In", "values": toAny(WorkloadNamespaces(spec)),
		}}},
		"enableDefaultDeny": map[string]any{"ingress": true, "egress": true},
		"ingress":           []any{map[string]any{}},
		"egress": []any{map[string]any{
			"toEndpoints": []any{map[string]any{"matchLabels": map[string]any{ciliumNamespaceLabel: "kube-system", "k8s:k8s-app": "kube-dns"}}},
			"toPorts":     []any{map[string]any{"ports": []any{ciliumPort("UDP", 53), ciliumPort("TCP", 53)}}},
		}},
	})
}

// ciliumAllowPolicies turns spec.network.allow into CiliumNetworkPolicies
// (SP-NET-003): the ingress side in the destination namespace and, since
// egress is denied too, the egress side in the source namespace, named as
// the NetworkPolicies of the portable rendering are.
func ciliumAllowPolicies(spec v1alpha1.Spec) []Object {
	var out []Object
	ctl := []blueprints.ControlID{blueprints.NetworkAllowNarrow}
	workload := WorkloadNamespaces(spec)
	for i, r := range spec.Network.Allow {
		name := fmt.Sprintf("secprov-allow-%d", i)
		var toPorts []any
		if len(r.To.Ports) > 0 {
			var ports []any
			for _, p := range r.To.Ports {
				ports = append(ports, ciliumPort(r.To.Protocol, p))
			}
			toPorts = []any{map[string]any{"ports": ports}}
		}
		withPorts := func(rule map[string]any) map[string]any {
			if toPorts != nil {
				rule["toPorts"] = toPorts
			}
			return rule
		}
		var dests []string
		switch {
		case r.To.Namespace == "*":
			dests = workload
		case r.To.Namespace != "":
			dests = []string{r.To.Namespace}
		}
		for _, ns := range dests {
			from := map[string]any{}
			if r.From.CIDR != "" {
				from["fromCIDR"] = []any{r.From.CIDR}
			} else {
				from["fromEndpoints"] = []any{ciliumPeer(r.From.Namespace, r.From.PodSelector)}
			}
			out = append(out, Object{Controls: ctl, Object: ciliumPolicy(CiliumPolicyKind, ns, name+"-ingress", map[string]any{
				"endpointSelector": ciliumSelector(r.To.PodSelector),
				"ingress":          []any{withPorts(from)},
			})})
		}
		if r.From.CIDR != "" {
			continue
		}
		to := map[string]any{}
		if r.To.CIDR != "" {
			to["toCIDR"] = []any{r.To.CIDR}
		} else {
			to["toEndpoints"] = []any{ciliumPeer(r.To.Namespace, r.To.PodSelector)}
		}
		sources := []string{r.From.Namespace}
		if r.From.Namespace == "*" {
			sources = workload
		}
		for _, ns := range sources {
			if !slices.Contains(workload, ns) {
				continue // not ours: its egress is not denied by secprov
			}
			out = append(out, Object{Controls: ctl, Object: ciliumPolicy(CiliumPolicyKind, ns, name+"-egress", map[string]any{
				"endpointSelector": ciliumSelector(r.From.PodSelector),
				"egress":           []any{withPorts(to)},
			})})
		}
	}
	return out
}

// ciliumPeer selects the pods of namespace ns (every namespace for "*")
// with labels.
func ciliumPeer(ns string, labels map[string]string) map[string]any {
	sel := ciliumSelector(labels)
	if ns == "*" {
		sel["matchExpressions"] = []any{map[string]any{"key": ciliumNamespaceLabel, "operator": "Exists"}}
		return sel
	}
	ml, _ := sel["matchLabels"].(map[string]any)
	if ml == nil {
		ml = map[string]any{}
	}
	ml[ciliumNamespaceLabel] = ns
	sel["matchLabels"] = ml
	return sel
}

// ciliumSelector selects pods by their Kubernetes labels (every pod of
// the policy's namespace when there are none).
func ciliumSelector(labels map[string]string) map[string]any {
	if len(labels) == 0 {
		return map[string]any{}
	}
	ml := map[string]any{}
	for k, v := range labels {
		ml["k8s:"+k] = v
	}
	return map[string]any{"matchLabels": ml}
}

func ciliumPort(proto string, p int) map[string]any {
	if proto == "" {
		proto = "TCP"
	}
	return map[string]any{"port": strconv.Itoa(p), "protocol": proto}
}

func ciliumPolicy(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	md := map[string]any{"name": name, "labels": map[string]any{ManagedByLabel: ManagedByValue}}
	if ns != "" {
		md["namespace"] = ns
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": CiliumAPIVersion, "kind": kind, "metadata": md, "spec": spec,
	}}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
