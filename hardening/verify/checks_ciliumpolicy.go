package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"secprov.dev/secprov/hardening"
)

// On a cluster whose provider renders spec.network as Cilium's own policy
// kinds (Info.Rendering.CiliumPolicies), SP-NET-002 and SP-NET-003
// compare the live CiliumClusterwideNetworkPolicy and
// CiliumNetworkPolicies with that rendering, as they compare
// NetworkPolicies elsewhere.

func ciliumGVR(kind string) schema.GroupVersionResource {
	if kind == hardening.CiliumClusterwide {
		return ciliumClusterwidePolicyGVR
	}
	return ciliumPolicyGVR
}

func ciliumRef(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// renderedCilium are the Cilium policies among a rendering's objects.
func renderedCilium(objs []hardening.Object) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if u, ok := o.Object.(*unstructured.Unstructured); ok && u.GetAPIVersion() == hardening.CiliumAPIVersion {
			out = append(out, u)
		}
	}
	return out
}

// compareCiliumPolicy reads want's live twin and reports it: missing,
// differing from the rendering (with what it is instead), or as rendered.
// missing is called for a missing policy, to fail or warn as the caller
// judges.
func compareCiliumPolicy(ctx context.Context, dc dynamic.Interface, want *unstructured.Unstructured, r *findings, missing func(Evidence)) {
	ref := ciliumRef(want)
	ev := Evidence{Object: ref, Field: "spec", Want: "as hardening renders it: " + describeCiliumSpec(want.Object["spec"])}
	ri := dc.Resource(ciliumGVR(want.GetKind()))
	var got *unstructured.Unstructured
	var err error
	if ns := want.GetNamespace(); ns != "" {
		got, err = ri.Namespace(ns).Get(ctx, want.GetName(), metav1.GetOptions{})
	} else {
		got, err = ri.Get(ctx, want.GetName(), metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		ev.Got = "missing"
		missing(ev)
	case err != nil:
		r.errorf("get %s: %v", ref, err)
	case !sameJSON(got.Object["spec"], want.Object["spec"]):
		ev.Got = describeCiliumSpec(got.Object["spec"])
		r.fail(ev, fmt.Sprintf("%s differs from what hardening renders: %s", ref, ev.Got))
	default:
		ev.Got = "as rendered"
		r.ok(ev)
	}
}

// sameJSON compares two decoded JSON values by meaning: both are put
// through one encoding, so int and float64 numbers, and []string and
// []any lists, compare equal.
func sameJSON(a, b any) bool {
	norm := func(v any) any {
		data, err := json.Marshal(v)
		if err != nil {
			return err.Error()
		}
		var out any
		if err := json.Unmarshal(data, &out); err != nil {
			return err.Error()
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// describeCiliumSpec says in one line what a Cilium policy spec selects
// and how many rules it has in each direction.
func describeCiliumSpec(v any) string {
	spec, _ := v.(map[string]any)
	if spec == nil {
		return "no spec"
	}
	sel, _ := json.Marshal(spec["endpointSelector"])
	parts := []string{"selects " + string(sel)}
	for _, dir := range []string{"ingress", "ingressDeny", "egress", "egressDeny"} {
		if rules, ok := spec[dir].([]any); ok {
			parts = append(parts, fmt.Sprintf("%d %s rules", len(rules), dir))
		}
	}
	if dd, ok := spec["enableDefaultDeny"].(map[string]any); ok {
		parts = append(parts, fmt.Sprintf("default deny ingress %v, egress %v", dd["ingress"], dd["egress"]))
	}
	if why := hardening.JudgeCiliumPolicy(map[string]any{"spec": spec}, false); len(why) > 0 {
		parts = append(parts, strings.Join(why, "; "))
	}
	return strings.Join(parts, ", ")
}

// checkCiliumDefaultDeny is SP-NET-002 on a Cilium-rendered cluster: the
// cluster-wide default deny is in place as rendered (whatever the
// blueprint says: an exception excuses turning it off).
func checkCiliumDefaultDeny(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	dc, err := dynamicClient(t)
	if err != nil {
		return Errorf("dynamic client: %v", err)
	}
	want := hardening.CiliumDefaultDeny(info.Spec)
	compareCiliumPolicy(ctx, dc, want, &r, func(ev Evidence) {
		r.fail(ev, fmt.Sprintf("the workload namespaces (%s) have no default deny: %s is missing",
			strings.Join(hardening.WorkloadNamespaces(info.Spec), ", "), ciliumRef(want)))
	})
	return r.outcome(fmt.Sprintf("%s denies %s all traffic but DNS, as rendered (the object; enforcement needs network probes)",
		ciliumRef(want), strings.Join(hardening.WorkloadNamespaces(info.Spec), ", ")))
}

// checkCiliumAllowRules is the Cilium half of SP-NET-003: secprov's allow
// policies are exactly as rendered, and no other Cilium policy in a
// workload namespace, and no clusterwide one, opens pods to everyone. It
// returns the names of the rendered policies.
func checkCiliumAllowRules(ctx context.Context, t Target, objs []hardening.Object, r *findings) {
	dc, err := dynamicClient(t)
	if err != nil {
		r.errorf("dynamic client: %v", err)
		return
	}
	ours := map[string]bool{}
	for _, want := range renderedCilium(objs) {
		ours[ciliumRef(want)] = true
		if !strings.HasPrefix(want.GetName(), "secprov-allow-") {
			continue // default deny: SP-NET-002
		}
		compareCiliumPolicy(ctx, dc, want, r, func(ev Evidence) {
			r.fail(ev, "allow policy "+ciliumRef(want)+" is missing")
		})
	}
	workload := map[string]bool{}
	for _, ns := range hardening.WorkloadNamespaces(t.Info().Spec) {
		workload[ns] = true
	}
	for _, k := range []struct {
		gvr         schema.GroupVersionResource
		clusterwide bool
	}{{ciliumPolicyGVR, false}, {ciliumClusterwidePolicyGVR, true}} {
		l, err := dc.Resource(k.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.errorf("list %s: %v", k.gvr.Resource, err)
			continue
		}
		for i := range l.Items {
			o := &l.Items[i]
			if ours[ciliumRef(o)] || (!k.clusterwide && !workload[o.GetNamespace()]) {
				continue
			}
			ev := Evidence{Object: ciliumRef(o), Field: "spec", Want: "named sources and destinations"}
			if why := hardening.JudgeCiliumPolicy(o.Object, k.clusterwide); len(why) > 0 {
				ev.Got = strings.Join(why, "; ")
				r.fail(ev, fmt.Sprintf("%s opens pods to everyone: %s", ciliumRef(o), ev.Got))
			} else {
				ev.Got = "narrow"
				r.ok(ev)
			}
		}
	}
}
