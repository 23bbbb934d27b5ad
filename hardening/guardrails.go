package hardening

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Admission guardrails: one ValidatingAdmissionPolicy and its binding per
// control (SP-ADM-001..004), rendered from the blueprint. The policies are
// CEL run by the API server itself: no webhook, no extra component. Every
// message starts with the control ID, so a refused change names what
// refused it.
const (
	ImagesGuardrail      = "secprov-images"
	PodSecurityGuardrail = "secprov-pod-security-labels"
	RBACGuardrail        = "secprov-rbac"
	NetworkGuardrail     = "secprov-network-policy"

	// ControlLabel names the control a guardrail implements.
	ControlLabel = "secprov.dev/control"
	// ExceptionAnnotation on a binding quotes the exception (or the mode)
	// that makes it warn instead of deny.
	ExceptionAnnotation = "secprov.dev/warn-because"
)

// Who the guardrails do not judge is part of the catalog
// (blueprints.GuardrailExempt*), so review --list-rules and CONTROLS.md
// print the same lists the policies carry.
var (
	GuardrailExemptUsers        = blueprints.GuardrailExemptUsers
	GuardrailExemptUserPrefixes = blueprints.GuardrailExemptUserPrefixes
	GuardrailExemptGroups       = blueprints.GuardrailExemptGroups
)

// GuardrailInputs is what the guardrails need besides the blueprint.
type GuardrailInputs struct {
	// OwnImages are the images secprov itself runs in the cluster; their
	// registries are allowed beside spec.images.allowedRegistries.
	OwnImages []string
	// Now decides which exceptions are in force.
	Now time.Time
}

// Guardrail is one rendered admission guardrail.
type Guardrail struct {
	Control blueprints.ControlID
	Name    string
	Policy  *admissionv1.ValidatingAdmissionPolicy
	Binding *admissionv1.ValidatingAdmissionPolicyBinding
	// Warn: the binding only warns and audits, because of WarnBecause
	// (an exception or guardrails.mode: warn).
	Warn        bool
	WarnBecause string
}

// AllowedRegistries are the registry patterns the image guardrail admits:
// the blueprint's, then the registries of secprov's own images. Empty
// when the blueprint restricts no registry.
func AllowedRegistries(spec v1alpha1.Spec, own []string) []string {
	if len(spec.Images.AllowedRegistries) == 0 {
		return nil
	}
	out := slices.Clone(spec.Images.AllowedRegistries)
	for _, img := range own {
		if r := ImageRepository(img); r != "" && !slices.ContainsFunc(out, func(p string) bool { return RegistryAdmits(p, NormalizeImage(img)) }) {
			out = append(out, r)
		}
	}
	return out
}

// Guardrails renders the blueprint's admission guardrails, in apply order.
// The image guardrail exists only when the blueprint restricts images
// (allowed registries or digests).
func Guardrails(spec v1alpha1.Spec, in GuardrailInputs) ([]Guardrail, error) {
	var out []Guardrail
	registries := AllowedRegistries(spec, in.OwnImages)
	for _, r := range registries {
		if !blueprints.IsRegistryPattern(r) {
			return nil, fmt.Errorf("registry %q is not a registry pattern", r)
		}
	}
	if len(registries) > 0 || spec.DigestRequired() {
		out = append(out, Guardrail{Control: blueprints.GuardrailImages, Name: ImagesGuardrail,
			Policy: imagesPolicy(registries, spec.DigestRequired())})
	}
	for _, ns := range spec.PodSecurity.ExemptNamespaces {
		if !blueprints.IsDNSLabel(ns) {
			return nil, fmt.Errorf("exempt namespace %q is not a DNS label", ns)
		}
	}
	pss, err := podSecurityPolicy(spec)
	if err != nil {
		return nil, err
	}
	out = append(out,
		Guardrail{Control: blueprints.GuardrailPodSecurity, Name: PodSecurityGuardrail, Policy: pss},
		Guardrail{Control: blueprints.GuardrailRBAC, Name: RBACGuardrail, Policy: rbacPolicy()},
		Guardrail{Control: blueprints.GuardrailNetwork, Name: NetworkGuardrail, Policy: networkPolicyGuardrail()},
	)
	for i := range out {
		g := &out[i]
		if x, ok := blueprints.ActiveException(spec.Exceptions, g.Control, in.Now); ok {
			g.Warn, g.WarnBecause = true, fmt.Sprintf("exception for %s until %s: %s", g.Control, x.Expires, x.Justification)
		} else if spec.Guardrails.Mode == v1alpha1.GuardrailsWarn {
			g.Warn, g.WarnBecause = true, "spec.guardrails.mode is warn"
		}
		g.Policy.TypeMeta = metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"}
		g.Policy.ObjectMeta = meta("", g.Name, map[string]string{ControlLabel: string(g.Control)})
		g.Policy.Spec.FailurePolicy = ptr(admissionv1.Fail)
		g.Policy.Spec.MatchConditions = append(exemptConditions(), g.Policy.Spec.MatchConditions...)
		actions := []admissionv1.ValidationAction{admissionv1.Deny}
		var ann map[string]string
		if g.Warn {
			actions = []admissionv1.ValidationAction{admissionv1.Warn, admissionv1.Audit}
			ann = map[string]string{ExceptionAnnotation: g.WarnBecause}
		}
		g.Binding = &admissionv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
			ObjectMeta: meta("", g.Name, map[string]string{ControlLabel: string(g.Control)}),
			Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: g.Name, ValidationActions: actions},
		}
		g.Binding.Annotations = ann
	}
	return out, nil
}

