package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// networkChecks prove the default-deny policies (SP-NET-002) and that
// the allow rules are no wider than the blueprint (SP-NET-003).
func networkChecks() []Check {
	return []Check{{ID: blueprints.NetworkDefaultDeny, Run: checkDefaultDeny}, {ID: blueprints.NetworkAllowNarrow, Run: checkAllowRules}}
}

// isDefaultDeny: selects every pod, both directions, no allow rule.
func isDefaultDeny(np *networkingv1.NetworkPolicy) bool {
	s := np.Spec
	return len(s.PodSelector.MatchLabels) == 0 && len(s.PodSelector.MatchExpressions) == 0 &&
		slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeEgress) &&
		len(s.Ingress) == 0 && len(s.Egress) == 0
}

// dnsOnly: an egress-only policy whose every rule names peers and allows
// port 53 alone.
func dnsOnly(np *networkingv1.NetworkPolicy) bool {
	s := np.Spec
	if len(s.Ingress) > 0 || slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeIngress) || len(s.Egress) == 0 {
		return false
	}
	for _, e := range s.Egress {
		if len(e.To) == 0 || len(e.Ports) == 0 {
			return false
		}
		for _, p := range e.Ports {
			if p.Port == nil || p.Port.IntValue() != 53 || p.EndPort != nil {
				return false
			}
		}
	}
	return true
}

// checkDefaultDeny: every workload namespace has a default-deny policy of
// the right shape, and secprov's DNS allowance allows DNS only. The local
// provider has no nodes, so enforcement cannot be shown there.
func checkDefaultDeny(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	namespaces := hardening.WorkloadNamespaces(info.Spec)
	for _, ns := range namespaces {
		list, err := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.errorf("list network policies in %s: %v", ns, err)
			continue
		}
		var deny, dns *networkingv1.NetworkPolicy
		for i := range list.Items {
			np := &list.Items[i]
			if isDefaultDeny(np) && (deny == nil || np.Name == hardening.DefaultDenyPolicy) {
				deny = np
			}
			if np.Name == hardening.AllowDNSPolicy {
				dns = np
			}
		}
		ev := Evidence{Object: "Namespace/" + ns, Field: "NetworkPolicy " + hardening.DefaultDenyPolicy,
			Want: "empty podSelector, Ingress+Egress, no rules", Got: "missing"}
		if deny == nil {
			if np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, hardening.DefaultDenyPolicy, metav1.GetOptions{}); err == nil {
				ev.Got = fmt.Sprintf("present but selects %v, types %v, %d ingress and %d egress rules",
					metav1.FormatLabelSelector(&np.Spec.PodSelector), np.Spec.PolicyTypes, len(np.Spec.Ingress), len(np.Spec.Egress))
			}
			r.fail(ev, "namespace "+ns+" has no default-deny network policy")
		} else {
			ev.Field, ev.Got = "NetworkPolicy "+deny.Name, "default deny"
			r.ok(ev)
		}
		ev = Evidence{Object: "Namespace/" + ns, Field: "NetworkPolicy " + hardening.AllowDNSPolicy, Want: "egress to DNS (port 53) only"}
		switch {
		case dns == nil:
			ev.Got = "missing"
			r.warn(ev, "namespace "+ns+" has no DNS allowance: its pods cannot resolve names")
		case !dnsOnly(dns):
			ev.Got = "allows more than DNS"
			r.fail(ev, "namespace "+ns+"'s "+hardening.AllowDNSPolicy+" allows more than DNS")
		default:
			ev.Got = "DNS only"
			r.ok(ev)
		}
	}
	pass := fmt.Sprintf("default-deny and DNS-only policies present in %s", strings.Join(namespaces, ", "))
	if !info.HasNodes {
		pass += fmt.Sprintf("; policies present, enforcement is tested on kind (provider %s has no nodes)", info.Provider)
	}
	return r.outcome(pass)
}
