package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// encryptionChecks prove encryption at rest on the raw etcd values
// (SP-ENC-001..003). The split: ENC-001 proves new secrets are written
// encrypted with the encryption provider the cluster is meant to use (a
// canary); ENC-002 judges the write (first) encryption provider of every entry
// of the live EncryptionConfiguration; ENC-003 proves secrets and every
// resource the blueprint lists are covered, and that every object already
// stored under them is encrypted, which catches data written before encryption
// was turned on and never rewritten.
func encryptionChecks() []Check {
	return []Check{
		{ID: blueprints.EncryptionAtRestOn, Exclusive: true, Run: checkEncryptionCanary, Needs: needs(API, Processes, RawEtcd)},
		{ID: blueprints.EncryptionProviderStrong, Run: checkEncryptionProvider, Needs: needs(Processes, Files)},
		{ID: blueprints.EncryptionCoversSecrets, Run: checkEncryptedResources, Needs: needs(Processes, Files, RawEtcd)},
	}
}

// encryptionOff is why the checks of the live EncryptionConfiguration
// skip when there is none.
var encryptionOff = fmt.Sprintf("encryption at rest is off (kube-apiserver has no --encryption-provider-config); %s reports it", blueprints.EncryptionAtRestOn)

// encPrefix is what every encrypted value starts with; identity writes the
// plain serialization (protobuf "k8s\x00…" or JSON).
const encPrefix = "k8s:enc:"

// cleanupTimeout bounds deleting a canary after the check's own context
// has ended.
const cleanupTimeout = 10 * time.Second

// etcdPrefix is the API server's --etcd-prefix (default /registry).
func etcdPrefix(c *Component) string {
	if c != nil {
		if p := Args(c.Args)["etcd-prefix"]; p != "" {
			return strings.TrimSuffix(p, "/")
		}
	}
	return "/registry"
}

// describeRaw says what a raw etcd value is without showing its content:
// the encryption prefix (provider, version and key name, none of them
// secret) or the kind of plaintext.
func describeRaw(raw []byte) string {
	switch {
	case bytes.HasPrefix(raw, []byte(encPrefix)):
		end, colons := 0, 0
		for i, b := range raw[:min(len(raw), 96)] {
			if b == ':' {
				colons++
				if colons == 5 {
					end = i + 1
					break
				}
			}
		}
		if end == 0 {
			return encPrefix + "…"
		}
		return string(raw[:end])
	case bytes.HasPrefix(raw, []byte("k8s\x00")):
		return `plaintext protobuf (k8s\x00…)`
	case bytes.HasPrefix(raw, []byte("{")):
		return "plaintext JSON"
	}
	return "unrecognised value"
}

func deleteSecret(ctx context.Context, cs kubernetes.Interface, ns, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// A failed delete leaves a secret holding only a random value; the next
	// run's canary has another name, so nothing depends on it being gone.
	_ = cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
}

// checkEncryptionCanary writes a secret with a random value and reads its
// raw etcd value back: it must carry the prefix of the encryption provider
// the cluster reports and must not contain the value.
func checkEncryptionCanary(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	comps, _ := flagCheck(ctx, t, blueprints.EncryptionAtRestOn, []string{APIServer}, &r)
	want := hardening.EncryptionPrefix(info.EncryptionProvider, info.KMSName)
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	const ns = "default"
	name := canaryName("enc")
	value := "secprov-canary-" + randomHex(16)
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{hardening.ManagedByLabel: "secprov-verify"}},
		Data:       map[string][]byte{"canary": []byte(value)},
	}, metav1.CreateOptions{})
	if err != nil {
		r.errorf("create canary secret %s/%s: %v", ns, name, err)
		return r.outcome("")
	}
	defer deleteSecret(ctx, cs, ns, name)
	key := etcdPrefix(comps[APIServer]) + "/secrets/" + ns + "/" + name
	raw, found, err := t.EtcdGet(ctx, key)
	switch {
	case err != nil:
		r.errorf("read %s from etcd: %v", key, err)
		return r.outcome("")
	case !found:
		r.errorf("canary %s is not in etcd under %s (is --etcd-prefix different?)", name, key)
		return r.outcome("")
	}
	wantDesc := want
	if want == "" {
		wantDesc = encPrefix + "… (cluster reports provider " + orNone(info.EncryptionProvider) + ")"
	}
	ev := Evidence{Object: "etcd " + key, Field: "stored value", Want: wantDesc, Got: describeRaw(raw)}
	switch {
	case bytes.Contains(raw, []byte(value)):
		ev.Got += ", canary value readable"
		r.fail(ev, "a new secret is stored in plaintext")
	case want != "" && !bytes.HasPrefix(raw, []byte(want)):
		r.fail(ev, "a new secret is stored as "+ev.Got+", not with provider "+info.EncryptionProvider)
	case want == "" && !bytes.HasPrefix(raw, []byte(encPrefix)):
		r.fail(ev, "a new secret is stored unencrypted")
	default:
		r.ok(ev)
	}
	return r.outcome("a new secret is stored encrypted (" + describeRaw(raw) + ")")
}

