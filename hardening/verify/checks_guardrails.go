package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// guardrailChecks prove each admission guardrail (SP-ADM-001..004) three
// ways: the live policy and binding are the rendered ones and deny; a
// forbidden change, sent as a throw-away identity holding exactly the
// rights that change needs, is refused by the guardrail (a compliant one
// is admitted); and every live object the guardrail covers complies, so
// what predates a guardrail or slipped past it is reported by name.
func guardrailChecks() []Check {
	return []Check{
		{ID: blueprints.GuardrailImages, Run: checkImagesGuardrail, Needs: needs(API)},
		{ID: blueprints.GuardrailPodSecurity, Run: checkPodSecurityGuardrail, Needs: needs(API)},
		{ID: blueprints.GuardrailRBAC, Run: checkRBACGuardrail, Needs: needs(API)},
		{ID: blueprints.GuardrailNetwork, Run: checkNetworkGuardrail, Needs: needs(API)},
	}
}

// ProbeLabel marks the throw-away roles and bindings of the behaviour
// probes; a run removes what an interrupted one left.
const ProbeLabel = "secprov.dev/verify-probe"

// probeLeftoverAge: probe objects older than this belong to a run that
// did not clean up (a probe takes seconds).
const probeLeftoverAge = 10 * time.Minute