// GuardrailObjects are the guardrails as objects to apply: every policy,
// then every binding, so no binding ever names a missing policy.
func GuardrailObjects(gs []Guardrail) []Object {
	var out []Object
	for _, g := range gs {
		out = append(out, Object{Controls: []blueprints.ControlID{g.Control}, Object: g.Policy})
	}
	for _, g := range gs {
		out = append(out, Object{Controls: []blueprints.ControlID{g.Control}, Object: g.Binding})
	}
	return out
}

// exemptConditions are the match conditions every guardrail starts with:
// a request is judged only when it is not made by an exempt identity.
func exemptConditions() []admissionv1.MatchCondition {
	var parts []string
	parts = append(parts, "!(request.userInfo.username in "+celList(GuardrailExemptUsers)+")")
	for _, p := range GuardrailExemptUserPrefixes {
		parts = append(parts, "!request.userInfo.username.startsWith("+celString(p)+")")
	}
	for _, g := range GuardrailExemptGroups {
		parts = append(parts, "!(has(request.userInfo.groups) && "+celString(g)+" in request.userInfo.groups)")
	}
	return []admissionv1.MatchCondition{{Name: "not-an-exempt-identity", Expression: strings.Join(parts, " && ")}}
}

func rule(group string, resources ...string) admissionv1.NamedRuleWithOperations {
	return admissionv1.NamedRuleWithOperations{RuleWithOperations: admissionv1.RuleWithOperations{
		Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
		Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: resources},
	}}
}

// howToExcept ends every message: what a person who needs the change does.
func howToExcept(id blueprints.ControlID) string {
	return fmt.Sprintf("to admit it anyway, add a justified, expiring exception for %s to spec.exceptions of the blueprint (it then warns instead)", id)
}

// imagesPolicy (SP-ADM-001) judges every container image of Pods and of
// every pod template owner. An image is first resolved as the container
// runtime would (no registry host: docker.io; no path on docker.io:
// library/), then matched against the registry patterns.
func imagesPolicy(registries []string, digest bool) *admissionv1.ValidatingAdmissionPolicy {
	id := blueprints.GuardrailImages
	// The pod spec and the path to it, by kind. Objects reach validating
	// admission after schema validation, so every template is present.
	podSpec := `object.kind == 'Pod' ? [object.spec] : ` +
		`object.kind == 'CronJob' ? [object.spec.jobTemplate.spec.template.spec] : ` +
		`object.kind == 'PodTemplate' ? [object.template.spec] : ` +
		`has(object.spec.template) && has(object.spec.template.spec) ? [object.spec.template.spec] : []`
	specPath := `object.kind == 'Pod' ? 'spec' : object.kind == 'CronJob' ? 'spec.jobTemplate.spec.template.spec' : ` +
		`object.kind == 'PodTemplate' ? 'template.spec' : 'spec.template.spec'`
	list := func(field string) string {
		return fmt.Sprintf(`(has(s.%[1]s) ? s.%[1]s.map(c, {'field': string(variables.specPath) + '.%[1]s[' + string(c.name) + ']', 'image': string(c.image)}) : [])`, field)
	}
	containers := `variables.podSpecs.size() == 0 ? [] : [variables.podSpecs[0]].map(s, ` +
		list("containers") + " + " + list("initContainers") + " + " + list("ephemeralContainers") + `)[0]`
	// host/ is a registry host when it has a dot or a port, or is
	// localhost; otherwise the image is on Docker Hub.
	hosted := `variables.containers.map(c, {'field': c.field, 'image': c.image, 'ref': ` +
		`c.image.indexOf('/') > 0 && (c.image.substring(0, c.image.indexOf('/')).contains('.') || ` +
		`c.image.substring(0, c.image.indexOf('/')).contains(':') || c.image.substring(0, c.image.indexOf('/')) == 'localhost') ` +
		`? c.image : 'docker.io/' + c.image})`
	refs := `variables.hosted.map(c, {'field': c.field, 'image': c.image, 'ref': ` +
		`c.ref.startsWith('docker.io/') && !c.ref.substring(10).contains('/') ? 'docker.io/library/' + c.ref.substring(10) : c.ref})`
	// The same resolution over bare strings: what the validations read.
	// Variables are evaluated lazily, so the maps above (field names for
	// the messages) cost nothing on an admitted request.
	lean := func(field string) string {
		return fmt.Sprintf(`(has(s.%[1]s) ? s.%[1]s.map(c, c.image) : [])`, field)
	}
	images := `variables.podSpecs.size() == 0 ? [] : [variables.podSpecs[0]].map(s, ` +
		lean("containers") + " + " + lean("initContainers") + " + " + lean("ephemeralContainers") + `)[0]`
	hostedImages := `variables.images.map(i, i.indexOf('/') > 0 && (i.substring(0, i.indexOf('/')).contains('.') || ` +
		`i.substring(0, i.indexOf('/')).contains(':') || i.substring(0, i.indexOf('/')) == 'localhost') ? i : 'docker.io/' + i)`
	imageRefs := `variables.hostedImages.map(r, r.startsWith('docker.io/') && !r.substring(10).contains('/') ? 'docker.io/library/' + r.substring(10) : r)`
	p := &admissionv1.ValidatingAdmissionPolicy{Spec: admissionv1.ValidatingAdmissionPolicySpec{
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{
			rule("", "pods", "pods/ephemeralcontainers", "podtemplates", "replicationcontrollers"),
			rule("apps", "deployments", "replicasets", "statefulsets", "daemonsets"),
			rule("batch", "jobs", "cronjobs"),
		}},
		Variables: []admissionv1.Variable{
			{Name: "podSpecs", Expression: podSpec},
			{Name: "specPath", Expression: specPath},
			{Name: "containers", Expression: containers},
			{Name: "hosted", Expression: hosted},
			{Name: "refs", Expression: refs},
			{Name: "images", Expression: images},
			{Name: "hostedImages", Expression: hostedImages},
			{Name: "imageRefs", Expression: imageRefs},
		},
	}}
	if len(registries) > 0 {
		admitted := func(ref string) string {
			var admits []string
			for _, r := range registries {
				e := ref + ".startsWith(" + celString(r+"/") + ")"
				if strings.Contains(r, "/") {
					e = "(" + ref + " == " + celString(r) + " || " + ref + ".startsWith(" + celString(r+"/") + ") || " + ref + ".startsWith(" + celString(r+":") + ") || " + ref + ".startsWith(" + celString(r+"@") + "))"
				}
				admits = append(admits, e)
			}
			return strings.Join(admits, " || ")
		}
		admit := admitted("c.ref")
		p.Spec.Validations = append(p.Spec.Validations, admissionv1.Validation{
			Expression: "variables.imageRefs.all(r, " + admitted("r") + ")",
			Message:    fmt.Sprintf("%s: an image is not from an allowed registry (%s); %s", id, strings.Join(registries, ", "), howToExcept(id)),
			MessageExpression: fmt.Sprintf(`'%s: ' + variables.refs.filter(c, !(%s)).map(c, c.field + ' image ' + c.image + (c.ref != c.image ? ' (' + c.ref + ')' : '')).join(', ') + ' is not from an allowed registry (%s); %s'`,
				id, admit, strings.Join(registries, ", "), howToExcept(id)),
			Reason: ptr(metav1.StatusReasonForbidden),
		})
	}
	if digest {
		p.Spec.Validations = append(p.Spec.Validations, admissionv1.Validation{
			Expression: `variables.imageRefs.all(r, r.matches('@sha256:[0-9a-f]{64}$'))`,
			Message:    fmt.Sprintf("%s: an image is not pinned by digest (spec.images.requireDigest); pin it as IMAGE@sha256:DIGEST; %s", id, howToExcept(id)),
			MessageExpression: fmt.Sprintf(`'%s: ' + variables.refs.filter(c, !c.ref.matches('@sha256:[0-9a-f]{64}$')).map(c, c.field + ' image ' + c.image).join(', ') + ' is not pinned by digest (spec.images.requireDigest); pin it as IMAGE@sha256:DIGEST; %s'`,
				id, howToExcept(id)),
			Reason: ptr(metav1.StatusReasonForbidden),
		})
	}
	return p
}

