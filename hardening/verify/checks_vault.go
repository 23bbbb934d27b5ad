package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/kms"
)

// vaultChecks prove the Vault side of the cluster: the KMS v2 plugin is
// healthy and used (SP-KMS-001), stored data is under the current key
// version (SP-KMS-002), the plugin's token can do nothing but use its own
// key (SP-KMS-003), workloads of listed namespaces log in and read their
// paths (SP-VAULT-001) and nothing more (SP-VAULT-002), and nothing of
// this cluster reaches another environment's Vault objects (SP-VAULT-003).
//
// Vault answers "what may this token do on this path" with
// sys/capabilities-self, so the checks ask it about paths, which needs
// no data in KV and proves the policy rather than the absence of data.
func vaultChecks() []Check {
	return []Check{
		{ID: blueprints.KMSPluginHealthy, Run: checkKMSHealthy, Needs: needs(API, VaultAccess)},
		{ID: blueprints.KMSCurrentKey, Run: checkKMSCurrentKey, Needs: needs(API, Processes, RawEtcd, VaultAccess)},
		{ID: blueprints.KMSTokenNarrow, Run: checkKMSTokenNarrow, Needs: needs(VaultAccess)},
		{ID: blueprints.VaultSecrets, Run: checkVaultLogin, Needs: needs(API, VaultAccess)},
		{ID: blueprints.VaultRolesScoped, Run: checkVaultScoped, Needs: needs(API, VaultAccess)},
		{ID: blueprints.VaultEnvironmentsIsolated, Run: checkVaultIsolation, Needs: needs(API, VaultAccess)},
	}
}

// openVault returns the cluster's Vault view, or an Outcome to return.
func openVault(ctx context.Context, t Target) (*Vault, *Outcome) {
	v, err := t.Vault(ctx)
	if err != nil {
		o := Errorf("cluster's Vault: %v", err)
		return nil, &o
	}
	return v, nil
}

// kmsView is openVault for the KMS checks, which skip when the cluster
// does not encrypt with vault-kms (SP-ENC-001/002 judge that choice).
func kmsView(ctx context.Context, t Target) (*Vault, *Outcome) {
	if p := t.Info().EncryptionProvider; p != v1alpha1.EncryptionVaultKMS {
		o := Skip(fmt.Sprintf("the cluster encrypts with %s, not vault-kms, so there is no KMS plugin (%s and %s judge the provider)",
			orNone(p), blueprints.EncryptionAtRestOn, blueprints.EncryptionProviderStrong))
		return nil, &o
	}
	v, o := openVault(ctx, t)
	if o == nil && v.KMSSocket == "" {
		oo := Errorf("the cluster uses vault-kms but names no KMS plugin socket")
		return nil, &oo
	}
	return v, o
}

func checkKMSHealthy(ctx context.Context, t Target) Outcome {
	v, o := kmsView(ctx, t)
	if o != nil {
		return *o
	}
	var r findings
	ev := Evidence{Object: "KMS plugin " + v.KMSSocket, Field: "Status", Want: "version v2, healthz ok, a key ID"}
	st, err := kms.Probe(ctx, v.KMSSocket)
	switch {
	case err != nil:
		ev.Got = err.Error()
		r.fail(ev, "the KMS plugin does not answer: "+err.Error())
	case st.Version != "v2" || st.Healthz != "ok" || st.KeyID == "":
		ev.Got = fmt.Sprintf("version %q, healthz %q, key ID %q", st.Version, st.Healthz, st.KeyID)
		r.fail(ev, "the KMS plugin is not healthy: "+ev.Got)
	default:
		ev.Got = fmt.Sprintf("v2, ok, %s", st.KeyID)
		r.ok(ev)
	}
	// The API server's own view: its kms-providers health check.
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Param("verbose", "true").DoRaw(ctx)
	hev := Evidence{Object: "kube-apiserver /readyz", Field: "kms-providers", Want: "[+]kms-providers ok"}
	line := ""
	for l := range strings.SplitSeq(string(body), "\n") {
		if strings.Contains(l, "kms-provider") {
			line = strings.TrimSpace(l)
		}
	}
	switch {
	case line == "" && err != nil:
		r.errorf("read /readyz: %v", err)
	case line == "":
		hev.Got = "no kms-providers check"
		r.fail(hev, "the API server runs no KMS provider")
	case strings.HasPrefix(line, "[+]"):
		hev.Got = line
		r.ok(hev)
	default:
		hev.Got = line
		r.fail(hev, "the API server reports its KMS provider unhealthy: "+line)
	}
	return r.outcome("the KMS plugin answers Status and the API server's kms-providers check passes")
}