// guardrailFor renders the cluster's guardrail of control, or nil when
// the blueprint has none (the image guardrail without image rules).
func guardrailFor(info Info, control blueprints.ControlID) (*hardening.Guardrail, error) {
	gs, err := hardening.Guardrails(info.Spec, hardening.GuardrailInputs{OwnImages: info.OwnImages, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	for i := range gs {
		if gs[i].Control == control {
			return &gs[i], nil
		}
	}
	return nil, nil
}

// startGuardrailCheck renders the cluster's guardrail of control, opens the
// admin client and judges the live policy and binding. A non-nil Outcome
// ends the check: a blueprint without an image rule has no image
// guardrail to prove.
func startGuardrailCheck(ctx context.Context, t Target, control blueprints.ControlID) (*hardening.Guardrail, kubernetes.Interface, *findings, *Outcome) {
	end := func(o Outcome) (*hardening.Guardrail, kubernetes.Interface, *findings, *Outcome) {
		return nil, nil, nil, &o
	}
	g, err := guardrailFor(t.Info(), control)
	switch {
	case err != nil:
		return end(Errorf("render guardrails: %v", err))
	case g == nil:
		return end(Skip("the blueprint sets no image rule (spec.images: any registry, tags allowed), so there is no image guardrail to prove"))
	}
	cs, err := t.Client()
	if err != nil {
		return end(Errorf("admin client: %v", err))
	}
	r := &findings{}
	judgeLive(ctx, cs, g, r)
	return g, cs, r, nil
}

// judgeLive compares the live policy and binding with the rendered ones.
// A missing or edited policy, a missing or narrowed binding, or one that
// only warns without an exception, fails.
func judgeLive(ctx context.Context, cs kubernetes.Interface, g *hardening.Guardrail, r *findings) {
	ar := cs.AdmissionregistrationV1()
	obj := "ValidatingAdmissionPolicy/" + g.Name
	p, err := ar.ValidatingAdmissionPolicies().Get(ctx, g.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.fail(Evidence{Object: obj, Field: "metadata.name", Want: "exists", Got: "missing"}, fmt.Sprintf("the %s guardrail's policy %s is missing: run secprov up", g.Control, g.Name))
	case err != nil:
		r.errorf("get %s: %v", obj, err)
	default:
		if diff := policyDiff(g.Policy.Spec, p.Spec); diff != "" {
			r.fail(Evidence{Object: obj, Field: diff, Want: "as rendered from the blueprint", Got: "edited"},
				fmt.Sprintf("policy %s was edited out of band (%s): run secprov up", g.Name, diff))
		} else {
			r.ok(Evidence{Object: obj, Field: "spec", Want: "as rendered", Got: "as rendered"})
		}
	}
	obj = "ValidatingAdmissionPolicyBinding/" + g.Name
	b, err := ar.ValidatingAdmissionPolicyBindings().Get(ctx, g.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.fail(Evidence{Object: obj, Field: "metadata.name", Want: "exists", Got: "missing"}, fmt.Sprintf("the %s guardrail's binding %s is missing: the policy is not enforced; run secprov up", g.Control, g.Name))
		return
	case err != nil:
		r.errorf("get %s: %v", obj, err)
		return
	}
	if b.Spec.PolicyName != g.Name {
		r.fail(Evidence{Object: obj, Field: "spec.policyName", Want: g.Name, Got: b.Spec.PolicyName}, fmt.Sprintf("binding %s binds policy %q", g.Name, b.Spec.PolicyName))
	}
	if m := b.Spec.MatchResources; m != nil && (len(m.ResourceRules) > 0 || len(m.ExcludeResourceRules) > 0 || !emptySelector(m.NamespaceSelector) || !emptySelector(m.ObjectSelector)) {
		r.fail(Evidence{Object: obj, Field: "spec.matchResources", Want: "unset (everything the policy matches)", Got: "narrowed"},
			fmt.Sprintf("binding %s narrows what the guardrail judges", g.Name))
	}
	actions := fmt.Sprint(b.Spec.ValidationActions)
	deny := slices.Contains(b.Spec.ValidationActions, admissionv1.Deny)
	ev := Evidence{Object: obj, Field: "spec.validationActions", Got: actions}
	switch {
	case deny:
		ev.Want = "[Deny]"
		r.ok(ev)
	case g.Warn:
		ev.Want = "[Warn Audit] (" + g.WarnBecause + ")"
		r.warn(ev, fmt.Sprintf("the %s guardrail only warns: %s", g.Control, g.WarnBecause))
	default:
		ev.Want = "[Deny]"
		r.fail(ev, fmt.Sprintf("binding %s only warns (%s) and the blueprint has no exception for %s", g.Name, actions, g.Control))
	}
}

func emptySelector(s *metav1.LabelSelector) bool {
	return s == nil || len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// policyDiff names the first part of live that differs from want: the
// expressions, what it matches and its failure policy (the server's
// defaults elsewhere are not secprov's).
func policyDiff(want, live admissionv1.ValidatingAdmissionPolicySpec) string {
	if (live.FailurePolicy == nil) != (want.FailurePolicy == nil) || live.FailurePolicy != nil && *live.FailurePolicy != *want.FailurePolicy {
		return "spec.failurePolicy"
	}
	if len(live.Validations) != len(want.Validations) {
		return fmt.Sprintf("spec.validations: %d, want %d", len(live.Validations), len(want.Validations))
	}
	for i := range want.Validations {
		if live.Validations[i].Expression != want.Validations[i].Expression || live.Validations[i].MessageExpression != want.Validations[i].MessageExpression {
			return fmt.Sprintf("spec.validations[%d]", i)
		}
	}
	if len(live.MatchConditions) != len(want.MatchConditions) {
		return "spec.matchConditions"
	}
	for i := range want.MatchConditions {
		if live.MatchConditions[i] != want.MatchConditions[i] {
			return fmt.Sprintf("spec.matchConditions[%d]", i)
		}
	}
	if !slices.Equal(live.Variables, want.Variables) {
		return "spec.variables"
	}
	if live.MatchConstraints == nil || want.MatchConstraints == nil {
		if live.MatchConstraints != want.MatchConstraints {
			return "spec.matchConstraints"
		}
		return ""
	}
	lr, wr := live.MatchConstraints.ResourceRules, want.MatchConstraints.ResourceRules
	if len(lr) != len(wr) || len(live.MatchConstraints.ExcludeResourceRules) > 0 || !emptySelector(live.MatchConstraints.NamespaceSelector) || !emptySelector(live.MatchConstraints.ObjectSelector) {
		return "spec.matchConstraints"
	}
	for i := range wr {
		if !slices.Equal(lr[i].APIGroups, wr[i].APIGroups) || !slices.Equal(lr[i].Resources, wr[i].Resources) || !slices.Equal(lr[i].Operations, wr[i].Operations) {
			return fmt.Sprintf("spec.matchConstraints.resourceRules[%d]", i)
		}
	}
	return ""
}

// warningsOf collects the API server's warnings for one probe client.
type warningsOf struct {
	mu  sync.Mutex
	got []string
}

func (w *warningsOf) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warningsOf) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

// probeIdentity is a throw-away user holding exactly some rules, through
// a Role in a namespace (or a ClusterRole when the namespace is empty).
type probeIdentity struct {
	name     string // of its role and binding
	cs       kubernetes.Interface
	dyn      dynamic.Interface
	warnings *warningsOf
	cleanup  func()
}

// newProbeIdentity creates the role and binding (labelled ProbeLabel,
// after sweeping leftovers of interrupted runs) and a client that
// impersonates the user.
func newProbeIdentity(ctx context.Context, t Target, control blueprints.ControlID, ns string, rules []rbacv1.PolicyRule) (*probeIdentity, error) {
	cs, err := t.Client()
	if err != nil {
		return nil, err
	}
	cfg, err := t.RESTConfig()
	if err != nil {
		return nil, err
	}
	label := strings.ToLower(string(control))
	sweepProbes(ctx, t, label)
	name := canaryName(label)
	user := "secprov:verify:" + name
	meta := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ProbeLabel: label, hardening.ManagedByLabel: hardening.ManagedByValue}}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	var cleanup func()
	if ns == "" {
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create probe ClusterRole: %w", err)
		}
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}, metav1.CreateOptions{})
		cleanup = func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			_ = cs.RbacV1().ClusterRoleBindings().Delete(dctx, name, metav1.DeleteOptions{})
			_ = cs.RbacV1().ClusterRoles().Delete(dctx, name, metav1.DeleteOptions{})
		}
	} else {
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create probe Role: %w", err)
		}
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}, metav1.CreateOptions{})
		cleanup = func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			_ = cs.RbacV1().RoleBindings(ns).Delete(dctx, name, metav1.DeleteOptions{})
			_ = cs.RbacV1().Roles(ns).Delete(dctx, name, metav1.DeleteOptions{})
		}
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("create probe binding: %w", err)
	}
	w := &warningsOf{}
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cfg.WarningHandler = w
	pcs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		cleanup()
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &probeIdentity{name: name, cs: pcs, dyn: dyn, warnings: w, cleanup: cleanup}, nil
}

