package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
)

// vaultProbeChecks is SP-VAULT-004: the workload's whole path to its
// secrets, live. SP-VAULT-001/002 prove the roles and policies with
// Vault's own capability answers; this one runs pods.
func vaultProbeChecks() []Check {
	return []Check{
		{ID: blueprints.VaultWorkloadsLive, Run: checkVaultWorkloadsLive, Needs: needs(API, Nodes, NetworkProbes), Timeout: netProbeTimeout},
	}
}

// Where the Vault probe pods find what a workload gets.
const (
	vaultProbeCADir     = "/etc/secprov-vault"
	vaultProbeTokenDir  = "/var/run/secrets/secprov-vault"
	vaultProbeTokenFile = vaultProbeTokenDir + "/token"
	// vaultProbeTimeout bounds one attempt: a TLS handshake, a login and
	// a read through the relay.
	vaultProbeTimeout = 5 * time.Second
)

// vaultFlow is one Vault attempt of the check: from a pod in Namespace,
// read Path; Want is "read" (logged in, allowed: the secret or nothing
// stored there), "denied" (Vault refused the read) or "dropped" (no
// connection at all: network policy).
type vaultFlow struct {
	ID, Namespace, Path, Want string
	Verdict, Detail           string
}

// planVaultProbes: per listed namespace, a path its grant covers (must
// read) and one no grant covers (Vault must refuse); from one workload
// namespace Vault does not list, the first flow again (must not even
// connect).
func planVaultProbes(spec v1alpha1.Spec) []*vaultFlow {
	var out []*vaultFlow
	listed := map[string]bool{}
	for i, vn := range spec.Vault.Namespaces {
		listed[vn.Namespace] = true
		path := vn.Namespace + "/secprov-verify-probe"
		if len(vn.Paths) > 0 {
			path = grantedPath(vn.Paths[0])
		}
		out = append(out,
			&vaultFlow{ID: fmt.Sprintf("vault-%d-granted", i), Namespace: vn.Namespace, Path: path, Want: "read"},
			&vaultFlow{ID: fmt.Sprintf("vault-%d-other", i), Namespace: vn.Namespace, Path: "secprov-verify-ungranted/" + vn.Namespace, Want: "denied"},
		)
	}
	for _, ns := range hardening.WorkloadNamespaces(spec) {
		if !listed[ns] && len(out) > 0 {
			out = append(out, &vaultFlow{ID: "vault-unlisted", Namespace: ns, Path: out[0].Path, Want: "dropped"})
			break
		}
	}
	return out
}

// grantedPath is a concrete path a Vault policy path pattern covers: "*"
// and "+" become a probe name.
func grantedPath(p string) string {
	p = strings.ReplaceAll(p, "+", "secprov-verify-probe")
	if strings.HasSuffix(p, "*") {
		p = strings.TrimSuffix(p, "*") + "secprov-verify-probe"
	}
	return strings.TrimSuffix(p, "/")
}

// vaultFlowMet judges an observed verdict against what the flow wants.
func vaultFlowMet(f *vaultFlow) bool {
	switch f.Want {
	case "read":
		return f.Verdict == "read" || f.Verdict == "not-found"
	case "denied":
		return f.Verdict == "read-denied"
	default: // dropped
		return f.Verdict == "timeout" || f.Verdict == "unreachable"
	}
}

