package hardening

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Labels and names secprov puts on what it manages.
const (
	ManagedByLabel      = "app.kubernetes.io/managed-by"
	ManagedByValue      = "secprov"
	AdminsGroup         = "secprov:admins" // O= of the admin client certificate
	AdminsBinding       = "secprov:admins"
	DefaultDenyPolicy   = "secprov-default-deny"
	AllowDNSPolicy      = "secprov-allow-dns"
	PodSecurityLabelKey = "pod-security.kubernetes.io/"

	// Vault's Kubernetes auth validates workload tokens with the
	// TokenReview API as this service account, which may do that and
	// nothing else (system:auth-delegator). secprov requests a token of
	// it with the TokenRequest API and hands that to Vault; there is no
	// service-account-token Secret.
	VaultAuthNamespace      = "kube-system"
	VaultAuthServiceAccount = "secprov-vault-auth"
	VaultAuthBinding        = "secprov:vault-auth"
)

// WorkloadNamespaces are the namespaces secprov hardens: the blueprint's
// namespaces plus default, where workloads land when nobody says otherwise.
func WorkloadNamespaces(spec v1alpha1.Spec) []string {
	out := []string{"default"}
	for _, ns := range spec.Namespaces {
		if ns.Name != "default" {
			out = append(out, ns.Name)
		}
	}
	return out
}

// PodSecurityLabels are the Pod Security admission labels of a managed
// namespace (SP-PSS-001).
func PodSecurityLabels(spec v1alpha1.Spec) map[string]string {
	ps := spec.PodSecurity
	return map[string]string{
		PodSecurityLabelKey + "enforce": ps.Enforce, PodSecurityLabelKey + "enforce-version": "latest",
		PodSecurityLabelKey + "audit": ps.Audit, PodSecurityLabelKey + "audit-version": "latest",
		PodSecurityLabelKey + "warn": ps.Warn, PodSecurityLabelKey + "warn-version": "latest",
	}
}

// Object is a rendered in-cluster object and the controls it implements.
type Object struct {
	Object   runtime.Object
	Controls []blueprints.ControlID
}

// Objects renders every in-cluster object the blueprint asks for, in
// apply order: RBAC, then per namespace the Namespace, its default
// ServiceAccount and its NetworkPolicies. With opts.CiliumPolicies the
// network policy is Cilium's instead: one cluster-wide default deny after
// the namespaces, then the allow rules' CiliumNetworkPolicies.
func Objects(spec v1alpha1.Spec, opts Options) ([]Object, error) {
	subjects, err := AdminSubjects(spec.RBAC.Admins)
	if err != nil {
		return nil, err
	}
	out := []Object{{
		Controls: []blueprints.ControlID{blueprints.RBACAdminsNamed},
		Object: &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: meta("", AdminsBinding, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   subjects,
		},
	}}
	extra := map[string]map[string]string{}
	for _, ns := range spec.Namespaces {
		extra[ns.Name] = ns.Labels
	}
	for _, ns := range WorkloadNamespaces(spec) {
		labels := map[string]string{}
		for k, v := range extra[ns] {
			labels[k] = v
		}
		for k, v := range PodSecurityLabels(spec) {
			labels[k] = v
		}
		out = append(out,
			Object{Controls: []blueprints.ControlID{blueprints.PodSecurityRestricted}, Object: &corev1.Namespace{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: meta("", ns, labels)}},
			Object{Controls: []blueprints.ControlID{blueprints.RBACNoTokenAutomount}, Object: &corev1.ServiceAccount{
				TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta:                   metav1.ObjectMeta{Name: "default", Namespace: ns},
				AutomountServiceAccountToken: ptr(false)}},
		)
		if spec.Network.DefaultDenyEnabled() && !opts.CiliumPolicies {
			for _, np := range DefaultDenyPolicies(ns) {
				out = append(out, Object{Controls: []blueprints.ControlID{blueprints.NetworkDefaultDeny}, Object: np})
			}
		}
	}
	switch {
	case opts.CiliumPolicies:
		if spec.Network.DefaultDenyEnabled() {
			out = append(out, Object{Controls: []blueprints.ControlID{blueprints.NetworkDefaultDeny}, Object: CiliumDefaultDeny(spec)})
		}
		out = append(out, ciliumAllowPolicies(spec)...)
	default:
		out = append(out, allowPolicies(spec)...)
	}
	if spec.Vault.IsEnabled() {
		out = append(out, vaultAuthObjects()...)
	}
	return out, nil
}

// DefaultDenyPolicies are the NetworkPolicies of a workload namespace
// when network.defaultDeny is on (SP-NET-002): deny every pod all ingress
// and egress, then allow egress to the cluster DNS only. verify compares
// the live policies with this rendering.
func DefaultDenyPolicies(ns string) []*networkingv1.NetworkPolicy {
	return []*networkingv1.NetworkPolicy{
		networkPolicy(ns, DefaultDenyPolicy, networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		}),
		networkPolicy(ns, AllowDNSPolicy, networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: nsSelector("kube-system"),
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{port("UDP", 53), port("TCP", 53)},
			}},
		}),
	}
}