// currentKeyID asks Vault (as admin) for the transit key's latest version.
func currentKeyID(ctx context.Context, c *api.Client, n vault.Names) (string, error) {
	k, ok, err := vault.NewSetupWithClient(c, nil).ReadTransit(ctx, n.TransitMount, n.TransitKey)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("transit key %s/keys/%s does not exist", n.TransitMount, n.TransitKey)
	}
	return kms.KeyID(n.TransitMount, n.TransitKey, k.LatestVersion), nil
}

func checkKMSCurrentKey(ctx context.Context, t Target) Outcome {
	v, o := kmsView(ctx, t)
	if o != nil {
		return *o
	}
	var r findings
	admin, err := v.Admin.Client(ctx)
	if err != nil {
		return Errorf("%v", err)
	}
	want, err := currentKeyID(ctx, admin, v.Names)
	if err != nil {
		return Errorf("vault %s: %v", v.Admin.Address, err)
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	comps, _ := flagCheck(ctx, t, blueprints.KMSCurrentKey, []string{APIServer}, &r)
	prefix := etcdPrefix(comps[APIServer])
	// A new write shows the key the API server encrypts with now.
	const ns = "default"
	name := canaryName("kms")
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{hardening.ManagedByLabel: "secprov-verify"}},
		Data:       map[string][]byte{"canary": []byte(randomHex(8))},
	}, metav1.CreateOptions{}); err != nil {
		return Errorf("create canary secret %s/%s: %v", ns, name, err)
	}
	defer deleteSecret(ctx, cs, ns, name)
	key := prefix + "/secrets/" + ns + "/" + name
	raw, found, err := t.EtcdGet(ctx, key)
	switch {
	case err != nil:
		return Errorf("read %s from etcd: %v", key, err)
	case !found:
		return Errorf("canary %s is not in etcd under %s", name, key)
	}
	ev := Evidence{Object: "etcd " + key, Field: "KMS key ID", Want: want}
	if st, err := kms.ParseStored(raw); err != nil {
		ev.Got = describeRaw(raw)
		r.fail(ev, "a new secret is not stored by the KMS v2 provider: "+err.Error())
	} else if ev.Got = st.KeyID; st.KeyID != want {
		r.fail(ev, fmt.Sprintf("the API server encrypts new data with %s, not the current Vault key %s (it polls the plugin every minute)", st.KeyID, want))
	} else {
		r.ok(ev)
	}
	// Everything already stored under the encrypted resources.
	stale, total := map[string]int{}, 0
	var firstStale string
	for _, res := range t.Info().Spec.EncryptionAtRest.Resources {
		keys, err := t.EtcdKeys(ctx, prefix+"/"+etcdResourcePath(res)+"/")
		if err != nil {
			r.errorf("list %s in etcd: %v", res, err)
			continue
		}
		for _, k := range keys {
			raw, found, err := t.EtcdGet(ctx, k)
			if err != nil || !found {
				continue // deleted meanwhile
			}
			st, err := kms.ParseStored(raw)
			if err != nil {
				continue // not KMS-encrypted: SP-ENC-003's finding
			}
			total++
			if st.KeyID != want {
				stale[st.KeyID]++
				if firstStale == "" {
					firstStale = k
				}
			}
		}
	}
	sev := Evidence{Object: "etcd " + prefix, Field: "KMS key IDs of stored objects", Want: "all " + want}
	if n := sumCounts(stale); n > 0 {
		sev.Got = fmt.Sprintf("%d of %d under %s (e.g. %s)", n, total, strings.Join(sortedKeys(stale), ", "), firstStale)
		r.fail(sev, fmt.Sprintf("%d stored object(s) are still encrypted under older key versions; run secprov rotate-keys --cluster %s", n, t.Info().Name))
	} else {
		sev.Got = fmt.Sprintf("all %d", total)
		r.ok(sev)
	}
	return r.outcome(fmt.Sprintf("new and all %d stored objects use %s", total, want))
}

