package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/hardening"
)

// checkAllowRules (SP-NET-003): the allow policies secprov rendered from
// spec.network.allow are in place exactly as rendered (not widened), and
// no other NetworkPolicy in a workload namespace opens it to every source
// or destination.
func checkAllowRules(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	objs, err := hardening.Objects(info.Spec, info.Rendering)
	if err != nil {
		return Errorf("render the blueprint's policies: %v", err)
	}
	if info.Rendering.CiliumPolicies {
		checkCiliumAllowRules(ctx, t, objs, &r)
	}
	ours := map[string]bool{}
	for _, o := range objs {
		want, ok := o.Object.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		ours[want.Namespace+"/"+want.Name] = true
		if !strings.HasPrefix(want.Name, "secprov-allow-") {
			continue // default deny and DNS: SP-NET-002
		}
		ev := Evidence{Object: "NetworkPolicy/" + want.Namespace + "/" + want.Name, Field: "spec", Want: "as rendered from spec.network.allow"}
		got, err := cs.NetworkingV1().NetworkPolicies(want.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			ev.Got = "missing"
			r.fail(ev, "allow policy "+want.Namespace+"/"+want.Name+" is missing")
		case err != nil:
			r.errorf("get %s: %v", ev.Object, err)
		case !equality.Semantic.DeepEqual(normalized(got.Spec), normalized(want.Spec)):
			ev.Got = describePolicy(got)
			r.fail(ev, "allow policy "+want.Namespace+"/"+want.Name+" differs from the blueprint")
		default:
			ev.Got = "as rendered"
			r.ok(ev)
		}
	}
	for _, ns := range hardening.WorkloadNamespaces(info.Spec) {
		list, err := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.errorf("list network policies in %s: %v", ns, err)
			continue
		}
		for i := range list.Items {
			np := &list.Items[i]
			if ours[ns+"/"+np.Name] {
				continue
			}
			ev := Evidence{Object: "NetworkPolicy/" + ns + "/" + np.Name, Field: "spec", Want: "named sources and destinations"}
			if why := openToAll(np); why != "" {
				ev.Got = why
				r.fail(ev, fmt.Sprintf("NetworkPolicy %s/%s %s", ns, np.Name, why))
			} else {
				ev.Got = "narrow"
				r.ok(ev)
			}
		}
	}
	if len(r.good) == 0 && len(r.bad) == 0 {
		return Pass("no allow rules in the blueprint and no other policy in the workload namespaces",
			Evidence{Object: "spec.network.allow", Field: "rules", Want: "narrow", Got: "none"})
	}
	return r.outcome("allow policies are exactly the blueprint's; no policy opens a workload namespace to everyone")
}

// normalized puts a policy spec in a canonical form so that two specs
// that select and allow the same compare equal: the API server's defaults
// filled in (protocol TCP, the policy types an empty list means), and
// the lists whose order carries no meaning sorted (policy types, rules,
// peers and ports; rules and peers are ORed).
func normalized(s networkingv1.NetworkPolicySpec) networkingv1.NetworkPolicySpec {
	s = *s.DeepCopy()
	s.PolicyTypes = effectiveTypes(s)
	slices.Sort(s.PolicyTypes)
	fix := func(ports []networkingv1.NetworkPolicyPort) {
		for i := range ports {
			if ports[i].Protocol == nil {
				tcp := corev1.ProtocolTCP
				ports[i].Protocol = &tcp
			}
		}
		sortByJSON(ports)
	}
	for i := range s.Ingress {
		fix(s.Ingress[i].Ports)
		sortByJSON(s.Ingress[i].From)
	}
	for i := range s.Egress {
		fix(s.Egress[i].Ports)
		sortByJSON(s.Egress[i].To)
	}
	sortByJSON(s.Ingress)
	sortByJSON(s.Egress)
	return s
}

// effectiveTypes are the policy types a spec has: its own, or when it
// names none, Ingress plus Egress if it has egress rules (the API
// server's default).
func effectiveTypes(s networkingv1.NetworkPolicySpec) []networkingv1.PolicyType {
	if len(s.PolicyTypes) > 0 {
		return slices.Clone(s.PolicyTypes)
	}
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(s.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	return types
}

// sortByJSON orders a list by each element's JSON encoding, which is a
// total order on what the element means (map keys are encoded sorted).
func sortByJSON[T any](xs []T) {
	key := func(x T) string {
		b, _ := json.Marshal(x)
		return string(b)
	}
	slices.SortStableFunc(xs, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}

// openToAll says how a policy opens its pods to everyone, or "".
func openToAll(np *networkingv1.NetworkPolicy) string {
	broad := func(peers []networkingv1.NetworkPolicyPeer) string {
		if len(peers) == 0 {
			return "every peer"
		}
		for _, p := range peers {
			if p.IPBlock != nil && (p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0") && len(p.IPBlock.Except) == 0 {
				return "every address (" + p.IPBlock.CIDR + ")"
			}
			if p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchLabels)+len(p.NamespaceSelector.MatchExpressions) == 0 &&
				(p.PodSelector == nil || len(p.PodSelector.MatchLabels)+len(p.PodSelector.MatchExpressions) == 0) {
				return "every pod of every namespace"
			}
		}
		return ""
	}
	for _, in := range np.Spec.Ingress {
		if w := broad(in.From); w != "" {
			return "allows ingress from " + w
		}
	}
	for _, out := range np.Spec.Egress {
		if w := broad(out.To); w != "" {
			return "allows egress to " + w
		}
	}
	return ""
}

func describePolicy(np *networkingv1.NetworkPolicy) string {
	if why := openToAll(np); why != "" {
		return why
	}
	return fmt.Sprintf("%d ingress and %d egress rules, types %v", len(np.Spec.Ingress), len(np.Spec.Egress), np.Spec.PolicyTypes)
}
