package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// podSecurityChecks prove Pod Security admission on the workload
// namespaces (SP-PSS-001).
func podSecurityChecks() []Check {
	return []Check{
		{ID: blueprints.PodSecurityRestricted, Run: checkPodSecurity, Needs: needs(API, Processes, Files)},
		{ID: blueprints.PodSecurityExemptionsFew, Run: checkPodSecurityExemptions, Needs: needs(Processes, Files)},
		{ID: blueprints.PodSecurityAuditWarn, Run: checkPodSecurityAuditWarn, Needs: needs(API, Processes, Files)},
	}
}

// checkPodSecurity: the cluster-wide PodSecurity defaults enforce
// restricted and exempt no workload namespace; every workload namespace is
// labelled enforce=restricted; and a server-side dry-run create of a pod
// that breaks the restricted profile is really rejected by PodSecurity in
// each of them.
func checkPodSecurity(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	namespaces := hardening.WorkloadNamespaces(info.Spec)
	comps, _ := flagCheck(ctx, t, blueprints.PodSecurityRestricted, []string{APIServer}, &r)
	if c := comps[APIServer]; c != nil {
		if p := Args(c.Args)["admission-control-config-file"]; p != "" {
			judgeAdmissionConfig(ctx, t, &r, p, namespaces)
		}
	}
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	for _, ns := range namespaces {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.fail(Evidence{Object: "Namespace/" + ns, Field: "metadata.name", Want: "exists", Got: "missing"}, "workload namespace "+ns+" does not exist")
			continue
		}
		if err != nil {
			r.errorf("get namespace %s: %v", ns, err)
			continue
		}
		key := hardening.PodSecurityLabelKey + "enforce"
		ev := Evidence{Object: "Namespace/" + ns, Field: "label " + key, Want: v1alpha1.PSSRestricted, Got: n.Labels[key]}
		if ev.Got == v1alpha1.PSSRestricted {
			r.ok(ev)
		} else {
			r.fail(ev, fmt.Sprintf("namespace %s enforces %q", ns, orNone(ev.Got)))
		}
		if v := n.Labels[key+"-version"]; v != "" && v != "latest" {
			r.warn(Evidence{Object: "Namespace/" + ns, Field: "label " + key + "-version", Want: "latest", Got: v},
				fmt.Sprintf("namespace %s pins Pod Security to %s: newer checks do not apply", ns, v))
		}
		pod := unrestrictedPod(ns, compliantImage(info))
		_, err = cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		ev = Evidence{Object: "Pod " + ns + "/" + pod.Name + " (dry run)", Field: "runAsUser=0, allowPrivilegeEscalation=true", Want: "rejected by PodSecurity restricted"}
		switch {
		case err == nil:
			ev.Got = "admitted"
			r.fail(ev, "a pod breaking the restricted profile is admitted in namespace "+ns)
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity"):
			ev.Got = "forbidden by PodSecurity"
			r.ok(ev)
		default:
			r.errorf("dry-run pod in %s was refused for another reason, so PodSecurity was not proven: %v", ns, err)
		}
	}
	return r.outcome(fmt.Sprintf("restricted is enforced in %s; a root pod with privilege escalation is rejected", strings.Join(namespaces, ", ")))
}

// unrestrictedPod breaks the restricted profile several ways (its image
// passes the image guardrail, so only Pod Security can refuse it) (root user,
// privilege escalation, no seccomp profile, capabilities not dropped) yet
// is valid and allowed by baseline, so only a restricted enforcement
// rejects it. It is not privileged: with --allow-privileged=false (no
// nodes) validation would refuse that before PodSecurity is reached.
func unrestrictedPod(ns, image string) *corev1.Pod {
	yes, root := true, int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: canaryName("pod"), Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "canary", Image: image, // never pulled: dry run
			SecurityContext: &corev1.SecurityContext{RunAsUser: &root, AllowPrivilegeEscalation: &yes},
		}}},
	}
}

type admissionConfigFile struct {
	Plugins []admissionPluginEntry `json:"plugins"`
}

type admissionPluginEntry struct {
	Name          string          `json:"name"`
	Path          string          `json:"path"`
	Configuration json.RawMessage `json:"configuration"`
}

type podSecurityDefaults struct {
	Defaults   map[string]string `json:"defaults"`
	Exemptions struct {
		Usernames      []string `json:"usernames"`
		RuntimeClasses []string `json:"runtimeClasses"`
		Namespaces     []string `json:"namespaces"`
	} `json:"exemptions"`
}

// judgeAdmissionConfig reads the live AdmissionConfiguration: namespaces
// without labels get its defaults, and exempt namespaces skip the check.
func judgeAdmissionConfig(ctx context.Context, t Target, r *findings, path string, workload []string) {
	judgeRendered(ctx, t, r, path, hardening.AdmissionConfig)
	data, err := t.ReadFile(ctx, path)
	if err != nil {
		r.errorf("read --admission-control-config-file %s: %v", path, err)
		return
	}
	var ac admissionConfigFile
	if err := yaml.Unmarshal(data, &ac); err != nil {
		r.errorf("%s is not a readable AdmissionConfiguration: %v", path, err)
		return
	}
	i := slices.IndexFunc(ac.Plugins, func(p admissionPluginEntry) bool { return p.Name == "PodSecurity" })
	ev := Evidence{Object: path, Field: "PodSecurity defaults.enforce", Want: v1alpha1.PSSRestricted}
	if i < 0 {
		ev.Got = "no PodSecurity configuration (default privileged)"
		r.fail(ev, "namespaces without labels are not checked by Pod Security")
		return
	}
	raw := ac.Plugins[i].Configuration
	if len(raw) == 0 && ac.Plugins[i].Path != "" {
		if raw, err = t.ReadFile(ctx, ac.Plugins[i].Path); err != nil {
			r.errorf("read PodSecurity configuration %s: %v", ac.Plugins[i].Path, err)
			return
		}
	}
	var ps podSecurityDefaults
	if err := yaml.Unmarshal(raw, &ps); err != nil {
		r.errorf("PodSecurity configuration in %s: %v", path, err)
		return
	}
	ev.Got = orNone(ps.Defaults["enforce"])
	if ps.Defaults["enforce"] == v1alpha1.PSSRestricted {
		r.ok(ev)
	} else {
		r.fail(ev, "namespaces without labels enforce "+ev.Got)
	}
	for _, ns := range ps.Exemptions.Namespaces {
		if slices.Contains(workload, ns) {
			r.fail(Evidence{Object: path, Field: "PodSecurity exemptions.namespaces", Want: "no workload namespace", Got: ns},
				"workload namespace "+ns+" is exempt from Pod Security")
		}
	}
	if len(ps.Exemptions.Usernames) > 0 {
		r.warn(Evidence{Object: path, Field: "PodSecurity exemptions.usernames", Want: "none", Got: strings.Join(ps.Exemptions.Usernames, ",")},
			"users "+strings.Join(ps.Exemptions.Usernames, ",")+" bypass Pod Security")
	}
}
