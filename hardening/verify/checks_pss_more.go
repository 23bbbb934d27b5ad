package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// systemNamespaces may be exempt without the blueprint naming them.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// livePodSecurityConfig reads the PodSecurity plugin configuration the
// running API server uses.
func livePodSecurityConfig(ctx context.Context, t Target) (*podSecurityDefaults, string, error) {
	c, err := t.Component(ctx, APIServer)
	if err != nil {
		return nil, "", err
	}
	path := Args(c.Args)["admission-control-config-file"]
	if path == "" {
		return nil, "", nil
	}
	data, err := t.ReadFile(ctx, path)
	if err != nil {
		return nil, path, fmt.Errorf("read --admission-control-config-file %s: %w", path, err)
	}
	var ac admissionConfigFile
	if err := yaml.Unmarshal(data, &ac); err != nil {
		return nil, path, fmt.Errorf("%s is not a readable AdmissionConfiguration: %w", path, err)
	}
	i := slices.IndexFunc(ac.Plugins, func(p admissionPluginEntry) bool { return p.Name == "PodSecurity" })
	if i < 0 {
		return nil, path, nil
	}
	raw := ac.Plugins[i].Configuration
	if len(raw) == 0 && ac.Plugins[i].Path != "" {
		if raw, err = t.ReadFile(ctx, ac.Plugins[i].Path); err != nil {
			return nil, path, fmt.Errorf("read PodSecurity configuration %s: %w", ac.Plugins[i].Path, err)
		}
	}
	var ps podSecurityDefaults
	if err := yaml.Unmarshal(raw, &ps); err != nil {
		return nil, path, fmt.Errorf("PodSecurity configuration in %s: %w", path, err)
	}
	return &ps, path, nil
}

// checkPodSecurityExemptions (SP-PSS-002): the live exemptions are few,
// are system namespaces or ones the blueprint names, never a workload
// namespace, and exempt no user or runtime class.
func checkPodSecurityExemptions(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	ps, path, err := livePodSecurityConfig(ctx, t)
	switch {
	case err != nil:
		return Errorf("%v", err)
	case ps == nil:
		return Fail("the API server has no PodSecurity configuration, so nothing is enforced by default",
			Evidence{Object: "kube-apiserver", Field: "PodSecurity admission configuration", Want: "present", Got: "absent " + orNone(path)})
	}
	workload := hardening.WorkloadNamespaces(info.Spec)
	ex := ps.Exemptions.Namespaces
	most := blueprints.PodSecurityExemptionsFew.Thresholds().MaxExemptNamespaces
	ev := Evidence{Object: path, Field: "PodSecurity exemptions.namespaces", Want: fmt.Sprintf("at most %d", most), Got: fmt.Sprintf("%d (%s)", len(ex), strings.Join(ex, ","))}
	if len(ex) > most {
		r.fail(ev, fmt.Sprintf("%d namespaces are exempt from Pod Security", len(ex)))
	} else {
		r.ok(ev)
	}
	for _, ns := range ex {
		e := Evidence{Object: path, Field: "PodSecurity exemptions.namespaces", Want: "system or blueprint namespaces, no workload namespace", Got: ns}
		switch {
		case slices.Contains(workload, ns):
			r.fail(e, "workload namespace "+ns+" is exempt from Pod Security")
		case !slices.Contains(systemNamespaces, ns) && !slices.Contains(info.Spec.PodSecurity.ExemptNamespaces, ns):
			r.fail(e, "namespace "+ns+" is exempt although the blueprint does not exempt it")
		default:
			r.ok(e)
		}
	}
	for field, list := range map[string][]string{"usernames": ps.Exemptions.Usernames, "runtimeClasses": ps.Exemptions.RuntimeClasses} {
		e := Evidence{Object: path, Field: "PodSecurity exemptions." + field, Want: "none", Got: orNone(strings.Join(list, ","))}
		if len(list) > 0 {
			r.fail(e, field+" "+strings.Join(list, ",")+" bypass Pod Security")
		} else {
			r.ok(e)
		}
	}
	return r.outcome(fmt.Sprintf("exempt: %s only", orNone(strings.Join(ex, ", "))))
}

// checkPodSecurityAuditWarn (SP-PSS-003): the cluster-wide defaults and
// every workload namespace audit and warn at restricted, so violations
// show before enforcement tightens.
func checkPodSecurityAuditWarn(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	ps, path, err := livePodSecurityConfig(ctx, t)
	switch {
	case err != nil:
		return Errorf("%v", err)
	case ps == nil:
		r.fail(Evidence{Object: "kube-apiserver", Field: "PodSecurity admission configuration", Want: "present", Got: "absent"}, "no PodSecurity defaults")
	default:
		for _, mode := range []string{"audit", "warn"} {
			e := Evidence{Object: path, Field: "PodSecurity defaults." + mode, Want: v1alpha1.PSSRestricted, Got: orNone(ps.Defaults[mode])}
			if e.Got == v1alpha1.PSSRestricted {
				r.ok(e)
			} else {
				r.fail(e, "cluster-wide Pod Security "+mode+" is "+e.Got)
			}
		}
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	for _, ns := range hardening.WorkloadNamespaces(info.Spec) {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.fail(Evidence{Object: "Namespace/" + ns, Field: "metadata.name", Want: "exists", Got: "missing"}, "workload namespace "+ns+" does not exist")
			continue
		}
		if err != nil {
			r.errorf("get namespace %s: %v", ns, err)
			continue
		}
		for _, mode := range []string{"audit", "warn"} {
			key := hardening.PodSecurityLabelKey + mode
			e := Evidence{Object: "Namespace/" + ns, Field: "label " + key, Want: v1alpha1.PSSRestricted, Got: orNone(n.Labels[key])}
			if e.Got == v1alpha1.PSSRestricted {
				r.ok(e)
			} else {
				r.fail(e, fmt.Sprintf("namespace %s %ss at %s", ns, mode, e.Got))
			}
		}
	}
	return r.outcome("audit and warn at restricted cluster-wide and in every workload namespace")
}