func (id *probeIdentity) client() guardrailClient {
	return guardrailClient{cs: id.cs, dyn: id.dyn, role: id.name}
}

// probeKinds are the kinds a probe identity is made of.
var probeKinds = []schema.GroupVersionResource{
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
}

// sweepProbes deletes probe roles and bindings of control that an
// interrupted run left behind (a probe lives for seconds; younger ones may
// belong to a run going on now).
func sweepProbes(ctx context.Context, t Target, label string) {
	dc, err := dynamicClient(t)
	if err != nil {
		return
	}
	for _, gvr := range probeKinds {
		l, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: ProbeLabel + "=" + label})
		if err != nil {
			continue
		}
		for _, o := range l.Items {
			if time.Since(o.GetCreationTimestamp().Time) > probeLeftoverAge {
				_ = dc.Resource(gvr).Namespace(o.GetNamespace()).Delete(ctx, o.GetName(), metav1.DeleteOptions{})
			}
		}
	}
}

var dryRun = metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

// guardrailProbeTimeout bounds how long a probe waits for a new binding (of the
// probe identity's role, or of a guardrail up just applied) to take
// effect in the API server's informers.
const guardrailProbeTimeout = 15 * time.Second

// guardrailClient is the probe identity's side of a change: its typed and
// dynamic clients, and the name of its own role.
type guardrailClient struct {
	cs   kubernetes.Interface
	dyn  dynamic.Interface
	role string
}

// probeFunc sends one change as the probe identity.
type probeFunc func(p guardrailClient) error