// etcdResourcePath maps "secrets" or "widgets.example.com" to the
// API server's storage path segment.
func etcdResourcePath(res string) string {
	name, group, _ := strings.Cut(res, ".")
	if group == "" || group == "apps" || strings.HasSuffix(group, ".k8s.io") {
		return name
	}
	return group + "/" + name
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// capabilities asks Vault what c's token may do on each path.
func capabilities(ctx context.Context, c *api.Client, paths []string) (map[string][]string, error) {
	s, err := c.Logical().WriteWithContext(ctx, "sys/capabilities-self", map[string]any{"paths": paths})
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("sys/capabilities-self returned nothing")
	}
	out := map[string][]string{}
	for _, p := range paths {
		raw, _ := s.Data[p].([]any)
		for _, c := range raw {
			if str, ok := c.(string); ok {
				out[p] = append(out[p], str)
			}
		}
		if len(out[p]) == 0 {
			out[p] = []string{"deny"}
		}
	}
	return out, nil
}

func denied(caps []string) bool { return len(caps) == 1 && caps[0] == "deny" }

// expectDenied records, for each path, that the token may do nothing there.
func expectDenied(r *findings, who string, caps map[string][]string, paths []string, why string) {
	for _, p := range paths {
		ev := Evidence{Object: who, Field: p, Want: "deny", Got: strings.Join(caps[p], ",")}
		if denied(caps[p]) {
			r.ok(ev)
		} else {
			r.fail(ev, fmt.Sprintf("%s may %s on %s: %s", who, ev.Got, p, why))
		}
	}
}

func checkKMSTokenNarrow(ctx context.Context, t Target) Outcome {
	v, o := kmsView(ctx, t)
	if o != nil {
		return *o
	}
	var r findings
	c, err := v.KMSToken.Client(ctx)
	if err != nil {
		return Errorf("KMS plugin token: %v", err)
	}
	who := "KMS plugin token of " + t.Info().Name
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return Errorf("vault %s: look up the KMS plugin token: %v", v.KMSToken.Address, err)
	}
	policies, _ := self.TokenPolicies()
	pev := Evidence{Object: who, Field: "policies", Want: v.Names.KMSPolicy() + " (and default)", Got: strings.Join(policies, ",")}
	extra := slices.DeleteFunc(slices.Clone(policies), func(p string) bool { return p == v.Names.KMSPolicy() || p == "default" })
	if len(extra) > 0 {
		r.fail(pev, "the KMS plugin token carries policies beyond its own: "+strings.Join(extra, ", "))
	} else {
		r.ok(pev)
	}
	ttl, _ := self.TokenTTL()
	tev := Evidence{Object: who, Field: "ttl", Want: "finite (periodic, renewed by the plugin)", Got: ttl.String()}
	if ttl <= 0 {
		r.fail(tev, "the KMS plugin token never expires")
	} else {
		r.ok(tev)
	}
	n := v.Names
	own := []string{n.TransitMount + "/encrypt/" + n.TransitKey, n.TransitMount + "/decrypt/" + n.TransitKey}
	others := []string{
		"sys/mounts/" + n.TransitMount, "sys/policies/acl/" + n.KMSPolicy(), "auth/token/create",
		n.TransitMount + "/keys/" + n.TransitKey + "/rotate", n.TransitMount + "/keys/" + n.TransitKey + "/config",
		n.TransitMount + "/export/encryption-key/" + n.TransitKey, n.TransitMount + "/encrypt/secprov-verify-other-key",
		n.KVMount + "/data/secprov-verify", "auth/" + n.AuthPath + "/role/secprov-verify",
	}
	caps, err := capabilities(ctx, c, append(slices.Clone(own), others...))
	if err != nil {
		return Errorf("vault %s: capabilities of the KMS plugin token: %v", v.KMSToken.Address, err)
	}
	for _, p := range own {
		ev := Evidence{Object: who, Field: p, Want: "update", Got: strings.Join(caps[p], ",")}
		if slices.Contains(caps[p], "update") {
			r.ok(ev)
		} else {
			r.fail(ev, "the KMS plugin token cannot use its own key at "+p)
		}
	}
	expectDenied(&r, who, caps, others, "the plugin needs only encrypt and decrypt with its key")
	return r.outcome("the KMS plugin token can encrypt and decrypt with its own key and nothing else")
}

