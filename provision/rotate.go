package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/kms"
)

// RotateResult is what `secprov rotate-keys` did to one cluster.
type RotateResult struct {
	Cluster string `json:"cluster"`
	// FromKeyID and ToKeyID are the KMS key IDs (transit key versions)
	// before and after the rotation.
	FromKeyID string `json:"fromKeyID"`
	ToKeyID   string `json:"toKeyID"`
	// Observed is how long the API server took to encrypt with the new key
	// (it polls the plugin's Status about once a minute).
	Observed time.Duration `json:"observedAfter"`
	// Rewritten objects were stored under an older key and written again.
	Rewritten int `json:"rewritten"`
	// Current counts the stored objects under the new key afterwards;
	// Stale those still under an older one (0 unless writes failed).
	Current int `json:"current"`
	Stale   int `json:"stale"`
}

// RotateStep reports progress: a step starting (done false) or ending.
type RotateStep func(step string, done bool, err error)

// rotateCanary is the secret rotate-keys rewrites to see which key the API
// server encrypts with.
const rotateCanary = "secprov-rotate-canary"

// ObserveTimeout bounds the wait for the API server to pick up the new
// key: it polls its KMS plugin every minute.
const ObserveTimeout = 3 * time.Minute

// RotateKeys rotates the cluster's Vault transit key, waits until the API
// server encrypts with the new version, and rewrites every object of the
// encrypted resources that is still stored under an older version, so the
// raw etcd values carry the new key. Old versions stay usable for
// decryption in Vault: nothing becomes unreadable if a step fails, and
// running it again finishes the job.
func RotateKeys(ctx context.Context, t verify.Target, step RotateStep) (*RotateResult, error) {
	if step == nil {
		step = func(string, bool, error) {}
	}
	info := t.Info()
	res := &RotateResult{Cluster: info.Name}
	if info.EncryptionProvider != v1alpha1.EncryptionVaultKMS {
		return nil, fmt.Errorf("cluster %s encrypts with %s, not vault-kms: there is no Vault key to rotate", info.Name, orNone(info.EncryptionProvider))
	}
	v, err := t.Vault(ctx)
	if err != nil {
		return nil, err
	}
	admin, err := v.Admin.Client(ctx)
	if err != nil {
		return nil, err
	}
	setup := vault.NewSetupWithClient(admin, nil)
	cs, err := t.Client()
	if err != nil {
		return nil, err
	}
	n := v.Names

	run := func(name string, f func() error) error {
		step(name, false, nil)
		err := f()
		step(name, true, err)
		return err
	}
	if err := run(fmt.Sprintf("rotate transit key %s/%s", n.TransitMount, n.TransitKey), func() error {
		before, ok, err := setup.ReadTransit(ctx, n.TransitMount, n.TransitKey)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("vault %s: transit key %s/%s does not exist; run secprov up", v.Admin.Address, n.TransitMount, n.TransitKey)
		}
		after, err := setup.RotateTransit(ctx, n.TransitMount, n.TransitKey)
		if err != nil {
			return err
		}
		res.FromKeyID = kms.KeyID(n.TransitMount, n.TransitKey, before.LatestVersion)
		res.ToKeyID = kms.KeyID(n.TransitMount, n.TransitKey, after.LatestVersion)
		return nil
	}); err != nil {
		return res, err
	}
	start := time.Now()
	if err := run("wait for the API server to encrypt with "+res.ToKeyID, func() error {
		return waitForKey(ctx, t, cs, v.KMSSocket, res.ToKeyID)
	}); err != nil {
		return res, err
	}
	res.Observed = time.Since(start).Round(time.Second)
	if err := run("rewrite objects stored under older keys", func() error {
		return rewriteStale(ctx, t, res)
	}); err != nil {
		return res, err
	}
	if res.Stale > 0 {
		return res, fmt.Errorf("%d object(s) are still under an older key; run secprov rotate-keys --cluster %s again (it rewrites what is left)", res.Stale, info.Name)
	}
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// waitForKey writes the canary secret until its raw etcd value carries
// want. The plugin reports the new version at once; the API server
// notices at its next Status poll.
func waitForKey(ctx context.Context, t verify.Target, cs kubernetes.Interface, socket, want string) error {
	ctx, cancel := context.WithTimeout(ctx, ObserveTimeout)
	defer cancel()
	ns := hardening.VaultAuthNamespace
	key := "/registry/secrets/" + ns + "/" + rotateCanary
	defer func() {
		dctx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		_ = cs.CoreV1().Secrets(ns).Delete(dctx, rotateCanary, metav1.DeleteOptions{})
	}()
	last := ""
	for i := 0; ; i++ {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: rotateCanary, Namespace: ns,
			Labels: map[string]string{hardening.ManagedByLabel: "secprov-rotate-keys"}},
			Data: map[string][]byte{"n": fmt.Appendf(nil, "%d-%d", time.Now().UnixNano(), i)}}
		_, err := cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
		}
		if err != nil {
			return fmt.Errorf("write canary secret %s/%s: %w", ns, rotateCanary, err)
		}
		raw, found, err := t.EtcdGet(ctx, key)
		if err != nil {
			return fmt.Errorf("read %s from etcd: %w", key, err)
		}
		if found {
			st, err := kms.ParseStored(raw)
			if err != nil {
				return fmt.Errorf("%s is not stored by the KMS provider: %w", key, err)
			}
			if st.KeyID == want {
				return nil
			}
			last = st.KeyID
		}
		select {
		case <-ctx.Done():
			plugin := "unknown"
			if st, err := kms.Probe(context.Background(), socket); err == nil {
				plugin = st.KeyID
			}
			return fmt.Errorf("the API server still encrypts with %s after %s (plugin reports %s): check the KMS plugin log and run secprov rotate-keys again", last, ObserveTimeout, plugin)
		case <-time.After(2 * time.Second):
		}
	}
}