// pssLevels are the Pod Security levels, strongest first.
var pssLevels = []string{v1alpha1.PSSRestricted, v1alpha1.PSSBaseline, v1alpha1.PSSPrivileged}

// AtLeast returns the levels as strong as level or stronger.
func pssAtLeast(level string) []string {
	i := slices.Index(pssLevels, level)
	if i < 0 {
		return pssLevels[:1]
	}
	return pssLevels[:i+1]
}

// MinPodSecurityVersionMinor is the oldest Pod Security version a
// namespace may pin (pod-security.kubernetes.io/MODE-version): the
// cluster's own minor version. latest is always allowed.
func MinPodSecurityVersionMinor(spec v1alpha1.Spec) (int, error) {
	v := strings.TrimPrefix(spec.Kubernetes.Version, "v")
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return 0, fmt.Errorf("kubernetes version %q has no minor version", spec.Kubernetes.Version)
	}
	return strconv.Atoi(parts[1])
}

// podSecurityPolicy (SP-ADM-002): no namespace outside the exempt ones is
// created or relabelled with a Pod Security level weaker than the
// cluster's, or a version pinned older than the cluster's.
func podSecurityPolicy(spec v1alpha1.Spec) (*admissionv1.ValidatingAdmissionPolicy, error) {
	id := blueprints.GuardrailPodSecurity
	minor, err := MinPodSecurityVersionMinor(spec)
	if err != nil {
		return nil, err
	}
	p := &admissionv1.ValidatingAdmissionPolicy{Spec: admissionv1.ValidatingAdmissionPolicySpec{
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{rule("", "namespaces")}},
		MatchConditions: []admissionv1.MatchCondition{{Name: "not-an-exempt-namespace",
			Expression: "!(object.metadata.name in " + celList(spec.PodSecurity.ExemptNamespaces) + ")"}},
		Variables: []admissionv1.Variable{{Name: "labels", Expression: "has(object.metadata.labels) ? object.metadata.labels : {}"}},
	}}
	for _, m := range []struct{ mode, level string }{
		{"enforce", spec.PodSecurity.Enforce}, {"audit", spec.PodSecurity.Audit}, {"warn", spec.PodSecurity.Warn},
	} {
		key := PodSecurityLabelKey + m.mode
		allowed := pssAtLeast(m.level)
		p.Spec.Validations = append(p.Spec.Validations, admissionv1.Validation{
			Expression: fmt.Sprintf("!(%s in variables.labels) || variables.labels[%s] in %s", celString(key), celString(key), celList(allowed)),
			Message:    fmt.Sprintf("%s: label %s is weaker than the cluster's %s level %s; %s", id, key, m.mode, m.level, howToExcept(id)),
			MessageExpression: fmt.Sprintf(`'%s: namespace ' + object.metadata.name + ' label %s=' + variables.labels[%s] + ' is weaker than the cluster\'s %s level %s (spec.podSecurity.%s); remove the label or set it to %s; %s'`,
				id, key, celString(key), m.mode, m.level, m.mode, strings.Join(allowed, " or "), howToExcept(id)),
			Reason: ptr(metav1.StatusReasonForbidden),
		})
		vkey := key + "-version"
		p.Spec.Validations = append(p.Spec.Validations, admissionv1.Validation{
			Expression: fmt.Sprintf(`!(%[1]s in variables.labels) || variables.labels[%[1]s] == 'latest' || (variables.labels[%[1]s].matches('^v1[.][0-9]+$') && int(variables.labels[%[1]s].substring(3)) >= %[2]d)`, celString(vkey), minor),
			Message:    fmt.Sprintf("%s: label %s pins a Pod Security version older than v1.%d; %s", id, vkey, minor, howToExcept(id)),
			MessageExpression: fmt.Sprintf(`'%s: namespace ' + object.metadata.name + ' label %s=' + variables.labels[%s] + ' pins a Pod Security version older than the cluster (v1.%d); use latest; %s'`,
				id, vkey, celString(vkey), minor, howToExcept(id)),
			Reason: ptr(metav1.StatusReasonForbidden),
		})
	}
	return p, nil
}