// probeGuardrail sends the forbidden and the compliant change as the
// probe identity. The forbidden one must be refused by the guardrail
// (its message names the control), or, when the guardrail warns under an
// exception, admitted with the guardrail's warning; the compliant one must
// be admitted.
func probeGuardrail(ctx context.Context, t Target, g *hardening.Guardrail, ns string, rules []rbacv1.PolicyRule,
	forbidden, compliant probeFunc, what, ok string, r *findings) {
	id, err := newProbeIdentity(ctx, t, g.Control, ns, rules)
	if err != nil {
		r.errorf("probe identity for %s: %v", g.Control, err)
		return
	}
	defer id.cleanup()
	tag := string(g.Control) + ":"
	// rbacDenied: the probe identity's own rights are not effective yet.
	rbacDenied := func(err error) bool { return apierrors.IsForbidden(err) && !strings.Contains(err.Error(), tag) }
	ev := Evidence{Object: what, Field: "server-side dry-run create as a user holding only the rights it needs", Want: "refused by " + g.Name}
	deadline := time.Now().Add(guardrailProbeTimeout)
	for {
		id.warnings.take()
		err = forbidden(id.client())
		warned := slices.ContainsFunc(id.warnings.take(), func(w string) bool { return strings.Contains(w, tag) })
		switch {
		case err != nil && strings.Contains(err.Error(), tag):
			ev.Got = "refused: " + firstLine(err.Error(), 160)
			if g.Warn {
				r.fail(ev, fmt.Sprintf("the %s guardrail refuses although the blueprint has it warn (%s)", g.Control, g.WarnBecause))
			} else {
				r.ok(ev)
			}
		case err == nil && g.Warn && warned:
			ev.Want, ev.Got = "admitted with the guardrail's warning ("+g.WarnBecause+")", "admitted with a warning"
			r.warn(ev, fmt.Sprintf("%s is admitted with a warning: %s", what, g.WarnBecause))
		case (err == nil || rbacDenied(err)) && time.Now().Before(deadline):
			time.Sleep(250 * time.Millisecond)
			continue
		case err == nil:
			ev.Got = "admitted"
			if warned {
				ev.Got = "admitted with a warning"
			}
			r.fail(ev, fmt.Sprintf("%s is admitted: the %s guardrail is not enforced", what, g.Control))
		default:
			r.errorf("%s: %v", what, err)
		}
		break
	}
	ev = Evidence{Object: ok, Field: "server-side dry-run create as the same user", Want: "admitted"}
	deadline = time.Now().Add(guardrailProbeTimeout)
	for {
		err = compliant(id.client())
		switch {
		case err == nil:
			ev.Got = "admitted"
			r.ok(ev)
		case strings.Contains(err.Error(), tag):
			ev.Got = "refused: " + firstLine(err.Error(), 160)
			r.fail(ev, fmt.Sprintf("the %s guardrail refuses a compliant change (%s): it is not the rendered one", g.Control, ok))
		case rbacDenied(err) && time.Now().Before(deadline):
			time.Sleep(250 * time.Millisecond)
			continue
		default:
			r.errorf("%s: %v", ok, err)
		}
		break
	}
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// probeNamespace is where namespaced probes run: the first workload
// namespace (default is always one).
func probeNamespace(info Info) string { return hardening.WorkloadNamespaces(info.Spec)[0] }

func restrictedPodSpec(image string) corev1.PodSpec {
	no, yes := false, true
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "canary", Image: image, SecurityContext: &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes,
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}}}}
}

// compliantImage is a canary image the image guardrail admits: from the
// first allowed registry (or an invalid one when any is allowed), pinned
// by digest.
func compliantImage(info Info) string {
	if regs := hardening.AllowedRegistries(info.Spec, info.OwnImages); len(regs) > 0 {
		return regs[0] + "/secprov-canary" + canaryDigest
	}
	return "registry.invalid/secprov/canary" + canaryDigest
}

// canaryDigest pins canary images; they are never pulled (dry runs).
var canaryDigest = "@sha256:5ec9" + strings.Repeat("0", 60)

// checkImagesGuardrail (SP-ADM-001): a pod from outside the allowed
// registries (or by tag where digests are required) is refused, a
// compliant one admitted, and no live pod or pod template breaks the
// rules.
func checkImagesGuardrail(ctx context.Context, t Target) Outcome {
	info := t.Info()
	g, _, r, end := startGuardrailCheck(ctx, t, blueprints.GuardrailImages)
	if end != nil {
		return *end
	}
	ns := probeNamespace(info)
	regs := hardening.AllowedRegistries(info.Spec, info.OwnImages)
	good, bad := compliantImage(info), "registry.invalid/secprov/canary:1"
	if len(regs) > 0 && info.Spec.DigestRequired() {
		bad = "registry.invalid/secprov/canary" + canaryDigest
	}
	pod := func(image string) probeFunc {
		return func(p guardrailClient) error {
			c := p.cs
			_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: canaryName("pod")}, Spec: restrictedPodSpec(image)}, dryRun)
			return err
		}
	}
	probeGuardrail(ctx, t, g, ns, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}},
		pod(bad), pod(good), "Pod "+ns+" with image "+bad, "Pod "+ns+" with image "+good, r)
	judgeLiveImages(ctx, t, info, r)
	return r.outcome("images come only from " + strings.Join(regs, ", ") + digestNote(info))
}