type encryptionConfig struct {
	Resources []struct {
		Resources []string `json:"resources"`
		// Providers are kept raw: they hold key material that must never
		// be decoded into anything that might be printed.
		Providers []map[string]json.RawMessage `json:"providers"`
	} `json:"resources"`
}

// liveEncryptionConfig reads the file the API server's
// --encryption-provider-config names. path is empty when encryption is off.
func liveEncryptionConfig(ctx context.Context, t Target, r *findings) (cfg *encryptionConfig, path string) {
	c, err := t.Component(ctx, APIServer)
	if err != nil {
		r.errorf("read kube-apiserver's arguments: %v", err)
		return nil, ""
	}
	path = Args(c.Args)["encryption-provider-config"]
	if path == "" {
		return nil, ""
	}
	data, err := t.ReadFile(ctx, path)
	if err != nil {
		r.errorf("read --encryption-provider-config %s: %v", path, err)
		return nil, path
	}
	cfg = &encryptionConfig{}
	if err := yaml.Unmarshal(data, cfg); err != nil {
		// yaml's error may quote the offending line, which could be a key.
		r.errorf("%s is not a readable EncryptionConfiguration", path)
		return nil, path
	}
	return cfg, path
}

// judgeEncryptionProvider names an encryption provider entry of a live
// EncryptionConfiguration and finds it in the blueprints table, which rates
// it (strong passes, fair warns, weaker fails). An entry the table does not
// know counts as plaintext.
func judgeEncryptionProvider(p map[string]json.RawMessage) (string, blueprints.EncryptionProvider) {
	for _, e := range blueprints.EncryptionProviders() { // strongest first
		key, _, _ := strings.Cut(e.Config, " ")
		raw, ok := p[key]
		if !ok {
			continue
		}
		if key != "kms" {
			return key, e
		}
		var k struct {
			APIVersion string `json:"apiVersion"`
			Name       string `json:"name"`
		}
		_ = json.Unmarshal(raw, &k)
		version := "v1"
		if k.APIVersion == "v2" {
			version = "v2"
		}
		e, _ = blueprints.EncryptionProviderConfigured(key + " " + version)
		return key + " " + version + " (" + k.Name + ")", e
	}
	return "unknown provider", blueprints.EncryptionProvider{}
}

// strongEncryption names the strong encryption providers as a live
// EncryptionConfiguration does ("kms v2 or secretbox").
func strongEncryption() string {
	var out []string
	for _, e := range blueprints.EncryptionProviders() {
		if e.Strength == blueprints.EncryptionStrong {
			out = append(out, e.Config)
		}
	}
	return strings.Join(out, " or ")
}

// checkEncryptionProvider judges the write (first) encryption provider of
// every resource entry of the live EncryptionConfiguration.
func checkEncryptionProvider(ctx context.Context, t Target) Outcome {
	var r findings
	cfg, path := liveEncryptionConfig(ctx, t, &r)
	if cfg == nil {
		if path == "" && len(r.errs) == 0 {
			return Skip(encryptionOff)
		}
		return r.outcome("")
	}
	if len(cfg.Resources) == 0 {
		r.fail(Evidence{Object: path, Field: "resources", Want: "at least one entry", Got: "none"}, path+" encrypts nothing")
	}
	var names []string
	for i, res := range cfg.Resources {
		field := fmt.Sprintf("resources[%d].providers[0] (%s)", i, strings.Join(res.Resources, ","))
		ev := Evidence{Object: path, Field: field, Want: strongEncryption()}
		if len(res.Providers) == 0 {
			ev.Got = "no provider"
			r.fail(ev, field+" has no provider")
			continue
		}
		name, enc := judgeEncryptionProvider(res.Providers[0])
		ev.Got = name
		names = append(names, name)
		switch enc.Strength {
		case blueprints.EncryptionStrong:
			r.ok(ev)
		case blueprints.EncryptionFair:
			r.warn(ev, strings.Join(res.Resources, ",")+" are written with "+name+"; move to "+strongEncryption())
		default:
			r.fail(ev, strings.Join(res.Resources, ",")+" are written with "+name)
		}
	}
	pass := "writes with " + strings.Join(slices.Compact(names), ", ")
	if spec := t.Info().Spec.EncryptionAtRest.Provider; spec != "" && spec != t.Info().EncryptionProvider {
		pass += fmt.Sprintf(" (the blueprint asks for %s; this provider realises it as %s)", spec, t.Info().EncryptionProvider)
	}
	return r.outcome(pass)
}

// coveredBy reports whether an EncryptionConfiguration resource pattern
// covers resource ("secrets", "deployments.apps"): exact, "*.*" (all),
// "*." (the core group) or "*.GROUP".
func coveredBy(pattern, resource string) bool {
	if pattern == resource || pattern == "*.*" {
		return true
	}
	if g, ok := strings.CutPrefix(pattern, "*."); ok {
		_, rg, hasGroup := strings.Cut(resource, ".")
		if g == "" {
			return !hasGroup
		}
		return hasGroup && rg == g
	}
	return false
}

