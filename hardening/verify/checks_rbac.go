package verify

import (
	"context"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// rbacChecks prove who holds cluster-admin and that default service
// accounts carry no token (SP-RBAC-001, SP-RBAC-002).
func rbacChecks() []Check {
	return []Check{
		{ID: blueprints.RBACAdminsNamed, Run: checkAdminBindings, Needs: needs(API)},
		{ID: blueprints.RBACNoTokenAutomount, Run: checkTokenAutomount, Needs: needs(API)},
	}
}

// MastersGroup is the one built-in subject allowed to hold cluster-admin:
// Kubernetes binds it in the cluster-admin ClusterRoleBinding it
// bootstraps, and secprov's bootstrap identity is in it. No other system:
// subject (system:authenticated, system:unauthenticated,
// system:serviceaccounts[:NS], system:anonymous, system:nodes, any
// service account) is bound to an admin role by Kubernetes itself, so any
// such binding was added by someone and fails.
const MastersGroup = "system:masters"

// AllowedAdmins are the subjects that may be bound to cluster-admin or a
// role granting every verb on every resource: the blueprint's
// spec.rbac.admins, secprov's own admin group and system:masters.
func AllowedAdmins(admins []string) ([]rbacv1.Subject, error) {
	subjects, err := hardening.AdminSubjects(admins)
	if err != nil {
		return nil, err
	}
	return append(subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: MastersGroup}), nil
}

// grantsEverything: a rule with every verb on every resource.
func grantsEverything(rules []rbacv1.PolicyRule) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Verbs, rbacv1.VerbAll) && slices.Contains(r.Resources, rbacv1.ResourceAll)
	})
}

// subjectAllowed compares kind, name and, for service accounts, namespace.
func subjectAllowed(s rbacv1.Subject, allowed []rbacv1.Subject) bool {
	return slices.ContainsFunc(allowed, func(a rbacv1.Subject) bool {
		return a.Kind == s.Kind && a.Name == s.Name && (a.Kind != rbacv1.ServiceAccountKind || a.Namespace == s.Namespace)
	})
}

func describeSubject(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return fmt.Sprintf("ServiceAccount %s/%s", s.Namespace, s.Name)
	}
	return s.Kind + " " + s.Name
}

// adminBinding is a binding of an admin-equivalent role, for judging.
type adminBinding struct {
	object    string // ClusterRoleBinding/NAME or RoleBinding/NS/NAME
	namespace string
	role      rbacv1.RoleRef
	subjects  []rbacv1.Subject
}

// judgeAdminBindings fails every subject of an admin binding that is not
// allowed. A RoleBinding's service account without a namespace is in the
// binding's namespace.
func judgeAdminBindings(r *findings, bindings []adminBinding, allowed []rbacv1.Subject) {
	want := "a subject of spec.rbac.admins, group " + hardening.AdminsGroup + " or group " + MastersGroup
	for _, b := range bindings {
		for i, s := range b.subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" {
				s.Namespace = b.namespace
			}
			ev := Evidence{Object: b.object, Field: fmt.Sprintf("subjects[%d]", i), Want: want,
				Got: describeSubject(s) + " → " + b.role.Kind + " " + b.role.Name}
			if subjectAllowed(s, allowed) {
				r.ok(ev)
			} else {
				r.fail(ev, fmt.Sprintf("%s gives %s to %s", b.object, b.role.Name, describeSubject(s)))
			}
		}
	}
}

// checkAdminBindings lists every ClusterRoleBinding and RoleBinding that
// grants cluster-admin or any (Cluster)Role with every verb on every
// resource, and fails subjects outside AllowedAdmins.
func checkAdminBindings(ctx context.Context, t Target) Outcome {
	var r findings
	allowed, err := AllowedAdmins(t.Info().Spec.RBAC.Admins)
	if err != nil {
		return Errorf("the cluster's blueprint spec.rbac.admins: %v", err)
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	rbac := cs.RbacV1()
	crs, err := rbac.ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Errorf("list ClusterRoles: %v", err)
	}
	roles, err := rbac.Roles("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return Errorf("list Roles: %v", err)
	}
	crbs, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Errorf("list ClusterRoleBindings: %v", err)
	}
	rbs, err := rbac.RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return Errorf("list RoleBindings: %v", err)
	}
	adminCR := map[string]bool{"cluster-admin": true}
	for _, cr := range crs.Items {
		if grantsEverything(cr.Rules) {
			adminCR[cr.Name] = true
		}
	}
	adminRole := map[string]bool{}
	for _, ro := range roles.Items {
		if grantsEverything(ro.Rules) {
			adminRole[ro.Namespace+"/"+ro.Name] = true
		}
	}
	var bindings []adminBinding
	for _, b := range crbs.Items {
		if b.RoleRef.Kind == "ClusterRole" && adminCR[b.RoleRef.Name] {
			bindings = append(bindings, adminBinding{"ClusterRoleBinding/" + b.Name, "", b.RoleRef, b.Subjects})
		}
	}
	for _, b := range rbs.Items {
		if (b.RoleRef.Kind == "ClusterRole" && adminCR[b.RoleRef.Name]) || (b.RoleRef.Kind == "Role" && adminRole[b.Namespace+"/"+b.RoleRef.Name]) {
			bindings = append(bindings, adminBinding{"RoleBinding/" + b.Namespace + "/" + b.Name, b.Namespace, b.RoleRef, b.Subjects})
		}
	}
	judgeAdminBindings(&r, bindings, allowed)
	return r.outcome(fmt.Sprintf("%d bindings grant admin rights, all to allowed subjects", len(bindings)))
}

// checkTokenAutomount: the default ServiceAccount of every workload
// namespace sets automountServiceAccountToken: false.
func checkTokenAutomount(ctx context.Context, t Target) Outcome {
	var r findings
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	for _, ns := range hardening.WorkloadNamespaces(t.Info().Spec) {
		sa, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		ev := Evidence{Object: "ServiceAccount " + ns + "/default", Field: "automountServiceAccountToken", Want: "false"}
		switch {
		case apierrors.IsNotFound(err):
			ev.Got = "no such ServiceAccount"
			r.fail(ev, "namespace "+ns+" has no default ServiceAccount to harden")
		case err != nil:
			r.errorf("get ServiceAccount %s/default: %v", ns, err)
		case sa.AutomountServiceAccountToken == nil:
			ev.Got = "(not set: tokens are mounted)"
			r.fail(ev, "pods in "+ns+" get a token mounted by default")
		case *sa.AutomountServiceAccountToken:
			ev.Got = "true"
			r.fail(ev, "pods in "+ns+" get a token mounted by default")
		default:
			ev.Got = "false"
			r.ok(ev)
		}
	}
	return r.outcome("default service accounts of the workload namespaces do not automount tokens")
}