func digestNote(info Info) string {
	if info.Spec.DigestRequired() {
		return ", pinned by digest; a foreign image is refused"
	}
	return "; a foreign image is refused"
}

// podSpecHolders are the kinds that carry a pod spec, and where.
var podSpecHolders = []struct {
	gvr  schema.GroupVersionResource
	kind string
	path []string
}{
	{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "Pod", []string{"spec"}},
	{schema.GroupVersionResource{Version: "v1", Resource: "podtemplates"}, "PodTemplate", []string{"template", "spec"}},
	{schema.GroupVersionResource{Version: "v1", Resource: "replicationcontrollers"}, "ReplicationController", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, "ReplicaSet", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, "StatefulSet", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, "DaemonSet", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, "Job", []string{"spec", "template", "spec"}},
	{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "CronJob", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// judgeLiveImages judges every pod and pod template of the cluster.
// Pods a controller owns are judged through their owner's template;
// mirror pods (owned by a Node) are judged themselves.
func judgeLiveImages(ctx context.Context, t Target, info Info, r *findings) {
	dc, err := dynamicClient(t)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	judged := 0
	for _, h := range podSpecHolders {
		l, err := dc.Resource(h.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.errorf("list %s: %v", h.gvr.Resource, err)
			continue
		}
		for _, o := range l.Items {
			if c := metav1.GetControllerOfNoCopy(&o); c != nil && c.Kind != "Node" {
				continue // judged through its owner
			}
			raw, found, err := unstructured.NestedMap(o.Object, h.path...)
			if err != nil || !found {
				continue // a holder without a template (validation refuses those)
			}
			var spec corev1.PodSpec
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &spec); err != nil {
				r.errorf("%s/%s/%s: %v", h.kind, o.GetNamespace(), o.GetName(), err)
				continue
			}
			judged++
			ref := h.kind + "/" + o.GetNamespace() + "/" + o.GetName()
			for _, c := range podContainers(&spec, strings.Join(h.path, ".")) {
				if why := hardening.JudgeImage(info.Spec, info.OwnImages, c.image); why != "" {
					r.fail(Evidence{Object: ref, Field: c.field, Want: "an allowed image", Got: c.image}, ref+" "+c.field+": "+why)
				}
			}
		}
	}
	r.ok(Evidence{Object: "every pod and pod template", Field: "images", Want: "allowed", Got: fmt.Sprintf("%d objects judged", judged)})
}

func dynamicClient(t Target) (dynamic.Interface, error) {
	cfg, err := t.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("admin REST config: %w", err)
	}
	return dynamic.NewForConfig(cfg)
}

type containerImage struct{ field, image string }

func podContainers(s *corev1.PodSpec, path string) []containerImage {
	var out []containerImage
	for _, c := range s.Containers {
		out = append(out, containerImage{fmt.Sprintf("%s.containers[%s]", path, c.Name), c.Image})
	}
	for _, c := range s.InitContainers {
		out = append(out, containerImage{fmt.Sprintf("%s.initContainers[%s]", path, c.Name), c.Image})
	}
	for _, c := range s.EphemeralContainers {
		out = append(out, containerImage{fmt.Sprintf("%s.ephemeralContainers[%s]", path, c.Name), c.Image})
	}
	return out
}

// checkPodSecurityGuardrail (SP-ADM-002): a namespace weaker than the
// cluster's Pod Security levels (or pinned to an old version) is refused,
// a compliant one admitted, and no live namespace outside the exempt ones
// is labelled weaker.
func checkPodSecurityGuardrail(ctx context.Context, t Target) Outcome {
	info := t.Info()
	g, cs, r, end := startGuardrailCheck(ctx, t, blueprints.GuardrailPodSecurity)
	if end != nil {
		return *end
	}
	ps := info.Spec.PodSecurity
	weak := map[string]string{hardening.PodSecurityLabelKey + "enforce-version": "v1.0"}
	what := "Namespace pinned to Pod Security v1.0"
	if ps.Enforce != "privileged" {
		weak[hardening.PodSecurityLabelKey+"enforce"] = "privileged"
		what = "Namespace labelled enforce=privileged, pinned to v1.0"
	}
	ns := func(labels map[string]string) probeFunc {
		return func(p guardrailClient) error {
			c := p.cs
			_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: canaryName("ns"), Labels: labels}}, dryRun)
			return err
		}
	}
	probeGuardrail(ctx, t, g, "", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}}},
		ns(weak), ns(map[string]string{hardening.PodSecurityLabelKey + "enforce": ps.Enforce, hardening.PodSecurityLabelKey + "enforce-version": "latest"}),
		what, "Namespace labelled enforce="+ps.Enforce, r)
	l, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list namespaces: %v", err)
	} else {
		for _, n := range l.Items {
			for _, why := range hardening.JudgeNamespaceLabels(info.Spec, n.Name, n.Labels) {
				r.fail(Evidence{Object: "Namespace/" + n.Name, Field: "labels", Want: "no weaker than the cluster's Pod Security levels", Got: why},
					"namespace "+n.Name+": "+why)
			}
		}
		r.ok(Evidence{Object: "every namespace", Field: "Pod Security labels", Want: "no weaker than the cluster's", Got: fmt.Sprintf("%d judged", len(l.Items))})
	}
	return r.outcome("no namespace may be labelled weaker than the cluster's Pod Security levels, and none is")
}

