package local_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
	"secprov.dev/secprov/provision/paths"
)

// guardedBlueprint is a prod cluster without Vault (secretbox) so the test
// needs no Vault server, with an image allow-list, and an exception that
// turns the network policy guardrail to warn.
const guardedBlueprint = `apiVersion: secprov.dev/v1alpha1
kind: Blueprint
metadata: {name: guarded-prod}
spec:
  environment: prod
  encryptionAtRest: {provider: secretbox}
  vault: {enabled: false}
  namespaces: [{name: shop}]
  images:
    allowedRegistries: [registry.example.com/team, localhost:5000]
  podSecurity: {exemptNamespaces: [kube-system, legacy]}
  exceptions:
    - control: SP-ADM-004
      justification: "the mesh team owns network policy here until the migration (JIRA-42)"
      expires: "2099-01-01"
`

const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// warnings collects the API server's warnings of one client.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

func clientFor(t *testing.T, kubeconfig string, w rest.WarningHandler) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// restrictedPod passes Pod Security restricted, so only the image guardrail
// can refuse it.
func restrictedPod(images ...string) corev1.PodSpec {
	no, yes := false, true
	var cs []corev1.Container
	for i, img := range images {
		cs = append(cs, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img, SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}})
	}
	return corev1.PodSpec{Containers: cs}
}