// workloadToken returns a short-lived token of namespace ns's default
// service account (TokenRequest; nothing is stored).
func workloadToken(ctx context.Context, cs kubernetes.Interface, ns string) (string, error) {
	exp := int64(600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/default: %w", ns, err)
	}
	return tr.Status.Token, nil
}

// login logs in at a Kubernetes auth mount; the returned client holds the
// resulting Vault token.
func login(ctx context.Context, a vault.Access, authPath, role, jwt string) (*api.Client, error) {
	c, err := a.Anonymous()
	if err != nil {
		return nil, err
	}
	s, err := c.Logical().WriteWithContext(ctx, "auth/"+authPath+"/login", map[string]any{"role": role, "jwt": jwt})
	if err != nil {
		return nil, vaultError(err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("login returned no token")
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

// workloadLogin is one listed namespace's attempt to log in with its own
// role: the service-account token it used, and the Vault client it got
// (nil with err set when Vault refused).
type workloadLogin struct {
	ns     v1alpha1.VaultNamespace
	who    string
	jwt    string
	client *api.Client
	err    error
}

// eachWorkloadLogin logs in as the default service account of every
// namespace in spec.vault.namespaces, with that namespace's role, and
// calls f with the result. A namespace whose token cannot be issued is an
// error of the check.
func eachWorkloadLogin(ctx context.Context, cs kubernetes.Interface, v *Vault, r *findings, f func(workloadLogin)) {
	n := v.Names
	for _, ns := range n.Namespaces {
		w := workloadLogin{ns: ns, who: "service account " + ns.Namespace + "/default"}
		var err error
		if w.jwt, err = workloadToken(ctx, cs, ns.Namespace); err != nil {
			r.errorf("%v", err)
			continue
		}
		w.client, w.err = login(ctx, v.Admin, n.AuthPath, n.NamespaceRole(ns.Namespace), w.jwt)
		f(w)
	}
}

// vaultError keeps a Vault API error to one line: status and messages.
func vaultError(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault answered HTTP %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}

// samplePath turns a listed KV path (maybe ending in * or /*) into a
// concrete secret path under it.
func samplePath(p string) string {
	switch {
	case strings.HasSuffix(p, "/*"):
		return strings.TrimSuffix(p, "*") + "secprov-verify"
	case strings.HasSuffix(p, "*"):
		return strings.TrimSuffix(p, "*") + "-secprov-verify"
	}
	return p
}

// vaultEnabled returns an outcome when the cluster has Vault turned off
// (a failure: SP-VAULT-001 is a control) or no Vault view.
func vaultView(ctx context.Context, t Target, id blueprints.ControlID) (*Vault, *Outcome) {
	if !t.Info().Spec.Vault.IsEnabled() {
		if id != blueprints.VaultSecrets {
			o := Skip(fmt.Sprintf("spec.vault.enabled is false (%s reports it)", blueprints.VaultSecrets))
			return nil, &o
		}
		var r findings
		r.fail(Evidence{Object: "blueprint " + t.Info().Name, Field: "spec.vault.enabled", Want: "true", Got: "false"},
			"workload secrets do not come from Vault: no Kubernetes auth, no roles")
		o := r.outcome("")
		return nil, &o
	}
	return openVault(ctx, t)
}

func checkVaultLogin(ctx context.Context, t Target) Outcome {
	v, o := vaultView(ctx, t, blueprints.VaultSecrets)
	if o != nil {
		return *o
	}
	var r findings
	admin, err := v.Admin.Client(ctx)
	if err != nil {
		return Errorf("%v", err)
	}
	n := v.Names
	cfg, err := admin.Logical().ReadWithContext(ctx, "auth/"+n.AuthPath+"/config")
	cev := Evidence{Object: "vault auth/" + n.AuthPath, Field: "kubernetes_host", Want: t.Info().APIServerURL}
	switch {
	case err != nil:
		cev.Got = err.Error()
		r.fail(cev, "the Kubernetes auth mount cannot be read: "+err.Error())
	case cfg == nil:
		cev.Got = "no such mount"
		r.fail(cev, "the cluster's Kubernetes auth mount auth/"+n.AuthPath+" is not configured")
	default:
		cev.Got, _ = cfg.Data["kubernetes_host"].(string)
		if strings.TrimSuffix(cev.Got, "/") != strings.TrimSuffix(cev.Want, "/") {
			r.fail(cev, "the Kubernetes auth mount validates tokens against another API server")
		} else {
			r.ok(cev)
		}
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	eachWorkloadLogin(ctx, cs, v, &r, func(w workloadLogin) {
		who := w.who
		lev := Evidence{Object: who, Field: "login auth/" + n.AuthPath + " role " + n.NamespaceRole(w.ns.Namespace), Want: "a Vault token"}
		if w.err != nil {
			lev.Got = w.err.Error()
			r.fail(lev, fmt.Sprintf("%s cannot log in to Vault: %v", who, w.err))
			return
		}
		lev.Got = "token"
		r.ok(lev)
		var paths []string
		for _, p := range w.ns.Paths {
			paths = append(paths, n.KVMount+"/data/"+samplePath(p))
		}
		caps, err := capabilities(ctx, w.client, paths)
		if err != nil {
			r.errorf("vault capabilities of %s: %v", who, err)
			return
		}
		for _, p := range paths {
			ev := Evidence{Object: who, Field: p, Want: "read", Got: strings.Join(caps[p], ",")}
			if slices.Contains(caps[p], "read") {
				r.ok(ev)
			} else {
				r.fail(ev, fmt.Sprintf("%s cannot read its own path %s", who, p))
			}
		}
	})
	return r.outcome(fmt.Sprintf("Kubernetes auth is configured for this cluster and %d namespace(s) log in and read their paths", len(n.Namespaces)))
}

// otherPaths are KV paths namespace ns must not reach: the other listed
// namespaces' paths (unless ns lists the same path) and a path nobody
// lists.
func otherPaths(n vault.Names, ns v1alpha1.VaultNamespace) []string {
	out := []string{n.KVMount + "/data/secprov-verify-unlisted/x"}
	for _, o := range n.Namespaces {
		if o.Namespace == ns.Namespace {
			continue
		}
		for _, p := range o.Paths {
			if !slices.Contains(ns.Paths, p) {
				out = append(out, n.KVMount+"/data/"+samplePath(p))
			}
		}
	}
	return out
}

func checkVaultScoped(ctx context.Context, t Target) Outcome {
	v, o := vaultView(ctx, t, blueprints.VaultRolesScoped)
	if o != nil {
		return *o
	}
	n := v.Names
	if len(n.Namespaces) == 0 {
		return Skip("spec.vault.namespaces lists no namespace, so no role exists to scope")
	}
	var r findings
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	listed := map[string]bool{}
	for _, ns := range n.Namespaces {
		listed[ns.Namespace] = true
	}
	eachWorkloadLogin(ctx, cs, v, &r, func(w workloadLogin) {
		who, ns := w.who, w.ns
		if w.err != nil {
			r.skip(fmt.Sprintf("%s cannot log in, so its scope cannot be tried (%s reports the login)", who, blueprints.VaultSecrets))
			return
		}
		own := []string{}
		for _, p := range ns.Paths {
			own = append(own, n.KVMount+"/data/"+samplePath(p))
		}
		others := otherPaths(n, ns)
		caps, err := capabilities(ctx, w.client, append(slices.Clone(own), others...))
		if err != nil {
			r.errorf("vault capabilities of %s: %v", who, err)
			return
		}
		for _, p := range own {
			ev := Evidence{Object: who, Field: p, Want: "read (no write)", Got: strings.Join(caps[p], ",")}
			if w := slices.DeleteFunc(slices.Clone(caps[p]), func(c string) bool { return c == "read" || c == "list" || c == "deny" }); len(w) > 0 {
				r.fail(ev, fmt.Sprintf("%s may %s on %s: roles are read-only", who, strings.Join(w, ","), p))
			} else {
				r.ok(ev)
			}
		}
		expectDenied(&r, who, caps, others, "it is not among "+ns.Namespace+"'s paths")
	})
	// A workload namespace nobody listed must not log in with a listed
	// namespace's role.
	for _, ns := range hardening.WorkloadNamespaces(t.Info().Spec) {
		if listed[ns] {
			continue
		}
		jwt, err := workloadToken(ctx, cs, ns)
		if err != nil {
			r.errorf("%v", err)
			break
		}
		role := n.NamespaceRole(n.Namespaces[0].Namespace)
		ev := Evidence{Object: "service account " + ns + "/default", Field: "login auth/" + n.AuthPath + " role " + role, Want: "refused"}
		if _, err := login(ctx, v.Admin, n.AuthPath, role, jwt); err != nil {
			ev.Got = "refused"
			r.ok(ev)
		} else {
			ev.Got = "a Vault token"
			r.fail(ev, fmt.Sprintf("namespace %s, which spec.vault.namespaces does not list, logs in with role %s", ns, role))
		}
		break // one unlisted namespace proves the binding
	}
	return r.outcome("each namespace's role reads only its own paths, writes nothing, and unlisted namespaces cannot use it")
}

func checkVaultIsolation(ctx context.Context, t Target) Outcome {
	v, o := vaultView(ctx, t, blueprints.VaultEnvironmentsIsolated)
	if o != nil {
		return *o
	}
	if len(v.Peers) == 0 {
		return Skip("no cluster of another environment uses this Vault, so there is nothing to be isolated from")
	}
	var r findings
	var peerTransit, peerKV []string
	for _, p := range v.Peers {
		peerTransit = append(peerTransit, p.Names.TransitMount+"/encrypt/"+p.Names.TransitKey, p.Names.TransitMount+"/decrypt/"+p.Names.TransitKey)
		peerKV = append(peerKV, p.Names.KVMount+"/data/secprov-verify")
		for _, ns := range p.Names.Namespaces {
			for _, path := range ns.Paths {
				peerKV = append(peerKV, p.Names.KVMount+"/data/"+samplePath(path))
			}
		}
	}
	why := "it belongs to another environment"
	if t.Info().EncryptionProvider == v1alpha1.EncryptionVaultKMS && v.KMSToken.Address != "" {
		c, err := v.KMSToken.Client(ctx)
		if err != nil {
			return Errorf("KMS plugin token: %v", err)
		}
		caps, err := capabilities(ctx, c, append(slices.Clone(peerTransit), peerKV...))
		if err != nil {
			return Errorf("vault capabilities of the KMS plugin token: %v", err)
		}
		expectDenied(&r, "KMS plugin token of "+t.Info().Name, caps, append(slices.Clone(peerTransit), peerKV...), why)
	}
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	eachWorkloadLogin(ctx, cs, v, &r, func(w workloadLogin) {
		who, jwt := w.who, w.jwt
		if w.err == nil {
			caps, err := capabilities(ctx, w.client, append(slices.Clone(peerKV), peerTransit...))
			if err != nil {
				r.errorf("vault capabilities of %s: %v", who, err)
			} else {
				expectDenied(&r, who, caps, append(slices.Clone(peerKV), peerTransit...), why)
			}
		}
		// This cluster's workload token at the other environment's auth
		// mount: its TokenReview against the other API server must fail.
		for _, p := range v.Peers {
			for _, pns := range p.Names.Namespaces {
				ev := Evidence{Object: who + " of " + t.Info().Name, Field: "login auth/" + p.Names.AuthPath + " role " + p.Names.NamespaceRole(pns.Namespace), Want: "refused"}
				if _, err := login(ctx, v.Admin, p.Names.AuthPath, p.Names.NamespaceRole(pns.Namespace), jwt); err != nil {
					ev.Got = "refused"
					r.ok(ev)
				} else {
					ev.Got = "a Vault token"
					r.fail(ev, fmt.Sprintf("%s of %s (%s) logs in to %s (%s)", who, t.Info().Name, t.Info().Environment, p.Cluster, p.Environment))
				}
			}
		}
	})
	return r.outcome(fmt.Sprintf("nothing of this cluster reaches the Vault objects of %d cluster(s) of other environments", len(v.Peers)))
}