// rbacDefaults marks the roles and bindings Kubernetes bootstraps itself.
const rbacDefaults = "kubernetes.io/bootstrapping"

// kubeadmClusterInfo is kubeadm's binding that lets system:anonymous read
// the cluster-info ConfigMap in kube-public (for node bootstrap); with
// anonymous authentication off (SP-APISRV-001) nobody is anonymous.
const kubeadmClusterInfo = "kube-public/kubeadm:bootstrap-signer-clusterinfo"

// checkRBACGuardrail (SP-ADM-003): a binding to everyone is refused when
// sent by a user who may create bindings of a narrow role, a binding to a
// named user admitted; no live role outside Kubernetes' own grants
// escalate, bind or impersonate, and no live binding binds everyone.
// Bindings of admin roles are SP-RBAC-001's.
func checkRBACGuardrail(ctx context.Context, t Target) Outcome {
	info := t.Info()
	g, cs, r, end := startGuardrailCheck(ctx, t, blueprints.GuardrailRBAC)
	if end != nil {
		return *end
	}
	ns := probeNamespace(info)
	// The probe binds its own role (RBAC lets a user bind a role whose
	// rights it holds): to everyone is forbidden, to one user is not.
	binding := func(subject rbacv1.Subject) probeFunc {
		return func(p guardrailClient) error {
			c, role := p.cs, p.role
			_, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: canaryName("rb")},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role}, Subjects: []rbacv1.Subject{subject}}, dryRun)
			return err
		}
	}
	rules := []rbacv1.PolicyRule{{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}
	probeGuardrail(ctx, t, g, ns, rules,
		binding(rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}),
		binding(rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "secprov:verify:nobody"}),
		"RoleBinding "+ns+" of a narrow role to Group system:authenticated", "RoleBinding "+ns+" of the same role to one user", r)

	roles, err := cs.RbacV1().Roles("").List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list roles: %v", err)
		return r.outcome("")
	}
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list cluster roles: %v", err)
		return r.outcome("")
	}
	judgeRole := func(ref string, m metav1.ObjectMeta, rules []rbacv1.PolicyRule) {
		if m.Labels[rbacDefaults] != "" || m.Labels[ProbeLabel] != "" {
			return
		}
		var rr []hardening.RoleRule
		for _, x := range rules {
			rr = append(rr, hardening.RoleRule{Verbs: x.Verbs, Resources: x.Resources})
		}
		for _, why := range hardening.JudgeRoleRules(rr) {
			if strings.Contains(why, "every verb on every resource") {
				continue // an admin role: who holds it is SP-RBAC-001's
			}
			r.fail(Evidence{Object: ref, Field: "rules", Want: "no escalate, bind or impersonate", Got: why}, ref+" "+why)
		}
	}
	for _, x := range roles.Items {
		judgeRole("Role/"+x.Namespace+"/"+x.Name, x.ObjectMeta, x.Rules)
	}
	for _, x := range crs.Items {
		if x.AggregationRule == nil {
			judgeRole("ClusterRole/"+x.Name, x.ObjectMeta, x.Rules)
		}
	}
	rbs, err := cs.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list role bindings: %v", err)
		return r.outcome("")
	}
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list cluster role bindings: %v", err)
		return r.outcome("")
	}
	judgeBinding := func(ref, key string, m metav1.ObjectMeta, subjects []rbacv1.Subject) {
		if m.Labels[rbacDefaults] != "" || key == kubeadmClusterInfo {
			return
		}
		var ss []hardening.Subject
		for _, s := range subjects {
			ss = append(ss, hardening.Subject{Kind: s.Kind, Name: s.Name})
		}
		for _, why := range hardening.JudgeBinding("", "", ss) {
			r.fail(Evidence{Object: ref, Field: "subjects", Want: "named users, groups or service accounts", Got: why}, ref+" "+why)
		}
	}
	for _, x := range rbs.Items {
		judgeBinding("RoleBinding/"+x.Namespace+"/"+x.Name, x.Namespace+"/"+x.Name, x.ObjectMeta, x.Subjects)
	}
	for _, x := range crbs.Items {
		judgeBinding("ClusterRoleBinding/"+x.Name, x.Name, x.ObjectMeta, x.Subjects)
	}
	r.ok(Evidence{Object: "every role and binding", Field: "rules, subjects", Want: "no escalation verbs, nobody binds everyone",
		Got: fmt.Sprintf("%d roles, %d bindings judged", len(roles.Items)+len(crs.Items), len(rbs.Items)+len(crbs.Items))})
	return r.outcome("no binding to cluster-admin or everyone and no escalation rights can be created, and none exists")
}