// rewriteStale finds every stored object of the encrypted resources whose
// raw value is under an older key and writes it back unchanged through the
// API: the API server re-encrypts a value whose key is stale.
func rewriteStale(ctx context.Context, t verify.Target, res *RotateResult) error {
	cfg, err := t.RESTConfig()
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cs, err := t.Client()
	if err != nil {
		return err
	}
	var errs []error
	scan := func(rewrite bool) (current, stale int) {
		for _, r := range t.Info().Spec.EncryptionAtRest.Resources {
			gvr, prefix, err := resolveResource(cs, r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			keys, err := t.EtcdKeys(ctx, prefix)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s in etcd: %w", prefix, err))
				continue
			}
			for _, k := range keys {
				raw, found, err := t.EtcdGet(ctx, k)
				if err != nil || !found {
					continue
				}
				st, err := kms.ParseStored(raw)
				if err != nil || st.KeyID == res.ToKeyID {
					if err == nil {
						current++
					}
					continue
				}
				if !rewrite {
					stale++
					continue
				}
				ns, name := splitKey(strings.TrimPrefix(k, prefix))
				if err := rewriteOne(ctx, dc, gvr, ns, name); err != nil {
					errs = append(errs, err)
					continue
				}
				res.Rewritten++
			}
		}
		return current, stale
	}
	scan(true)
	res.Current, res.Stale = scan(false)
	return errors.Join(errs...)
}

func splitKey(rest string) (ns, name string) {
	if a, b, ok := strings.Cut(rest, "/"); ok {
		return a, b
	}
	return "", rest
}

func rewriteOne(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) error {
	ri := dc.Resource(gvr).Namespace(ns)
	for range 5 {
		obj, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: nothing left to rewrite
		}
		if err != nil {
			return fmt.Errorf("get %s %s/%s: %w", gvr.Resource, ns, name, err)
		}
		_, err = ri.Update(ctx, obj, metav1.UpdateOptions{FieldManager: "secprov-rotate-keys"})
		if apierrors.IsConflict(err) {
			continue // changed meanwhile; that write used the new key too, but make sure
		}
		if err != nil {
			return fmt.Errorf("rewrite %s %s/%s: %w", gvr.Resource, ns, name, err)
		}
		return nil
	}
	return fmt.Errorf("rewrite %s %s/%s: kept conflicting; run rotate-keys again", gvr.Resource, ns, name)
}

// resolveResource maps an encryptionAtRest resource ("secrets",
// "widgets.example.com") to its API resource and etcd key prefix.
func resolveResource(cs kubernetes.Interface, r string) (schema.GroupVersionResource, string, error) {
	name, group, _ := strings.Cut(r, ".")
	if group == "" {
		return schema.GroupVersionResource{Version: "v1", Resource: name}, "/registry/" + name + "/", nil
	}
	lists, err := cs.Discovery().ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return schema.GroupVersionResource{}, "", fmt.Errorf("discover %s: %w", r, err)
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil || gv.Group != group {
			continue
		}
		if slices.ContainsFunc(l.APIResources, func(a metav1.APIResource) bool { return a.Name == name }) {
			prefix := "/registry/" + group + "/" + name + "/"
			if group == "apps" || strings.HasSuffix(group, ".k8s.io") {
				prefix = "/registry/" + name + "/"
			}
			return gv.WithResource(name), prefix, nil
		}
	}
	return schema.GroupVersionResource{}, "", fmt.Errorf("resource %s is not served by the API server", r)
}