func checkVaultWorkloadsLive(ctx context.Context, t Target) Outcome {
	spec := t.Info().Spec
	if !spec.Vault.IsEnabled() || len(spec.Vault.Namespaces) == 0 {
		return Skip("spec.vault lists no namespaces, so no workload reads Vault")
	}
	image, err := t.ProbeImage(ctx)
	if err != nil {
		return Errorf("probe image: %v", err)
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	flows := planVaultProbes(spec)
	var r findings
	// What a workload of a listed namespace is told; the unlisted pod is
	// told the same, as if it had copied it.
	var told map[string]string
	listed := map[string]bool{}
	for _, vn := range spec.Vault.Namespaces {
		listed[vn.Namespace] = true
		cm, err := cs.CoreV1().ConfigMaps(vn.Namespace).Get(ctx, hardening.VaultConfigMap, metav1.GetOptions{})
		ev := Evidence{Object: "ConfigMap/" + vn.Namespace + "/" + hardening.VaultConfigMap, Field: "data", Want: "Vault's address, CA, auth path and role"}
		switch {
		case apierrors.IsNotFound(err):
			ev.Got = "missing"
			r.fail(ev, "namespace "+vn.Namespace+" has no "+hardening.VaultConfigMap+" ConfigMap: its pods cannot find Vault")
		case err != nil:
			r.errorf("get %s: %v", ev.Object, err)
		default:
			if told == nil {
				told = cm.Data
			}
		}
	}
	if r.failed() || told == nil {
		return r.outcome("")
	}
	sweepNetProbes(ctx, cs, hardening.WorkloadNamespaces(spec))
	suffix := randSuffix()
	byNS := map[string][]*vaultFlow{}
	var order []string
	for _, f := range flows {
		if _, ok := byNS[f.Namespace]; !ok {
			order = append(order, f.Namespace)
		}
		byNS[f.Namespace] = append(byNS[f.Namespace], f)
	}
	pods := map[string]string{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		zero := int64(0)
		for ns, p := range pods {
			_ = cs.CoreV1().Pods(ns).Delete(cctx, p, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}()
	for i, ns := range order {
		name := fmt.Sprintf("vaultprobe-%d-%s", i, suffix)
		if err := createVaultProbePod(ctx, cs, ns, name, image, byNS[ns], listed[ns], told); err != nil {
			return Errorf("%v", err)
		}
		pods[ns] = name
	}
	for _, ns := range order {
		if _, err := waitProbePod(ctx, cs, ns, pods[ns], true); err != nil {
			return Errorf("%v", err)
		}
		c := &probeClient{Namespace: ns, Pod: pods[ns]}
		for _, f := range byNS[ns] {
			c.Flows = append(c.Flows, &probeFlow{ID: f.ID})
		}
		if err := readProbeResults(ctx, cs, c); err != nil {
			return Errorf("%v", err)
		}
		for i, f := range byNS[ns] {
			f.Verdict, f.Detail = c.Flows[i].Verdict, c.Flows[i].Detail
		}
	}
	addr := told["VAULT_ADDR"]
	for _, f := range flows {
		ev := Evidence{Object: "pod in " + f.Namespace + " → Vault " + addr, Field: "login, read " + f.Path, Want: f.Want, Got: f.Verdict + ": " + f.Detail}
		if vaultFlowMet(f) {
			r.ok(ev)
			continue
		}
		switch f.Want {
		case "read":
			r.fail(ev, fmt.Sprintf("a pod in %s cannot read %s, which its grant covers: %s", f.Namespace, f.Path, f.Verdict))
		case "denied":
			r.fail(ev, fmt.Sprintf("a pod in %s was not refused %s, which no grant of its covers: %s", f.Namespace, f.Path, f.Verdict))
		default:
			r.fail(ev, fmt.Sprintf("a pod in %s, which spec.vault does not list, reached Vault: %s", f.Namespace, f.Verdict))
		}
	}
	return r.outcome("pods of the listed namespaces log in with their service-account tokens and read their paths, Vault refuses other paths, and pods of other namespaces cannot connect")
}

// createVaultProbePod runs the flows as a workload would: the Vault
// ConfigMap as its environment and CA file (a listed namespace's own; the
// unlisted one gets the same values, without the CA), and a projected
// service-account token of its namespace's default service account.
func createVaultProbePod(ctx context.Context, cs kubernetes.Interface, ns, name, image string, flows []*vaultFlow, listed bool, told map[string]string) error {
	plan := struct {
		Timeout string           `json:"timeout"`
		Flows   []map[string]any `json:"flows"`
	}{Timeout: vaultProbeTimeout.String()}
	for _, f := range flows {
		pf := map[string]any{"id": f.ID, "kind": "vault", "tokenFile": vaultProbeTokenFile, "path": f.Path}
		if f.Want != "dropped" {
			pf["attempts"] = 3 // a new endpoint may still be settling
		}
		plan.Flows = append(plan.Flows, pf)
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	spec := probePodSpec(image, []string{"run", string(raw)}, corev1.RestartPolicyNever)
	expiry := int64(600)
	spec.Volumes = []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expiry}}}}}}}
	c := &spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{{Name: "token", MountPath: vaultProbeTokenDir, ReadOnly: true}}
	if listed {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "vault-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: hardening.VaultConfigMap}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "vault-ca", MountPath: vaultProbeCADir, ReadOnly: true})
		c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: hardening.VaultConfigMap}}}}
		c.Env = []corev1.EnvVar{{Name: "VAULT_CACERT", Value: vaultProbeCADir + "/ca.crt"}}
	} else {
		for _, k := range []string{"VAULT_ADDR", "VAULT_TLS_SERVER_NAME", "VAULT_AUTH_PATH", "VAULT_ROLE", "VAULT_KV_MOUNT"} {
			c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: told[k]})
		}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{ProbeLabel: netProbeValue, hardening.ManagedByLabel: hardening.ManagedByValue}}, Spec: spec}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Vault probe pod %s/%s: %w", ns, name, err)
	}
	return nil
}