// TestGuardrails brings up a real local cluster (etcd, kube-apiserver,
// controller manager, scheduler through the engine) and sends every
// guardrail a forbidden and an admitted change through the API as
// secprov's admin (server-side dry run), the image rules of the CEL
// policy against the Go judge verify uses, an exception turning a deny
// into a warning, the bootstrap identity passing, and a deleted binding
// restored by up.
func TestGuardrails(t *testing.T) {
	bins := localtest.Binaries(t)
	eng, stateDir := enginetest.NewEngine(t, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	bps, err := blueprints.LoadBytes("guarded.yaml", []byte(guardedBlueprint))
	if err != nil {
		t.Fatal(err)
	}
	bp := bps[0]
	c := &local.Cluster{Blueprint: bp.Blueprint, Dir: filepath.Join(paths.ClustersDir(stateDir), bp.Name()), Binaries: bins}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	up := func() {
		t.Helper()
		prog, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Up(ctx, bp.Name(), prog, engine.Options{}); err != nil {
			t.Fatalf("up: %v", err)
		}
	}
	t.Cleanup(func() {
		if _, err := eng.Destroy(context.Background(), bp.Name(), engine.Options{}); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	up()

	layout := paths.NewLayout(c.Dir)
	var warn warnings
	admin := clientFor(t, layout.AdminKubeconfig(), &warn)
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	// create sends obj as the admin and reports the error and warnings.
	type result struct {
		err      error
		warnings []string
	}
	try := func(create func() error) result {
		warn.take()
		err := create()
		return result{err: err, warnings: warn.take()}
	}
	expect := func(t *testing.T, r result, deniedBy blueprints.ControlID, msg string) {
		t.Helper()
		switch {
		case deniedBy == "" && r.err != nil:
			t.Errorf("refused, want admitted: %v", r.err)
		case deniedBy != "" && r.err == nil:
			t.Errorf("admitted, want denied by %s", deniedBy)
		case deniedBy != "" && (!strings.Contains(r.err.Error(), string(deniedBy)+":") || !strings.Contains(r.err.Error(), msg) ||
			!strings.Contains(r.err.Error(), "spec.exceptions")):
			t.Errorf("denied, but the message does not name %s, %q and how to get an exception: %v", deniedBy, msg, r.err)
		}
	}
	pod := func(ns string, spec corev1.PodSpec) func() error {
		return func() error {
			_, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "g-"}, Spec: spec}, dry)
			return err
		}
	}
	tmpl := func(spec corev1.PodSpec) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a"}}, Spec: spec}
	}

	// The API server starts enforcing a new policy binding once its
	// admission informer has seen it, a moment after up created it.
	waitEnforced := func(probe func() error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for probe() == nil {
			if time.Now().After(deadline) {
				t.Fatal("the guardrails were not enforced 30 s after up")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitEnforced(pod("shop", restrictedPod("nginx"+digest)))

	t.Run("SP-ADM-001 images", func(t *testing.T) {
		ok := "registry.example.com/team/app" + digest
		for _, c := range []struct {
			name   string
			create func() error
			denied blueprints.ControlID
			msg    string
		}{
			{"pod from an allowed registry, pinned", pod("shop", restrictedPod(ok)), "", ""},
			{"pod from a registry host with a port", pod("shop", restrictedPod("localhost:5000/app"+digest)), "", ""},
			{"Docker Hub short name", pod("shop", restrictedPod("nginx"+digest)), blueprints.GuardrailImages,
				"spec.containers[c0] image nginx" + digest + " (docker.io/library/nginx" + digest + ") is not from an allowed registry"},
			{"lookalike host", pod("shop", restrictedPod("registry.example.com.evil.io/team/app"+digest)), blueprints.GuardrailImages, "is not from an allowed registry"},
			{"other path on the allowed host", pod("shop", restrictedPod("registry.example.com/other/app"+digest)), blueprints.GuardrailImages, "is not from an allowed registry"},
			{"allowed registry by tag (prod requires digests)", pod("shop", restrictedPod("registry.example.com/team/app:1.0")), blueprints.GuardrailImages, "is not pinned by digest"},
			{"deployment template", func() error {
				_, err := admin.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"},
					Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}, Template: tmpl(restrictedPod(ok, "quay.io/evil/miner"+digest))}}, dry)
				return err
			}, blueprints.GuardrailImages, "spec.template.spec.containers[c1] image quay.io/evil/miner"},
			{"cronjob init container", func() error {
				spec := restrictedPod(ok)
				spec.InitContainers = []corev1.Container{spec.Containers[0]}
				spec.InitContainers[0].Name, spec.InitContainers[0].Image = "init", "busybox:1.36"
				spec.RestartPolicy = corev1.RestartPolicyNever
				_, err := admin.BatchV1().CronJobs("shop").Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj"},
					Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl(spec)}}}}, dry)
				return err
			}, blueprints.GuardrailImages, "spec.jobTemplate.spec.template.spec.initContainers[init] image busybox:1.36"},
			{"deployment from the allowed registry", func() error {
				_, err := admin.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"},
					Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}, Template: tmpl(restrictedPod(ok))}}, dry)
				return err
			}, "", ""},
		} {
			t.Run(c.name, func(t *testing.T) { expect(t, try(c.create), c.denied, c.msg) })
		}
	})

	// The CEL policy and the Go judge verify uses must agree on every
	// image: the API server decides, Go must say the same.
	t.Run("CEL and Go judge images alike", func(t *testing.T) {
		allowed := hardening.AllowedRegistries(bp.Spec, nil)
		for _, img := range []string{
			"nginx", "nginx:1.27", "library/nginx" + digest, "docker.io/nginx" + digest, "docker.io/library/nginx" + digest,
			"index.docker.io/library/nginx" + digest, "team/app" + digest, "registry.example.com/team" + digest,
			"registry.example.com/team/app" + digest, "registry.example.com/team/app:1" + digest, "registry.example.com/teamx/app" + digest,
			"registry.example.com:443/team/app" + digest, "localhost:5000/x" + digest, "localhost:5001/x" + digest, "localhost/x" + digest,
			"REGISTRY.example.com/team/app" + digest, "registry.example.com/team/app@sha256:abc",
		} {
			ref := hardening.NormalizeImage(img)
			goAdmits := hardening.DigestPinned(ref)
			fromAllowed := false
			for _, r := range allowed {
				fromAllowed = fromAllowed || hardening.RegistryAdmits(r, ref)
			}
			goAdmits = goAdmits && fromAllowed
			err := pod("shop", restrictedPod(img))()
			if apiAdmits := err == nil; apiAdmits != goAdmits {
				t.Errorf("%s (%s): the API server admits = %v (%v), Go admits = %v", img, ref, apiAdmits, err, goAdmits)
			}
		}
	})

	t.Run("SP-ADM-002 Pod Security labels", func(t *testing.T) {
		ns := func(name string, labels map[string]string) func() error {
			return func() error {
				_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, dry)
				return err
			}
		}
		for _, c := range []struct {
			name   string
			create func() error
			denied blueprints.ControlID
			msg    string
		}{
			{"privileged enforce", ns("tenant", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}), blueprints.GuardrailPodSecurity,
				"namespace tenant label pod-security.kubernetes.io/enforce=privileged is weaker than the cluster's enforce level restricted"},
			{"baseline warn", ns("tenant", map[string]string{"pod-security.kubernetes.io/warn": "baseline"}), blueprints.GuardrailPodSecurity, "warn=baseline"},
			{"old enforce-version", ns("tenant", map[string]string{"pod-security.kubernetes.io/enforce-version": "v1.20"}), blueprints.GuardrailPodSecurity, "enforce-version=v1.20 pins"},
			{"restricted, latest", ns("tenant", map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}), "", ""},
			{"no labels", ns("tenant", nil), "", ""},
			{"exempt namespace may be privileged", ns("legacy", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}), "", ""},
			{"relabel a managed namespace privileged", func() error {
				n, err := admin.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
				if err != nil {
					return err
				}
				n.Labels["pod-security.kubernetes.io/enforce"] = "privileged"
				_, err = admin.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			}, blueprints.GuardrailPodSecurity, "namespace shop label"},
		} {
			t.Run(c.name, func(t *testing.T) { expect(t, try(c.create), c.denied, c.msg) })
		}
	})

	t.Run("SP-ADM-003 RBAC", func(t *testing.T) {
		crb := func(role string, subjects ...rbacv1.Subject) func() error {
			return func() error {
				_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, Subjects: subjects}, dry)
				return err
			}
		}
		role := func(rules ...rbacv1.PolicyRule) func() error {
			return func() error {
				_, err := admin.RbacV1().Roles("shop").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Rules: rules}, dry)
				return err
			}
		}
		alice := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}
		for _, c := range []struct {
			name   string
			create func() error
			denied blueprints.ControlID
			msg    string
		}{
			{"cluster-admin binding", crb("cluster-admin", alice), blueprints.GuardrailRBAC, "ClusterRoleBinding b binds roleRef cluster-admin"},
			{"binding to everyone", crb("view", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}),
				blueprints.GuardrailRBAC, "binds subjects Group system:authenticated"},
			{"*/* role", role(rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}), blueprints.GuardrailRBAC, "grants every verb"},
			{"escalate", role(rbacv1.PolicyRule{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}, Verbs: []string{"get", "escalate"}}),
				blueprints.GuardrailRBAC, "grants escalate"},
			{"impersonate", role(rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}}), blueprints.GuardrailRBAC, "grants impersonate"},
			{"narrow role", role(rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}), "", ""},
			{"view binding for a named user", crb("view", alice), "", ""},
		} {
			t.Run(c.name, func(t *testing.T) { expect(t, try(c.create), c.denied, c.msg) })
		}
	})

	t.Run("SP-ADM-004 network policy warns under its exception", func(t *testing.T) {
		np := func(spec networkingv1.NetworkPolicySpec) func() error {
			return func() error {
				_, err := admin.NetworkingV1().NetworkPolicies("shop").Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "np"}, Spec: spec}, dry)
				return err
			}
		}
		everyNS := networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}}
		r := try(np(everyNS))
		if r.err != nil {
			t.Fatalf("under an exception the guardrail must warn, not deny: %v", r.err)
		}
		if len(r.warnings) == 0 || !strings.Contains(strings.Join(r.warnings, "\n"), "SP-ADM-004: NetworkPolicy shop/np admits every namespace") {
			t.Errorf("admitted without the guardrail's warning: %q", r.warnings)
		}
		narrow := networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "web"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "front"}},
		}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.20.0.0/16"}}}}}}
		if r := try(np(narrow)); r.err != nil || len(r.warnings) > 0 {
			t.Errorf("a narrow policy: err %v, warnings %q; want admitted silently", r.err, r.warnings)
		}
	})

	// Cilium's policy kinds registered on this API server (a minimal
	// schema of the test's own, as on a cluster before Cilium's operator
	// installs the real one): every case of hardening's table gets the
	// same verdict from the guardrail's CEL as from the Go judge. Under
	// the blueprint's exception a verdict is a warning, not a refusal.
	t.Run("SP-ADM-004 Cilium policies: CEL and Go judge alike", func(t *testing.T) {
		superCfg, err := clientcmd.BuildConfigFromFlags("", layout.SuperAdminKubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		installCiliumPolicyKinds(t, ctx, dynamic.NewForConfigOrDie(superCfg))
		adminCfg, err := clientcmd.BuildConfigFromFlags("", layout.AdminKubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		adminCfg.WarningHandler = &warn
		dyn := dynamic.NewForConfigOrDie(adminCfg)
		raw, err := os.ReadFile(filepath.Join("..", "..", "hardening", "testdata", "cilium-policies.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var cases []struct {
			Name        string         `json:"name"`
			Clusterwide bool           `json:"clusterwide"`
			Want        string         `json:"want"`
			Object      map[string]any `json:"object"`
		}
		if err := yaml.Unmarshal(raw, &cases); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			obj := &unstructured.Unstructured{Object: c.Object}
			var ri dynamic.ResourceInterface = dyn.Resource(ciliumGVR("ciliumclusterwidenetworkpolicies"))
			if !c.Clusterwide {
				ri = dyn.Resource(ciliumGVR("ciliumnetworkpolicies")).Namespace("shop")
			}
			r := try(func() error { _, err := ri.Create(ctx, obj, dry); return err })
			goWhy := hardening.JudgeCiliumPolicy(c.Object, c.Clusterwide)
			celWarned := strings.Contains(strings.Join(r.warnings, "\n"), "SP-ADM-004: "+obj.GetKind()+" ")
			switch {
			case r.err != nil:
				t.Errorf("%s: refused under the exception: %v", c.Name, r.err)
			case celWarned != (len(goWhy) > 0):
				t.Errorf("%s: the API server warns = %v (%q), the Go judge says %q", c.Name, celWarned, r.warnings, goWhy)
			}
		}
	})

	t.Run("the bootstrap identity is exempt", func(t *testing.T) {
		super := clientFor(t, layout.SuperAdminKubeconfig(), rest.NoWarnings{})
		_, err := super.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}}, dry)
		if err != nil {
			t.Errorf("system:masters refused: %v", err)
		}
	})

	// The verify checks on the live cluster: ADM-001..003 pass, ADM-004
	// warns naming its exception; then weakened out of band (by the exempt
	// bootstrap identity, as a change that predates a guardrail or slipped
	// past it would be), each fails naming the object.
	t.Run("verify", func(t *testing.T) {
		rec, err := cluster.ReadRecord(c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		target, err := local.NewTarget(rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		var checks []verify.Check
		for _, ch := range verify.Checks() {
			if strings.HasPrefix(string(ch.ID), "SP-ADM-") {
				checks = append(checks, ch)
			}
		}
		run := func() map[blueprints.ControlID]verify.Result {
			out := map[blueprints.ControlID]verify.Result{}
			for _, r := range verify.Run(ctx, target, checks, verify.Options{}).Results {
				out[r.ID] = r
				t.Logf("%s %s: %s", r.ID, r.Status, r.Reason)
			}
			return out
		}
		res := run()
		for id, want := range map[blueprints.ControlID]verify.Status{
			blueprints.GuardrailImages: verify.StatusPass, blueprints.GuardrailPodSecurity: verify.StatusPass,
			blueprints.GuardrailRBAC: verify.StatusPass, blueprints.GuardrailNetwork: verify.StatusWarn,
		} {
			if res[id].Status != want {
				t.Errorf("%s: %s (%s), want %s", id, res[id].Status, res[id].Reason, want)
			}
		}
		if !strings.Contains(res[blueprints.GuardrailNetwork].Reason, "JIRA-42") {
			t.Errorf("SP-ADM-004 warns without naming the exception: %s", res[blueprints.GuardrailNetwork].Reason)
		}

		super := clientFor(t, layout.SuperAdminKubeconfig(), rest.NoWarnings{})
		_, err = super.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "oob-privileged",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = super.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "foreign"},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}, Template: tmpl(restrictedPod("quay.io/evil/miner" + digest))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, hardening.RBACGuardrail, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		res = run()
		for id, want := range map[blueprints.ControlID]string{
			blueprints.GuardrailImages:      "Deployment/shop/foreign spec.template.spec.containers[c0]",
			blueprints.GuardrailPodSecurity: "namespace oob-privileged: label pod-security.kubernetes.io/enforce=privileged",
			blueprints.GuardrailRBAC:        "binding secprov-rbac is missing",
		} {
			if res[id].Status != verify.StatusFail || !strings.Contains(res[id].Reason, want) {
				t.Errorf("%s: %s (%s), want fail naming %q", id, res[id].Status, res[id].Reason, want)
			}
		}
		// Leave the cluster as it was for the next subtest, but for the
		// binding, which up must restore.
		_ = super.CoreV1().Namespaces().Delete(ctx, "oob-privileged", metav1.DeleteOptions{})
		_ = super.AppsV1().Deployments("shop").Delete(ctx, "foreign", metav1.DeleteOptions{})
	})

	t.Run("a deleted binding is planned back and restored by up", func(t *testing.T) {
		if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, hardening.RBACGuardrail, metav1.GetOptions{}); err == nil {
			if err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, hardening.RBACGuardrail, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		prog, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		plan, err := eng.Preview(ctx, bp.Name(), prog, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !plan.HasChanges() {
			t.Errorf("no change planned with the RBAC guardrail's binding deleted")
		}
		up()
		if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, hardening.RBACGuardrail, metav1.GetOptions{}); err != nil {
			t.Errorf("binding not restored: %v", err)
		}
		var r result
		for range 20 { // a binding takes effect once the API server's informer sees it
			if r = try(func() error {
				_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}}, dry)
				return err
			}); r.err != nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		expect(t, r, blueprints.GuardrailRBAC, "cluster-admin")
	})

	// The same forbidden changes under an exception for their control:
	// admitted, each with its guardrail's warning.
	t.Run("exceptions turn each guardrail into a warning", func(t *testing.T) {
		for _, id := range []string{"SP-ADM-001", "SP-ADM-002", "SP-ADM-003"} {
			c.Blueprint.Spec.Exceptions = append(c.Blueprint.Spec.Exceptions, v1alpha1.Exception{Control: id,
				Justification: "migration window agreed with security, ticket SEC-7", Expires: "2099-01-01"})
		}
		up()
		forbidden := map[blueprints.ControlID]func() error{
			blueprints.GuardrailImages: pod("shop", restrictedPod("nginx"+digest)),
			blueprints.GuardrailPodSecurity: func() error {
				_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant",
					Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}, dry)
				return err
			},
			blueprints.GuardrailRBAC: func() error {
				_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}}, dry)
				return err
			},
		}
		for id, change := range forbidden {
			var r result
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				if r = try(change); r.err == nil { // the updated binding is in effect
					break
				}
			}
			if r.err != nil {
				t.Errorf("%s under an exception: still refused: %v", id, r.err)
				continue
			}
			if !strings.Contains(strings.Join(r.warnings, "\n"), string(id)+":") {
				t.Errorf("%s under an exception: admitted without the guardrail's warning: %q", id, r.warnings)
			}
		}
	})
}

func ciliumGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: resource}
}

// installCiliumPolicyKinds registers CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy with a schema that keeps every field,
// and waits until both are served. They stay for the rest of the test
// (verify judges them), and go with the cluster.
func installCiliumPolicyKinds(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	t.Helper()
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	free := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	for _, k := range []struct{ kind, plural, scope string }{
		{"CiliumNetworkPolicy", "ciliumnetworkpolicies", "Namespaced"},
		{"CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies", "Cluster"},
	} {
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": k.plural + ".cilium.io"},
			"spec": map[string]any{
				"group": "cilium.io", "scope": k.scope,
				"names": map[string]any{"kind": k.kind, "plural": k.plural, "listKind": k.kind + "List", "singular": strings.ToLower(k.kind)},
				"versions": []any{map[string]any{"name": "v2", "served": true, "storage": true, "schema": map[string]any{
					"openAPIV3Schema": map[string]any{"type": "object", "properties": map[string]any{
						"spec": free, "specs": map[string]any{"type": "array", "items": free},
					}},
				}}},
			},
		}}
		if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("register %s: %v", k.kind, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
			established := false
			if err == nil {
				conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
				for _, c := range conds {
					m, _ := c.(map[string]any)
					established = established || (m["type"] == "Established" && m["status"] == "True")
				}
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not established after 30 s: %v", k.kind, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