// etcdPath is where the API server stores a resource, under prefix.
// Built-in resources live at PREFIX/RESOURCE/ (services under
// services/specs, because endpoints share services/); custom resources at
// PREFIX/GROUP/RESOURCE/. ok is false for wildcards.
func etcdPath(prefix, resource string) (string, bool) {
	if strings.Contains(resource, "*") {
		return "", false
	}
	res, group, hasGroup := strings.Cut(resource, ".")
	switch {
	case res == "services" && !hasGroup:
		return prefix + "/services/specs/", true
	case hasGroup && strings.Contains(group, ".") && !strings.HasSuffix(group, ".k8s.io"):
		return prefix + "/" + group + "/" + res + "/", true
	}
	return prefix + "/" + res + "/", true
}

// checkEncryptedResources: secrets and every resource the blueprint lists
// have a non-identity write provider, and every object stored under them
// carries an encryption prefix (the reported encryption provider's, else
// warn).
func checkEncryptedResources(ctx context.Context, t Target) Outcome {
	var r findings
	info := t.Info()
	cfg, path := liveEncryptionConfig(ctx, t, &r)
	if cfg == nil {
		if path == "" && len(r.errs) == 0 {
			return Skip(encryptionOff)
		}
		return r.outcome("")
	}
	want := []string{"secrets"}
	for _, res := range info.Spec.EncryptionAtRest.Resources {
		if !slices.Contains(want, res) {
			want = append(want, res)
		}
	}
	var covered []string
	for _, res := range want {
		ev := Evidence{Object: path, Field: "resources", Want: res + " with a non-identity write provider", Got: "not listed"}
		found := false
		for _, e := range cfg.Resources {
			if !slices.ContainsFunc(e.Resources, func(p string) bool { return coveredBy(p, res) }) {
				continue
			}
			found = true // the first matching entry decides, as in the API server
			if len(e.Providers) > 0 {
				// Any real cipher covers the resource here; how strong it
				// is, is SP-ENC-002's verdict.
				name, enc := judgeEncryptionProvider(e.Providers[0])
				ev.Got = "listed, written with " + name
				if enc.Encrypts() {
					r.ok(ev)
					covered = append(covered, res)
				} else {
					r.fail(ev, res+" are listed but written with "+name)
				}
			}
			break
		}
		if !found {
			r.fail(ev, res+" are not in the EncryptionConfiguration")
		}
	}
	stored, err := storedUnencrypted(ctx, t, &r, covered, hardening.EncryptionPrefix(info.EncryptionProvider, info.KMSName))
	if err != nil {
		r.errorf("%v", err)
	}
	if stored == 0 {
		return r.outcome(fmt.Sprintf("%s covered; nothing stored yet (new writes are %s's canary)", strings.Join(covered, ", "), blueprints.EncryptionAtRestOn))
	}
	return r.outcome(fmt.Sprintf("%s covered; all %d stored objects are encrypted", strings.Join(covered, ", "), stored))
}

// storedUnencrypted reads every stored object of the covered resources:
// plaintext fails, another provider's prefix warns (not yet rewritten after
// a provider change). It returns how many objects it read.
func storedUnencrypted(ctx context.Context, t Target, r *findings, resources []string, want string) (int, error) {
	c, err := t.Component(ctx, APIServer)
	if err != nil {
		return 0, fmt.Errorf("read kube-apiserver's arguments: %w", err)
	}
	prefix := etcdPrefix(c)
	const maxListed = 10
	var mu sync.Mutex
	n, plain, stale := 0, 0, 0
	for _, res := range resources {
		p, ok := etcdPath(prefix, res)
		if !ok {
			continue
		}
		keys, err := t.EtcdKeys(ctx, p)
		if err != nil {
			return n, fmt.Errorf("list %s in etcd: %w", p, err)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		var readErr error
		for _, k := range keys {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				raw, found, err := t.EtcdGet(ctx, k)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					if readErr == nil {
						readErr = fmt.Errorf("read %s from etcd: %w", k, err)
					}
					return
				case !found:
					return // deleted meanwhile
				}
				n++
				ev := Evidence{Object: "etcd " + k, Field: "stored value", Want: cmpOr(want, encPrefix+"…"), Got: describeRaw(raw)}
				switch {
				case !bytes.HasPrefix(raw, []byte(encPrefix)):
					plain++
					if plain <= maxListed {
						r.fail(ev, k+" is stored unencrypted; rewrite it (kubectl get "+res+" -A -o json | kubectl replace -f -)")
					}
				case want != "" && !bytes.HasPrefix(raw, []byte(want)):
					stale++
					if stale <= maxListed {
						r.warn(ev, k+" is encrypted with another provider or key than "+want+"; rewrite it")
					}
				}
			})
		}
		wg.Wait()
		if readErr != nil {
			return n, readErr
		}
	}
	if plain > maxListed {
		r.fail(Evidence{Object: "etcd", Field: "stored values", Want: "encrypted", Got: fmt.Sprintf("%d more unencrypted", plain-maxListed)},
			fmt.Sprintf("%d more unencrypted objects not listed", plain-maxListed))
	}
	return n, nil
}