// checkNetworkGuardrail (SP-ADM-004): a NetworkPolicy that admits every
// namespace is refused, a narrow one admitted, and no live NetworkPolicy
// other than those secprov renders from spec.network breaks the rules.
func checkNetworkGuardrail(ctx context.Context, t Target) Outcome {
	info := t.Info()
	g, cs, r, end := startGuardrailCheck(ctx, t, blueprints.GuardrailNetwork)
	if end != nil {
		return *end
	}
	ns := probeNamespace(info)
	np := func(peer networkingv1.NetworkPolicyPeer) probeFunc {
		return func(p guardrailClient) error {
			c := p.cs
			_, err := c.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: canaryName("np")},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{peer}}}}}, dryRun)
			return err
		}
	}
	probeGuardrail(ctx, t, g, ns, []rbacv1.PolicyRule{{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"create"}}},
		np(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}),
		np(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "secprov-canary"}}}),
		"NetworkPolicy "+ns+" admitting every namespace", "NetworkPolicy "+ns+" admitting one labelled pod", r)

	objs, err := hardening.Objects(info.Spec, info.Rendering)
	if err != nil {
		return Errorf("render objects: %v", err)
	}
	rendered := map[string]bool{}
	for _, o := range objs {
		if p, ok := o.Object.(*networkingv1.NetworkPolicy); ok {
			rendered[p.Namespace+"/"+p.Name] = true
		}
	}
	for _, u := range renderedCilium(objs) {
		rendered[ciliumRef(u)] = true
	}
	if ciliumPoliciesServed(cs) {
		judgeCiliumPolicies(ctx, t, g, ns, rendered, r)
	}
	l, err := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		r.errorf("list network policies: %v", err)
		return r.outcome("")
	}
	judged := 0
	for _, p := range l.Items {
		if rendered[p.Namespace+"/"+p.Name] && p.Labels[hardening.ManagedByLabel] == hardening.ManagedByValue {
			continue // secprov's own, compared with the blueprint by SP-NET-002/003
		}
		judged++
		ref := "NetworkPolicy/" + p.Namespace + "/" + p.Name
		reportBroadPolicy(r, g, ref, hardening.JudgeNetworkPolicy(ingressRules(p.Spec.Ingress), egressRules(p.Spec.Egress)))
	}
	r.ok(Evidence{Object: "every NetworkPolicy not rendered by secprov", Field: "peers", Want: "narrow", Got: fmt.Sprintf("%d judged", judged)})
	return r.outcome("no NetworkPolicy opening a namespace to everything can be created, and none exists")
}

// reportBroadPolicy fails (or, under the guardrail's exception, warns
// about) each reason a live network policy breaks the guardrail.
func reportBroadPolicy(r *findings, g *hardening.Guardrail, ref string, whys []string) {
	for _, why := range whys {
		ev := Evidence{Object: ref, Field: "spec", Want: "named, narrow peers", Got: why}
		if g.Warn {
			r.warn(ev, ref+" "+why+" ("+g.WarnBecause+")")
		} else {
			r.fail(ev, ref+" "+why)
		}
	}
}

// Cilium's policy kinds, judged by the same guardrail where Cilium runs.
var (
	ciliumPolicyGVR            = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}
	ciliumClusterwidePolicyGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"}
)

