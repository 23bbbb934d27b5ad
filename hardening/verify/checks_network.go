package verify

import (
	"context"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// networkChecks prove the default-deny policies (SP-NET-002) and that
// the allow rules are no wider than the blueprint (SP-NET-003).
func networkChecks() []Check {
	return []Check{{ID: blueprints.NetworkDefaultDeny, Run: checkDefaultDeny, Needs: needs(API)}, {ID: blueprints.NetworkAllowNarrow, Run: checkAllowRules, Needs: needs(API)}}
}

// checkDefaultDeny: every workload namespace holds the policies hardening
// renders for network.defaultDeny (hardening.DefaultDenyPolicies, what
// `up` applies), each as rendered: a deny policy that is missing or
// differs fails, unless another policy of the namespace has exactly its
// spec; a missing allowance (DNS) warns, because without it the
// namespace is stricter, not weaker. They are rendered whatever the
// blueprint says, because turning default deny off is what this control
// is about (an exception excuses it). This proves the objects;
// enforcement needs pods and traffic between them (NetworkProbes).
func checkDefaultDeny(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	if info.Rendering.CiliumPolicies {
		return checkCiliumDefaultDeny(ctx, t)
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	namespaces := hardening.WorkloadNamespaces(info.Spec)
	var names []string
	for _, np := range hardening.DefaultDenyPolicies("") {
		names = append(names, np.Name)
	}
	for _, ns := range namespaces {
		var list *networkingv1.NetworkPolicyList // read once per namespace, when a policy is missing
		for _, want := range hardening.DefaultDenyPolicies(ns) {
			ev := Evidence{Object: "NetworkPolicy/" + ns + "/" + want.Name, Field: "spec", Want: "as hardening renders it: " + policyShape(want)}
			got, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, want.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				if list == nil {
					if list, err = cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{}); err != nil {
						r.errorf("list network policies in %s: %v", ns, err)
						continue
					}
				}
				if same := sameSpec(list.Items, want); same != "" {
					ev.Got = "missing, but " + same + " has the same spec"
					r.ok(ev)
					continue
				}
				ev.Got = "missing"
				if allows(want) {
					r.warn(ev, fmt.Sprintf("namespace %s has no %s: its pods may not %s", ns, want.Name, describeRules(want.Spec)))
				} else {
					r.fail(ev, fmt.Sprintf("namespace %s has no default-deny network policy (%s is missing)", ns, want.Name))
				}
			case err != nil:
				r.errorf("get %s: %v", ev.Object, err)
			case !equality.Semantic.DeepEqual(normalized(got.Spec), normalized(want.Spec)):
				ev.Got = policyShape(got)
				r.fail(ev, fmt.Sprintf("NetworkPolicy %s/%s differs from what hardening renders: %s", ns, want.Name, ev.Got))
			default:
				ev.Got = "as rendered"
				r.ok(ev)
			}
		}
	}
	return r.outcome(fmt.Sprintf("%s are in place as rendered in %s (the objects; enforcement needs network probes)",
		strings.Join(names, " and "), strings.Join(namespaces, ", ")))
}

// allows reports whether a policy has any allow rule.
func allows(np *networkingv1.NetworkPolicy) bool {
	return len(np.Spec.Ingress)+len(np.Spec.Egress) > 0
}

// sameSpec returns the name of a policy among items with want's spec, or "".
func sameSpec(items []networkingv1.NetworkPolicy, want *networkingv1.NetworkPolicy) string {
	for i := range items {
		if equality.Semantic.DeepEqual(normalized(items[i].Spec), normalized(want.Spec)) {
			return items[i].Name
		}
	}
	return ""
}

// policyShape describes a policy in one line for evidence: what it
// selects, its types and its rules (or how it opens to everyone).
func policyShape(np *networkingv1.NetworkPolicy) string {
	s := np.Spec
	sel := metav1.FormatLabelSelector(&s.PodSelector)
	if sel == "<none>" {
		sel = "every pod"
	}
	out := fmt.Sprintf("selects %s, types %v, %d ingress and %d egress rules", sel, effectiveTypes(s), len(s.Ingress), len(s.Egress))
	if why := openToAll(np); why != "" {
		out += ", " + why
	}
	return out
}

// describeRules says what a policy allows: "egress to namespace
// kube-system pods k8s-app=kube-dns on UDP/53, TCP/53".
func describeRules(s networkingv1.NetworkPolicySpec) string {
	var parts []string
	for _, in := range s.Ingress {
		parts = append(parts, "receive ingress from "+describePeers(in.From)+describePorts(in.Ports))
	}
	for _, out := range s.Egress {
		parts = append(parts, "send egress to "+describePeers(out.To)+describePorts(out.Ports))
	}
	return strings.Join(parts, "; ")
}

func describePeers(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "every peer"
	}
	var out []string
	for _, p := range peers {
		var d []string
		if p.IPBlock != nil {
			d = append(d, p.IPBlock.CIDR)
		}
		if p.NamespaceSelector != nil {
			if ns := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; ns != "" && len(p.NamespaceSelector.MatchLabels) == 1 {
				d = append(d, "namespace "+ns)
			} else {
				d = append(d, "namespaces "+metav1.FormatLabelSelector(p.NamespaceSelector))
			}
		}
		if p.PodSelector != nil {
			d = append(d, "pods "+metav1.FormatLabelSelector(p.PodSelector))
		}
		out = append(out, strings.Join(d, " "))
	}
	return strings.Join(out, " or ")
}

func describePorts(ports []networkingv1.NetworkPolicyPort) string {
	if len(ports) == 0 {
		return ""
	}
	var out []string
	for _, p := range ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		port := "any port"
		if p.Port != nil {
			port = p.Port.String()
		}
		if p.EndPort != nil {
			port += fmt.Sprintf("-%d", *p.EndPort)
		}
		out = append(out, proto+"/"+port)
	}
	return " on " + strings.Join(out, ", ")
}