// EveryoneGroups are subjects that stand for everyone (or every service
// account): nothing may be bound to them.
var EveryoneGroups = []string{"system:authenticated", "system:unauthenticated", "system:serviceaccounts", "system:masters"}

// EscalationVerbs let a holder grant or assume rights it does not have.
var EscalationVerbs = []string{"escalate", "bind", "impersonate"}

// rbacPolicy (SP-ADM-003): no binding to cluster-admin or to everyone, no
// role with every verb on every resource or with escalation verbs. A
// binding cannot be judged by the rules of the role it names (admission
// policies see one object); roles are judged when they are written.
func rbacPolicy() *admissionv1.ValidatingAdmissionPolicy {
	id := blueprints.GuardrailRBAC
	isBinding := "object.kind in ['RoleBinding', 'ClusterRoleBinding']"
	isRole := "object.kind in ['Role', 'ClusterRole']"
	everyone := fmt.Sprintf("s.kind == 'Group' && s.name in %s || s.kind == 'User' && s.name == 'system:anonymous'", celList(EveryoneGroups))
	return &admissionv1.ValidatingAdmissionPolicy{Spec: admissionv1.ValidatingAdmissionPolicySpec{
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{
			rule("rbac.authorization.k8s.io", "rolebindings", "clusterrolebindings", "roles", "clusterroles"),
		}},
		Validations: []admissionv1.Validation{
			{
				Expression: fmt.Sprintf("!(%s) || !(object.roleRef.kind == 'ClusterRole' && object.roleRef.name == 'cluster-admin')", isBinding),
				Message:    fmt.Sprintf("%s: a binding to cluster-admin; cluster administrators are named in spec.rbac.admins and bound by secprov; %s", id, howToExcept(id)),
				MessageExpression: fmt.Sprintf(`'%s: ' + object.kind + ' ' + object.metadata.name + ' binds roleRef cluster-admin; cluster administrators are named in spec.rbac.admins and bound by secprov; bind a narrower role; %s'`,
					id, howToExcept(id)),
				Reason: ptr(metav1.StatusReasonForbidden),
			},
			{
				Expression: fmt.Sprintf("!(%s) || !has(object.subjects) || !object.subjects.exists(s, %s)", isBinding, everyone),
				Message:    fmt.Sprintf("%s: a binding to everyone (%s or system:anonymous); %s", id, strings.Join(EveryoneGroups, ", "), howToExcept(id)),
				MessageExpression: fmt.Sprintf(`'%s: ' + object.kind + ' ' + object.metadata.name + ' binds subjects ' + object.subjects.filter(s, %s).map(s, s.kind + ' ' + s.name).join(', ') + ', which stand for everyone; name the users, groups or service accounts; %s'`,
					id, everyone, howToExcept(id)),
				Reason: ptr(metav1.StatusReasonForbidden),
			},
			{
				Expression: fmt.Sprintf("!(%s) || !has(object.rules) || !object.rules.exists(r, '*' in r.verbs && has(r.resources) && '*' in r.resources)", isRole),
				Message:    fmt.Sprintf("%s: a role granting every verb on every resource; %s", id, howToExcept(id)),
				MessageExpression: fmt.Sprintf(`'%s: ' + object.kind + ' ' + object.metadata.name + ' grants every verb (*) on every resource (*); list the resources and verbs it needs; %s'`,
					id, howToExcept(id)),
				Reason: ptr(metav1.StatusReasonForbidden),
			},
			{
				Expression: fmt.Sprintf("!(%s) || !has(object.rules) || !object.rules.exists(r, r.verbs.exists(v, v in %s))", isRole, celList(EscalationVerbs)),
				Message:    fmt.Sprintf("%s: a role granting %s; %s", id, strings.Join(EscalationVerbs, ", "), howToExcept(id)),
				MessageExpression: fmt.Sprintf(`'%s: ' + object.kind + ' ' + object.metadata.name + ' grants ' + object.rules.map(r, r.verbs.filter(v, v in %s)).filter(l, l.size() > 0).map(l, l.join(', ')).join(', ') + ', which let its holder take rights it does not have; %s'`,
					id, celList(EscalationVerbs), howToExcept(id)),
				Reason: ptr(metav1.StatusReasonForbidden),
			},
		},
	}}
}