// ciliumPoliciesServed says whether the cluster serves Cilium's policy
// kinds (Cilium is its CNI).
func ciliumPoliciesServed(cs kubernetes.Interface) bool {
	l, err := cs.Discovery().ServerResourcesForGroupVersion("cilium.io/v2")
	if err != nil {
		return false
	}
	return slices.ContainsFunc(l.APIResources, func(r metav1.APIResource) bool { return r.Name == ciliumPolicyGVR.Resource })
}

// judgeCiliumPolicies is SP-ADM-004 for Cilium's own kinds: a
// CiliumNetworkPolicy sending to the world is refused, one naming a
// labelled pod admitted, and every live Cilium policy complies.
func judgeCiliumPolicies(ctx context.Context, t Target, g *hardening.Guardrail, ns string, rendered map[string]bool, r *findings) {
	cnp := func(spec map[string]any) probeFunc {
		return func(p guardrailClient) error {
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
				"metadata": map[string]any{"name": canaryName("cnp")}, "spec": spec}}
			_, err := p.dyn.Resource(ciliumPolicyGVR).Namespace(ns).Create(ctx, obj, dryRun)
			return err
		}
	}
	canary := map[string]any{"matchLabels": map[string]any{"app": "secprov-canary"}}
	probeGuardrail(ctx, t, g, ns, []rbacv1.PolicyRule{{APIGroups: []string{"cilium.io"}, Resources: []string{ciliumPolicyGVR.Resource}, Verbs: []string{"create"}}},
		cnp(map[string]any{"endpointSelector": map[string]any{}, "egress": []any{map[string]any{"toEntities": []any{"world"}}}}),
		cnp(map[string]any{"endpointSelector": canary, "egress": []any{map[string]any{"toEndpoints": []any{canary}}}}),
		"CiliumNetworkPolicy "+ns+" sending to the world", "CiliumNetworkPolicy "+ns+" sending to one labelled pod", r)

	dc, err := dynamicClient(t)
	if err != nil {
		r.errorf("dynamic client: %v", err)
		return
	}
	judged := 0
	for _, k := range []struct {
		gvr         schema.GroupVersionResource
		kind        string
		clusterwide bool
	}{{ciliumPolicyGVR, "CiliumNetworkPolicy", false}, {ciliumClusterwidePolicyGVR, "CiliumClusterwideNetworkPolicy", true}} {
		l, err := dc.Resource(k.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.errorf("list %s: %v", k.gvr.Resource, err)
			continue
		}
		for _, o := range l.Items {
			ref := k.kind + "/" + o.GetName()
			if !k.clusterwide {
				ref = k.kind + "/" + o.GetNamespace() + "/" + o.GetName()
			}
			if rendered[ref] && o.GetLabels()[hardening.ManagedByLabel] == hardening.ManagedByValue {
				continue // secprov's own, compared with the blueprint by SP-NET-002/003
			}
			judged++
			reportBroadPolicy(r, g, ref, hardening.JudgeCiliumPolicy(o.Object, k.clusterwide))
		}
	}
	r.ok(Evidence{Object: "every Cilium network policy", Field: "peers", Want: "narrow", Got: fmt.Sprintf("%d judged", judged)})
}

func peersOf(ps []networkingv1.NetworkPolicyPeer) []hardening.Peer {
	var out []hardening.Peer
	for _, p := range ps {
		hp := hardening.Peer{}
		if p.IPBlock != nil {
			hp.CIDR = p.IPBlock.CIDR
		}
		if p.NamespaceSelector != nil {
			hp.NamespaceSelector = &hardening.Selector{Empty: emptySelector(p.NamespaceSelector)}
		}
		if p.PodSelector != nil {
			hp.PodSelector = &hardening.Selector{Empty: emptySelector(p.PodSelector)}
		}
		out = append(out, hp)
	}
	return out
}

func ingressRules(rs []networkingv1.NetworkPolicyIngressRule) []hardening.Rule {
	var out []hardening.Rule
	for _, r := range rs {
		out = append(out, hardening.Rule{Peers: peersOf(r.From)})
	}
	return out
}

func egressRules(rs []networkingv1.NetworkPolicyEgressRule) []hardening.Rule {
	var out []hardening.Rule
	for _, r := range rs {
		out = append(out, hardening.Rule{Peers: peersOf(r.To)})
	}
	return out
}