// vaultAuthObjects are the token reviewer Vault's Kubernetes auth uses
// (SP-VAULT-001).
func vaultAuthObjects() []Object {
	ctl := []blueprints.ControlID{blueprints.VaultSecrets}
	return []Object{
		{Controls: ctl, Object: &corev1.ServiceAccount{
			TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta:                   meta(VaultAuthNamespace, VaultAuthServiceAccount, nil),
			AutomountServiceAccountToken: ptr(false)}},
		{Controls: ctl, Object: &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: meta("", VaultAuthBinding, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: VaultAuthNamespace, Name: VaultAuthServiceAccount}},
		}},
	}
}

// allowPolicies turns spec.network.allow into NetworkPolicies: ingress in
// the destination namespace and, because egress is denied too, egress in
// the source namespace (SP-NET-003).
func allowPolicies(spec v1alpha1.Spec) []Object {
	var out []Object
	workload := WorkloadNamespaces(spec)
	for i, r := range spec.Network.Allow {
		var ports []networkingv1.NetworkPolicyPort
		for _, p := range r.To.Ports {
			ports = append(ports, port(r.To.Protocol, p))
		}
		var from networkingv1.NetworkPolicyPeer
		switch {
		case r.From.CIDR != "":
			from.IPBlock = &networkingv1.IPBlock{CIDR: r.From.CIDR}
		default:
			from.NamespaceSelector = nsSelector(r.From.Namespace)
			if len(r.From.PodSelector) > 0 {
				from.PodSelector = &metav1.LabelSelector{MatchLabels: r.From.PodSelector}
			}
		}
		name := fmt.Sprintf("secprov-allow-%d", i)
		var dests []string // no ingress side for a CIDR outside the cluster
		switch {
		case r.To.Namespace == "*":
			dests = workload
		case r.To.Namespace != "":
			dests = []string{r.To.Namespace}
		}
		for _, ns := range dests {
			out = append(out, Object{Controls: []blueprints.ControlID{blueprints.NetworkAllowNarrow}, Object: networkPolicy(ns, name+"-ingress", networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: r.To.PodSelector},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{from}, Ports: ports}},
			})})
		}
		if r.From.CIDR != "" {
			continue
		}
		sources := []string{r.From.Namespace}
		if r.From.Namespace == "*" {
			sources = workload
		}
		var to networkingv1.NetworkPolicyPeer
		switch {
		case r.To.CIDR != "":
			to.IPBlock = &networkingv1.IPBlock{CIDR: r.To.CIDR}
		default:
			to.NamespaceSelector = nsSelector(r.To.Namespace)
			if len(r.To.PodSelector) > 0 {
				to.PodSelector = &metav1.LabelSelector{MatchLabels: r.To.PodSelector}
			}
		}
		for _, ns := range sources {
			if !slices.Contains(workload, ns) {
				continue // not ours: its egress is not denied by secprov
			}
			out = append(out, Object{Controls: []blueprints.ControlID{blueprints.NetworkAllowNarrow}, Object: networkPolicy(ns, name+"-egress", networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: r.From.PodSelector},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{to}, Ports: ports}},
			})})
		}
	}
	return out
}

// AdminSubjects turns spec.rbac.admins entries into RBAC subjects, always
// including the group of secprov's own admin certificate.
func AdminSubjects(admins []string) ([]rbacv1.Subject, error) {
	subjects := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: AdminsGroup}}
	for _, a := range admins {
		kind, name, ok := strings.Cut(a, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("rbac admin %q: want group:NAME, user:NAME or serviceaccount:NAMESPACE:NAME", a)
		}
		switch kind {
		case "group":
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name})
		case "user":
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name})
		case "serviceaccount":
			ns, sa, ok := strings.Cut(name, ":")
			if !ok {
				return nil, fmt.Errorf("rbac admin %q: want serviceaccount:NAMESPACE:NAME", a)
			}
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa})
		default:
			return nil, fmt.Errorf("rbac admin %q: unknown subject kind %q", a, kind)
		}
	}
	return subjects, nil
}

func meta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{ManagedByLabel: ManagedByValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}
}

func networkPolicy(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta(ns, name, nil),
		Spec:       spec,
	}
}

// nsSelector selects one namespace by its immutable name label, or every
// namespace for "*".
func nsSelector(ns string) *metav1.LabelSelector {
	if ns == "*" {
		return &metav1.LabelSelector{}
	}
	return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
}

func port(proto string, p int) networkingv1.NetworkPolicyPort {
	if proto == "" {
		proto = "TCP"
	}
	pr := corev1.Protocol(proto)
	v := intstr.FromInt32(int32(p))
	return networkingv1.NetworkPolicyPort{Protocol: &pr, Port: &v}
}

func ptr[T any](v T) *T { return &v }