// networkPolicyGuardrail (SP-ADM-004): no NetworkPolicy rule that admits
// every source or destination, every namespace, every pod of a namespace
// picked without a pod selector, or a CIDR as wide as the internet
// (IPv4 shorter than /8, IPv6 shorter than /32, as review judges). The
// same holds for Cilium's own policies (ciliumPolicyValidations): on a
// cluster without Cilium those rules match nothing.
func networkPolicyGuardrail() *admissionv1.ValidatingAdmissionPolicy {
	id := blueprints.GuardrailNetwork
	empty := func(sel string) string {
		return fmt.Sprintf("((!has(%[1]s.matchLabels) || %[1]s.matchLabels.size() == 0) && (!has(%[1]s.matchExpressions) || %[1]s.matchExpressions.size() == 0))", sel)
	}
	broad := "(has(p.ipBlock) && " + celHugeCIDR("p.ipBlock.cidr") + ") || " +
		"(has(p.namespaceSelector) && " + empty("p.namespaceSelector") + ") || " +
		"(has(p.namespaceSelector) && (!has(p.podSelector) || " + empty("p.podSelector") + "))"
	// Each expression judges NetworkPolicies only: a Cilium policy has
	// rules of another shape.
	onlyNP := func(expr string) string { return "request.resource.group != 'networking.k8s.io' || (" + expr + ")" }
	peers := func(dir, field string) string {
		return onlyNP(fmt.Sprintf("!has(object.spec.%[1]s) || object.spec.%[1]s.all(r, !has(r.%[2]s) || r.%[2]s.all(p, !(%[3]s)))", dir, field, broad))
	}
	named := func(dir, field string) string {
		return onlyNP(fmt.Sprintf("!has(object.spec.%[1]s) || object.spec.%[1]s.all(r, has(r.%[2]s) && r.%[2]s.size() > 0)", dir, field))
	}
	msg := func(what string) string {
		return fmt.Sprintf(`'%s: NetworkPolicy ' + object.metadata.namespace + '/' + object.metadata.name + ' %s; name the peer namespace and pods with label selectors, or a narrow CIDR (flows the whole cluster needs belong in the blueprint\'s spec.network.allow); %s'`, id, what, howToExcept(id))
	}
	v := func(expr, what string) admissionv1.Validation {
		return admissionv1.Validation{Expression: expr, Message: fmt.Sprintf("%s: a NetworkPolicy %s; %s", id, what, howToExcept(id)),
			MessageExpression: msg(what), Reason: ptr(metav1.StatusReasonForbidden)}
	}
	return &admissionv1.ValidatingAdmissionPolicy{Spec: admissionv1.ValidatingAdmissionPolicySpec{
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{
			rule("networking.k8s.io", "networkpolicies"),
			rule("cilium.io", "ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"),
		}},
		Variables: []admissionv1.Variable{{Name: "ciliumRules", Expression: "request.resource.group != 'cilium.io' ? [] : " +
			"(has(object.spec) ? [object.spec] : []) + (has(object.specs) ? object.specs : [])"}},
		Validations: append([]admissionv1.Validation{
			v(named("ingress", "from"), "has an ingress rule without from, which admits every source"),
			v(named("egress", "to"), "has an egress rule without to, which admits every destination"),
			v(peers("ingress", "from"), "admits every namespace, every pod of a namespace without a pod selector, or a CIDR as wide as the internet"),
			v(peers("egress", "to"), "sends to every namespace, every pod of a namespace without a pod selector, or a CIDR as wide as the internet"),
		}, ciliumPolicyValidations(id)...),
	}}
}

// celHugeCIDR is a CEL test of the CIDR string x: wider than /8 (IPv4) or
// /32 (IPv6). Anything that is not a CIDR is not judged here.
func celHugeCIDR(x string) string {
	return fmt.Sprintf("(isCIDR(%[1]s) && cidr(%[1]s).prefixLength() < (cidr(%[1]s).ip().family() == 4 ? 8 : 32))", x)
}

// Cilium policy semantics the guardrail relies on (pkg/policy/api of
// Cilium): a rule with ports but no peer field admits every peer on
// those ports; an empty rule admits nothing; in a CiliumNetworkPolicy an
// endpoint selector without a namespace label stays in the policy's
// namespace, in a clusterwide one it spans every namespace.
var (
	ciliumIngressPeers = []string{"fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "fromGroups", "fromNodes"}
	ciliumEgressPeers  = []string{"toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toGroups", "toNodes", "toFQDNs"}
	// CiliumBroadEntities are the entities that stand for every namespace
	// or the whole internet.
	CiliumBroadEntities = []string{"all", "world", "world-ipv4", "world-ipv6", "cluster"}
)

// Label keys of Cilium endpoint selectors: the pod's namespace name, and
// any key naming the namespace (its name or one of its labels).
const (
	ciliumNamespaceNameKey = `^((k8s|any):)?io[.]kubernetes[.]pod[.]namespace$`
	ciliumNamespaceKey     = `^((k8s|any):)?io[.](kubernetes[.]pod[.]namespace|cilium[.]k8s[.]namespace[.]labels[.].+)$`
	ciliumWorldKey         = `^reserved:(all|world|world-ipv4|world-ipv6)$`
)

var (
	ciliumNamespaceNameRE = regexp.MustCompile(ciliumNamespaceNameKey)
	ciliumNamespaceKeyRE  = regexp.MustCompile(ciliumNamespaceKey)
	ciliumWorldKeyRE      = regexp.MustCompile(ciliumWorldKey)
)

// ciliumPolicyValidations judge CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy rules as networkPolicyGuardrail judges
// NetworkPolicies. JudgeCiliumPolicy is the same in Go; the local
// guardrail test holds the two together against a real API server.
func ciliumPolicyValidations(id blueprints.ControlID) []admissionv1.Validation {
	keys := "((has(s.matchLabels) ? s.matchLabels.map(k, k) : []) + (has(s.matchExpressions) ? s.matchExpressions.map(e, e.key) : []))"
	broadSel := "(has(s.matchExpressions) && s.matchExpressions.exists(e, e.key.matches(" + celString(ciliumNamespaceNameKey) + ") && e.operator in ['Exists', 'NotIn', 'DoesNotExist'])) || " +
		"(" + keys + ".size() > 0 && " + keys + ".all(k, k.matches(" + celString(ciliumNamespaceKey) + "))) || " +
		keys + ".exists(k, k.matches(" + celString(ciliumWorldKey) + ")) || " +
		"(request.resource.resource == 'ciliumclusterwidenetworkpolicies' && !" + keys + ".exists(k, k.matches(" + celString(ciliumNamespaceKey) + ")))"
	perRule := func(dir, ruleExpr string) string {
		return fmt.Sprintf("variables.ciliumRules.all(c, !has(c.%[1]s) || c.%[1]s.all(r, %[2]s))", dir, ruleExpr)
	}
	noPeer := func(fields []string) string {
		var parts []string
		for _, f := range fields {
			parts = append(parts, "!has(r."+f+")")
		}
		return strings.Join(parts, " && ")
	}
	ports := "((has(r.toPorts) && r.toPorts.size() > 0) || (has(r.icmps) && r.icmps.size() > 0))"
	entities := func(f string) string {
		return fmt.Sprintf("(!has(r.%[1]s) || r.%[1]s.all(e, !(e in %[2]s)))", f, celList(CiliumBroadEntities))
	}
	cidrs := func(list, set string) string {
		return fmt.Sprintf("(!has(r.%[1]s) || r.%[1]s.all(x, !%[3]s)) && (!has(r.%[2]s) || r.%[2]s.all(x, !has(x.cidr) || !%[4]s))",
			list, set, celHugeCIDR("x"), celHugeCIDR("x.cidr"))
	}
	selectors := func(f string) string {
		return fmt.Sprintf("(!has(r.%[1]s) || r.%[1]s.all(s, !(%[2]s)))", f, broadSel)
	}
	msg := func(what string) string {
		return fmt.Sprintf(`'%s: ' + object.kind + ' ' + (has(object.metadata.namespace) ? object.metadata.namespace + '/' : '') + object.metadata.name + ' %s; name the peer namespace and pods with endpoint selectors, or a narrow CIDR (flows the whole cluster needs belong in the blueprint\'s spec.network.allow); %s'`, id, what, howToExcept(id))
	}
	v := func(expr, what string) admissionv1.Validation {
		return admissionv1.Validation{Expression: expr, Message: fmt.Sprintf("%s: a Cilium network policy %s; %s", id, what, howToExcept(id)),
			MessageExpression: msg(what), Reason: ptr(metav1.StatusReasonForbidden)}
	}
	return []admissionv1.Validation{
		v(perRule("ingress", "!("+noPeer(ciliumIngressPeers)+" && "+ports+")"), "has an ingress rule with ports and no peer, which admits every source"),
		v(perRule("egress", "!("+noPeer(ciliumEgressPeers)+" && "+ports+")"), "has an egress rule with ports and no peer, which admits every destination"),
		v(perRule("ingress", entities("fromEntities")+" && "+cidrs("fromCIDR", "fromCIDRSet")+" && "+selectors("fromEndpoints")),
			"admits every namespace, the world, every pod of a namespace without a pod label, or a CIDR as wide as the internet"),
		v(perRule("egress", entities("toEntities")+" && "+cidrs("toCIDR", "toCIDRSet")+" && "+selectors("toEndpoints")+
			" && (!has(r.toFQDNs) || r.toFQDNs.all(f, !has(f.matchPattern) || f.matchPattern != '*'))"),
			"sends to every namespace, the world, every name, every pod of a namespace without a pod label, or a CIDR as wide as the internet"),
	}
}

// celString quotes s as a CEL string literal. The guardrails quote only
// validated blueprint values (namespaces, registry patterns) and constants,
// so anything else is a bug.
func celString(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			panic(fmt.Sprintf("celString: control character in %q", s))
		}
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func celList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = celString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// NormalizeImage resolves an image reference as the container runtime
// does: no registry host (a first segment without '.' or ':' that is not
// localhost) means docker.io, and a single-segment Docker Hub name is in
// library/. The guardrail's CEL does the same; a test holds them together.
func NormalizeImage(image string) string {
	ref := image
	if i := strings.Index(image, "/"); i <= 0 || !(strings.ContainsAny(image[:i], ".:") || image[:i] == "localhost") {
		ref = "docker.io/" + image
	}
	if rest, ok := strings.CutPrefix(ref, "docker.io/"); ok && !strings.Contains(rest, "/") {
		ref = "docker.io/library/" + rest
	}
	return ref
}

// ImageRepository is the registry and repository of a normalized image,
// without tag or digest: the pattern that admits exactly that repository.
func ImageRepository(image string) string {
	ref := NormalizeImage(image)
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// RegistryAdmits reports whether a registry pattern admits a normalized
// image reference, as the guardrail does.
func RegistryAdmits(pattern, ref string) bool {
	if strings.HasPrefix(ref, pattern+"/") {
		return true
	}
	if !strings.Contains(pattern, "/") {
		return false
	}
	return ref == pattern || strings.HasPrefix(ref, pattern+":") || strings.HasPrefix(ref, pattern+"@")
}

// DigestPinned reports whether a normalized reference names a sha256
// digest, as the guardrail requires.
func DigestPinned(ref string) bool {
	i := strings.LastIndex(ref, "@sha256:")
	if i < 0 || len(ref)-i-len("@sha256:") != 64 {
		return false
	}
	for _, r := range ref[i+len("@sha256:"):] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// The Go judges below apply the guardrails' rules to objects that already
// exist, for verify's whole-cluster judgement. Each returns why an object
// breaks the rule ("" when it does not); tests hold them to the CEL.

// JudgeImage says why image breaks the image rules of spec (with the
// registries of own allowed, and own images themselves admitted as they
// are: secprov runs them through exempt identities).
func JudgeImage(spec v1alpha1.Spec, own []string, image string) string {
	ref := NormalizeImage(image)
	for _, o := range own {
		if ImageRepository(o) == ImageRepository(image) {
			return ""
		}
	}
	if regs := AllowedRegistries(spec, own); len(regs) > 0 && !slices.ContainsFunc(regs, func(p string) bool { return RegistryAdmits(p, ref) }) {
		return fmt.Sprintf("image %s (%s) is not from an allowed registry (%s)", image, ref, strings.Join(regs, ", "))
	}
	if spec.DigestRequired() && !DigestPinned(ref) {
		return fmt.Sprintf("image %s is not pinned by digest", image)
	}
	return ""
}

// JudgeNamespaceLabels says why a namespace's Pod Security labels are
// weaker than the cluster's (nil when they are not, or the namespace is
// exempt).
func JudgeNamespaceLabels(spec v1alpha1.Spec, name string, labels map[string]string) []string {
	if slices.Contains(spec.PodSecurity.ExemptNamespaces, name) {
		return nil
	}
	minor, _ := MinPodSecurityVersionMinor(spec)
	var out []string
	for _, m := range []struct{ mode, level string }{
		{"enforce", spec.PodSecurity.Enforce}, {"audit", spec.PodSecurity.Audit}, {"warn", spec.PodSecurity.Warn},
	} {
		key := PodSecurityLabelKey + m.mode
		if v, ok := labels[key]; ok && !slices.Contains(pssAtLeast(m.level), v) {
			out = append(out, fmt.Sprintf("label %s=%s is weaker than the cluster's %s level %s", key, v, m.mode, m.level))
		}
		if v, ok := labels[key+"-version"]; ok && v != "latest" {
			n, err := strconv.Atoi(strings.TrimPrefix(v, "v1."))
			if !strings.HasPrefix(v, "v1.") || err != nil || n < minor || strings.ContainsAny(strings.TrimPrefix(v, "v1."), "+- ") {
				out = append(out, fmt.Sprintf("label %s-version=%s pins a Pod Security version older than v1.%d", key, v, minor))
			}
		}
	}
	return out
}

// JudgeRoleRules says why a role's rules break the RBAC guardrail.
func JudgeRoleRules(rules []RoleRule) []string {
	var out []string
	for i, r := range rules {
		if slices.Contains(r.Verbs, "*") && slices.Contains(r.Resources, "*") {
			out = append(out, fmt.Sprintf("rules[%d] grants every verb on every resource", i))
		}
		for _, v := range r.Verbs {
			if slices.Contains(EscalationVerbs, v) {
				out = append(out, fmt.Sprintf("rules[%d] grants %s", i, v))
			}
		}
	}
	return out
}

// RoleRule is the part of an RBAC rule the guardrail reads.
type RoleRule struct {
	Verbs, Resources []string
}

// JudgeBinding says why a binding breaks the RBAC guardrail.
func JudgeBinding(roleKind, roleName string, subjects []Subject) []string {
	var out []string
	if roleKind == "ClusterRole" && roleName == "cluster-admin" {
		out = append(out, "binds roleRef cluster-admin")
	}
	for _, s := range subjects {
		if s.Kind == "Group" && slices.Contains(EveryoneGroups, s.Name) || s.Kind == "User" && s.Name == "system:anonymous" {
			out = append(out, fmt.Sprintf("binds %s %s, which stands for everyone", s.Kind, s.Name))
		}
	}
	return out
}

// Subject is the part of an RBAC subject the guardrail reads.
type Subject struct{ Kind, Name string }

// Peer is the part of a NetworkPolicy peer the guardrail reads.
type Peer struct {
	CIDR string // ipBlock.cidr, "" without an ipBlock
	// NamespaceSelector and PodSelector: nil when absent; Empty when they
	// select everything.
	NamespaceSelector, PodSelector *Selector
}

// Selector says whether a label selector is empty (selects everything).
type Selector struct{ Empty bool }

// Rule is one ingress or egress rule of a NetworkPolicy.
type Rule struct {
	Peers []Peer
}

// JudgeNetworkPolicy says why a NetworkPolicy's rules break the network
// guardrail.
func JudgeNetworkPolicy(ingress, egress []Rule) []string {
	var out []string
	for _, d := range []struct {
		dir, field string
		rules      []Rule
	}{{"ingress", "from", ingress}, {"egress", "to", egress}} {
		for i, r := range d.rules {
			if len(r.Peers) == 0 {
				out = append(out, fmt.Sprintf("%s[%d] has no %s: every peer", d.dir, i, d.field))
			}
			for j, p := range r.Peers {
				where := fmt.Sprintf("%s[%d].%s[%d]", d.dir, i, d.field, j)
				switch {
				case p.CIDR != "" && hugeCIDR(p.CIDR):
					out = append(out, fmt.Sprintf("%s ipBlock %s is as wide as the internet", where, p.CIDR))
				case p.NamespaceSelector != nil && p.NamespaceSelector.Empty:
					out = append(out, where+" selects every namespace")
				case p.NamespaceSelector != nil && (p.PodSelector == nil || p.PodSelector.Empty):
					out = append(out, where+" selects every pod of a namespace without a pod selector")
				}
			}
		}
	}
	return out
}

// hugeCIDR: IPv4 shorter than /8, IPv6 shorter than /32, as the CEL and
// review judge.
func hugeCIDR(s string) bool {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return false
	}
	if p.Addr().Is4() {
		return p.Bits() < 8
	}
	return p.Bits() < 32
}

// JudgeCiliumPolicy says why a CiliumNetworkPolicy (or, clusterwide, a
// CiliumClusterwideNetworkPolicy) breaks the network guardrail. obj is the
// object as JSON decodes it (unstructured).
func JudgeCiliumPolicy(obj map[string]any, clusterwide bool) []string {
	type named struct {
		where string
		rule  map[string]any
	}
	var rules []named
	if spec, ok := obj["spec"].(map[string]any); ok {
		rules = append(rules, named{"spec", spec})
	}
	for i, x := range anyList(obj["specs"]) {
		if m, ok := x.(map[string]any); ok {
			rules = append(rules, named{fmt.Sprintf("specs[%d]", i), m})
		}
	}
	var out []string
	for _, nr := range rules {
		rule, where := nr.rule, nr.where
		for _, d := range []struct {
			dir, entities, cidr, cidrSet, endpoints string
			peers                                   []string
		}{
			{"ingress", "fromEntities", "fromCIDR", "fromCIDRSet", "fromEndpoints", ciliumIngressPeers},
			{"egress", "toEntities", "toCIDR", "toCIDRSet", "toEndpoints", ciliumEgressPeers},
		} {
			rs, _ := rule[d.dir].([]any)
			for j, y := range rs {
				r, _ := y.(map[string]any)
				at := fmt.Sprintf("%s.%s[%d]", where, d.dir, j)
				hasPeer := slices.ContainsFunc(d.peers, func(f string) bool { _, ok := r[f]; return ok })
				if !hasPeer && (len(anyList(r["toPorts"])) > 0 || len(anyList(r["icmps"])) > 0) {
					out = append(out, at+" has ports and no peer: every peer")
				}
				for _, e := range anyList(r[d.entities]) {
					if s, _ := e.(string); slices.Contains(CiliumBroadEntities, s) {
						out = append(out, fmt.Sprintf("%s.%s %s is every namespace or the world", at, d.entities, s))
					}
				}
				for _, c := range anyList(r[d.cidr]) {
					if s, _ := c.(string); hugeCIDR(s) {
						out = append(out, fmt.Sprintf("%s.%s %s is as wide as the internet", at, d.cidr, s))
					}
				}
				for _, c := range anyList(r[d.cidrSet]) {
					if m, _ := c.(map[string]any); m != nil {
						if s, _ := m["cidr"].(string); hugeCIDR(s) {
							out = append(out, fmt.Sprintf("%s.%s %s is as wide as the internet", at, d.cidrSet, s))
						}
					}
				}
				for k, sel := range anyList(r[d.endpoints]) {
					m, _ := sel.(map[string]any)
					if why := broadCiliumSelector(m, clusterwide); why != "" {
						out = append(out, fmt.Sprintf("%s.%s[%d] %s", at, d.endpoints, k, why))
					}
				}
				if d.dir == "egress" {
					for _, f := range anyList(r["toFQDNs"]) {
						if m, _ := f.(map[string]any); m != nil && m["matchPattern"] == "*" {
							out = append(out, at+".toFQDNs matchPattern * is every name")
						}
					}
				}
			}
		}
	}
	return out
}

// broadCiliumSelector says why an endpoint selector spans namespaces or
// the world ("" when it does not).
func broadCiliumSelector(sel map[string]any, clusterwide bool) string {
	var keys []string
	if ml, ok := sel["matchLabels"].(map[string]any); ok {
		for k := range ml {
			keys = append(keys, k)
		}
	}
	for _, x := range anyList(sel["matchExpressions"]) {
		e, _ := x.(map[string]any)
		k, _ := e["key"].(string)
		keys = append(keys, k)
		if op, _ := e["operator"].(string); ciliumNamespaceNameRE.MatchString(k) && (op == "Exists" || op == "NotIn" || op == "DoesNotExist") {
			return "selects every namespace (" + k + " " + op + ")"
		}
	}
	switch {
	case slices.ContainsFunc(keys, ciliumWorldKeyRE.MatchString):
		return "selects the world"
	case len(keys) > 0 && !slices.ContainsFunc(keys, func(k string) bool { return !ciliumNamespaceKeyRE.MatchString(k) }):
		return "selects every pod of a namespace without a pod label"
	case clusterwide && !slices.ContainsFunc(keys, ciliumNamespaceKeyRE.MatchString):
		return "selects pods of every namespace (a clusterwide policy's selector without a namespace label)"
	}
	return ""
}

func anyList(x any) []any {
	l, _ := x.([]any)
	return l
}
