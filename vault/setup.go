package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Setup creates, checks and removes one cluster's objects in a Vault. Every
// Ensure is idempotent (it adopts what exists, repairs what drifted and
// refuses what it must not touch), every Delete treats "already gone" as
// success. Errors name the Vault, the object and, on 403, the missing
// capability.
type Setup struct {
	c   *api.Client
	log *slog.Logger
}

// NewSetup connects to the Vault a describes. It does not contact Vault
// yet (except for an AppRole login).
func NewSetup(ctx context.Context, a Access, log *slog.Logger) (*Setup, error) {
	c, err := a.Client(ctx)
	if err != nil {
		return nil, err
	}
	return NewSetupWithClient(c, log), nil
}

// NewSetupWithClient uses an existing, authenticated client.
func NewSetupWithClient(c *api.Client, log *slog.Logger) *Setup {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Setup{c: c, log: log}
}

func (s *Setup) fail(op, path, need string, err error) error {
	return fail(s.c.Address(), op, path, need, err)
}

func (s *Setup) read(ctx context.Context, op, path string) (*api.Secret, error) {
	sec, err := s.c.Logical().ReadWithContext(ctx, path)
	return sec, s.fail(op, path, "read", err)
}

func (s *Setup) write(ctx context.Context, op, path, need string, data map[string]any) (*api.Secret, error) {
	sec, err := s.c.Logical().WriteWithContext(ctx, path, data)
	return sec, s.fail(op, path, need, err)
}

func (s *Setup) delete(ctx context.Context, op, path string) error {
	_, err := s.c.Logical().DeleteWithContext(ctx, path)
	if statusCode(err) == 404 {
		return nil
	}
	return s.fail(op, path, "delete", err)
}

// --- mounts --------------------------------------------------------------

// mountInfo is what secprov checks of a secrets engine or auth mount.
type mountInfo struct {
	Type    string            `json:"type"`
	Options map[string]string `json:"options"`
}

// need is the capability an operation on sys/<table>/... requires: Vault
// makes every sys/auth path a sudo path.
func need(table, capability string) string {
	if table == "auth" {
		return capability + " and sudo"
	}
	return capability
}

// readMount returns the mount at sys/<table>/<path>, or nil if there is
// none. Vault answers a missing mount with 400 and a message, not 404.
func (s *Setup) readMount(ctx context.Context, table, path, what string) (*mountInfo, error) {
	p := "sys/" + table + "/" + path
	sec, err := s.c.Logical().ReadWithContext(ctx, p)
	if err != nil {
		if responseSays(err, "No secret engine mount at") || responseSays(err, "No auth engine at") {
			return nil, nil
		}
		return nil, s.fail("check "+what+" "+path, p, need(table, "read"), err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	b, err := json.Marshal(sec.Data)
	if err != nil {
		return nil, err
	}
	var m mountInfo
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("vault %s: %s: unexpected answer: %w", s.c.Address(), p, err)
	}
	return &m, nil
}

// ensureMount enables a secrets engine (table "mounts") or auth method
// (table "auth") at path unless one of the wanted type is there, and
// refuses to adopt a mount of another type: it may hold someone's data.
func (s *Setup) ensureMount(ctx context.Context, table, path, typ string, options map[string]string, what, field string) error {
	m, err := s.readMount(ctx, table, path, what)
	if err != nil {
		return err
	}
	if m != nil {
		if m.Type != typ {
			return fmt.Errorf("vault %s: %s %s exists and is a %q mount, not %q: secprov does not take over other mounts; choose another %s",
				s.c.Address(), what, path, m.Type, typ, field)
		}
		for k, v := range options {
			if m.Options[k] != v {
				return fmt.Errorf("vault %s: %s %s exists with option %s=%q, not %q: secprov does not change other mounts; choose another %s",
					s.c.Address(), what, path, k, m.Options[k], v, field)
			}
		}
		return nil
	}
	p := "sys/" + table + "/" + path
	data := map[string]any{"type": typ, "description": "secprov: " + what}
	if len(options) > 0 {
		data["options"] = options
	}
	if _, err := s.write(ctx, "enable "+what+" "+path, p, need(table, "update"), data); err != nil {
		return err
	}
	s.log.Info("enabled vault mount", "what", what, "path", path)
	return nil
}

func (s *Setup) disableMount(ctx context.Context, table, path, what string) error {
	p := "sys/" + table + "/" + path
	if _, err := s.c.Logical().DeleteWithContext(ctx, p); err != nil {
		return s.fail("disable "+what+" "+path, p, need(table, "delete"), err)
	}
	s.log.Info("disabled vault mount", "what", what, "path", path)
	return nil
}

// --- transit -------------------------------------------------------------

// KMSKeyType is the transit key type of a cluster's KMS key.
const KMSKeyType = "aes256-gcm96"

// TransitKey is what Vault reports about a transit key.
type TransitKey struct {
	Type            string
	LatestVersion   int
	Exportable      bool
	DeletionAllowed bool
}

// EnsureTransit enables the transit mount and creates the KMS key in it
// (aes256-gcm96, not exportable, not deletable). An existing key is
// adopted if it has that type and is not exportable; a leftover
// deletion_allowed from an interrupted delete is switched off again.
func (s *Setup) EnsureTransit(ctx context.Context, mount, key string) (TransitKey, error) {
	if err := s.ensureMount(ctx, "mounts", mount, "transit", nil, "transit mount", "spec.vault.transitMount"); err != nil {
		return TransitKey{}, err
	}
	k, ok, err := s.ReadTransit(ctx, mount, key)
	if err != nil {
		return TransitKey{}, err
	}
	p := mount + "/keys/" + key
	if !ok {
		if _, err := s.write(ctx, "create transit key "+key, p, "update", map[string]any{"type": KMSKeyType, "exportable": false}); err != nil {
			return TransitKey{}, err
		}
		s.log.Info("created transit key", "mount", mount, "key", key)
		if k, ok, err = s.ReadTransit(ctx, mount, key); err != nil {
			return TransitKey{}, err
		} else if !ok {
			return TransitKey{}, fmt.Errorf("vault %s: transit key %s was created but cannot be read back", s.c.Address(), p)
		}
	}
	if k.Type != KMSKeyType || k.Exportable {
		return TransitKey{}, fmt.Errorf("vault %s: transit key %s exists as type %s (exportable=%v); secprov needs a non-exportable %s key: choose another spec.vault.transitKey",
			s.c.Address(), p, k.Type, k.Exportable, KMSKeyType)
	}
	if k.DeletionAllowed {
		if _, err := s.write(ctx, "protect transit key "+key, p+"/config", "update", map[string]any{"deletion_allowed": false}); err != nil {
			return TransitKey{}, err
		}
		k.DeletionAllowed = false
	}
	return k, nil
}

// ReadTransit reads the KMS key; ok is false if it (or its mount) is gone.
func (s *Setup) ReadTransit(ctx context.Context, mount, key string) (TransitKey, bool, error) {
	p := mount + "/keys/" + key
	sec, err := s.read(ctx, "read transit key "+key, p)
	if err != nil || sec == nil || sec.Data == nil {
		return TransitKey{}, false, err
	}
	k := TransitKey{}
	k.Type, _ = sec.Data["type"].(string)
	k.Exportable, _ = sec.Data["exportable"].(bool)
	k.DeletionAllowed, _ = sec.Data["deletion_allowed"].(bool)
	k.LatestVersion = toInt(sec.Data["latest_version"])
	return k, true, nil
}

// RotateTransit adds a new version of the KMS key (secprov rotate-keys)
// and returns the key after it. Older versions keep decrypting.
func (s *Setup) RotateTransit(ctx context.Context, mount, key string) (TransitKey, error) {
	if _, err := s.write(ctx, "rotate transit key "+key, mount+"/keys/"+key+"/rotate", "update", nil); err != nil {
		return TransitKey{}, err
	}
	k, ok, err := s.ReadTransit(ctx, mount, key)
	if err == nil && !ok {
		err = fmt.Errorf("transit key %s/%s is gone after its rotation", mount, key)
	}
	return k, err
}

// DeleteTransit deletes the KMS key (allowing its deletion right before)
// and then disables the mount if no other key is left in it: a mount
// shared against advice keeps the other cluster's key.
func (s *Setup) DeleteTransit(ctx context.Context, mount, key string) error {
	_, ok, err := s.ReadTransit(ctx, mount, key)
	if err != nil {
		return err
	}
	p := mount + "/keys/" + key
	if ok {
		if _, err := s.write(ctx, "allow deletion of transit key "+key, p+"/config", "update", map[string]any{"deletion_allowed": true}); err != nil {
			return err
		}
		if err := s.delete(ctx, "delete transit key "+key, p); err != nil {
			return err
		}
		s.log.Info("deleted transit key", "mount", mount, "key", key)
	}
	lp := mount + "/keys"
	sec, err := s.c.Logical().ListWithContext(ctx, lp)
	if err != nil {
		return s.fail("list transit keys of "+mount, lp, "list", err)
	}
	if keys := listKeys(sec); len(keys) > 0 {
		s.log.Info("transit mount still holds other keys; leaving it", "mount", mount, "keys", len(keys))
		return nil
	}
	m, err := s.readMount(ctx, "mounts", mount, "transit mount")
	if err != nil || m == nil {
		return err
	}
	if m.Type != "transit" {
		return nil // not ours
	}
	return s.disableMount(ctx, "mounts", mount, "transit mount")
}

// --- KV ------------------------------------------------------------------

// KVReadyTimeout bounds the wait for a new kv-v2 mount to finish its
// upgrade (Vault answers 400 "Upgrading…" until then; milliseconds).
const KVReadyTimeout = 15 * time.Second

// EnsureKV enables a kv-v2 mount and waits until it serves requests. An
// existing kv-v2 mount is adopted; a KV v1 mount or any other type is
// refused (converting it would change how its data is addressed).
func (s *Setup) EnsureKV(ctx context.Context, mount string) error {
	if err := s.ensureMount(ctx, "mounts", mount, "kv", map[string]string{"version": "2"}, "KV mount", "spec.vault.kvMount"); err != nil {
		return err
	}
	// A fresh kv-v2 mount upgrades its storage asynchronously; until it is
	// done every request fails. Callers (and workloads) write right after.
	p := mount + "/config"
	ctx, cancel := context.WithTimeout(ctx, KVReadyTimeout)
	defer cancel()
	for {
		_, err := s.c.Logical().ReadWithContext(ctx, p)
		if err == nil {
			return nil
		}
		if !responseSays(err, "pgrading") || ctx.Err() != nil {
			return s.fail("wait for KV mount "+mount, p, "read", err)
		}
		select {
		case <-ctx.Done():
			return s.fail("wait for KV mount "+mount, p, "read", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ReadKV reports whether a kv-v2 mount is at mount.
func (s *Setup) ReadKV(ctx context.Context, mount string) (bool, error) {
	m, err := s.readMount(ctx, "mounts", mount, "KV mount")
	if err != nil || m == nil {
		return false, err
	}
	return m.Type == "kv" && m.Options["version"] == "2", nil
}

// DeleteKV disables the KV mount, deleting every secret in it.
func (s *Setup) DeleteKV(ctx context.Context, mount string) error {
	m, err := s.readMount(ctx, "mounts", mount, "KV mount")
	if err != nil || m == nil {
		return err
	}
	if m.Type != "kv" {
		return nil // not ours
	}
	return s.disableMount(ctx, "mounts", mount, "KV mount")
}

// --- Kubernetes auth -----------------------------------------------------

// KubernetesAuthConfig is how Vault reaches and trusts a cluster's API
// server to review workload tokens.
type KubernetesAuthConfig struct {
	Host   string // https://host:port of the API server
	CACert string // PEM of the cluster CA
	// ReviewerJWT is the token reviewer's service-account token. Secret:
	// never logged, never returned by Vault.
	ReviewerJWT string
	// Issuer of service-account tokens; empty leaves issuer validation to
	// the API server's TokenReview.
	Issuer string
}

// String keeps the reviewer JWT out of logs and errors.
func (c KubernetesAuthConfig) String() string {
	return fmt.Sprintf("{Host:%s Issuer:%s ReviewerJWT:[redacted]}", c.Host, c.Issuer)
}

// KubernetesAuthState is the configuration Vault reports (without the
// JWT, which Vault never returns).
type KubernetesAuthState struct {
	Host           string
	CACert         string
	Issuer         string
	ReviewerJWTSet bool
}

// EnsureKubernetesAuth enables a Kubernetes auth mount at path and writes
// its configuration. Vault then validates every login's token with the
// cluster's TokenReview API using the reviewer JWT, never its own pod
// token (disable_local_ca_jwt).
func (s *Setup) EnsureKubernetesAuth(ctx context.Context, path string, cfg KubernetesAuthConfig) error {
	if cfg.Host == "" || cfg.CACert == "" || cfg.ReviewerJWT == "" {
		return fmt.Errorf("vault %s: configure Kubernetes auth %s: the API server address, CA and reviewer token are all required", s.c.Address(), path)
	}
	if err := s.ensureMount(ctx, "auth", path, "kubernetes", nil, "Kubernetes auth mount", "spec.vault.authPath"); err != nil {
		return err
	}
	data := map[string]any{
		"kubernetes_host":      cfg.Host,
		"kubernetes_ca_cert":   cfg.CACert,
		"token_reviewer_jwt":   cfg.ReviewerJWT,
		"disable_local_ca_jwt": true,
		"issuer":               cfg.Issuer,
	}
	if _, err := s.write(ctx, "configure Kubernetes auth "+path, "auth/"+path+"/config", "update", data); err != nil {
		return err
	}
	s.log.Info("configured vault kubernetes auth", "path", path, "host", cfg.Host)
	return nil
}

// ReadKubernetesAuth reads the mount's configuration; ok is false if the
// mount is gone. A mount without configuration has an empty state.
func (s *Setup) ReadKubernetesAuth(ctx context.Context, path string) (KubernetesAuthState, bool, error) {
	m, err := s.readMount(ctx, "auth", path, "Kubernetes auth mount")
	if err != nil || m == nil {
		return KubernetesAuthState{}, false, err
	}
	if m.Type != "kubernetes" {
		return KubernetesAuthState{}, false, fmt.Errorf("vault %s: auth mount %s is a %q mount, not kubernetes: choose another spec.vault.authPath", s.c.Address(), path, m.Type)
	}
	sec, err := s.read(ctx, "read Kubernetes auth config of "+path, "auth/"+path+"/config")
	if err != nil {
		return KubernetesAuthState{}, false, err
	}
	var st KubernetesAuthState
	if sec != nil && sec.Data != nil {
		st.Host, _ = sec.Data["kubernetes_host"].(string)
		st.CACert, _ = sec.Data["kubernetes_ca_cert"].(string)
		st.Issuer, _ = sec.Data["issuer"].(string)
		st.ReviewerJWTSet, _ = sec.Data["token_reviewer_jwt_set"].(bool)
	}
	return st, true, nil
}

// DeleteKubernetesAuth disables the auth mount, with its roles.
func (s *Setup) DeleteKubernetesAuth(ctx context.Context, path string) error {
	m, err := s.readMount(ctx, "auth", path, "Kubernetes auth mount")
	if err != nil || m == nil {
		return err
	}
	if m.Type != "kubernetes" {
		return nil // not ours
	}
	return s.disableMount(ctx, "auth", path, "Kubernetes auth mount")
}

// --- namespace roles -----------------------------------------------------

// DefaultNamespaceTokenTTL is how long a workload's Vault token lives: an
// agent re-authenticates with its (also short-lived) service-account token.
const DefaultNamespaceTokenTTL = 15 * time.Minute

// RoleOptions tune a namespace's login role.
type RoleOptions struct {
	// TokenTTL of tokens issued at login; 0 is DefaultNamespaceTokenTTL.
	TokenTTL time.Duration
	// Audience, if set, is required in the workload's service-account
	// token (a projected token requested for Vault); empty accepts the
	// API server's default audience.
	Audience string
}

func (o RoleOptions) ttl() time.Duration {
	if o.TokenTTL <= 0 {
		return DefaultNamespaceTokenTTL
	}
	return o.TokenTTL
}

// NamespaceRoleState says whether a namespace's policy and role in Vault
// match what secprov would write.
type NamespaceRoleState struct {
	PolicyExists, PolicyCurrent bool
	RoleExists, RoleCurrent     bool
}

// Current reports whether nothing needs writing.
func (st NamespaceRoleState) Current() bool { return st.PolicyCurrent && st.RoleCurrent }

// Gone reports whether neither the policy nor the role exists.
func (st NamespaceRoleState) Gone() bool { return !st.PolicyExists && !st.RoleExists }

func (s *Setup) roleData(n Names, ns v1alpha1.VaultNamespace, o RoleOptions) map[string]any {
	d := map[string]any{
		"bound_service_account_names":      []string{"*"},
		"bound_service_account_namespaces": []string{ns.Namespace},
		"token_policies":                   []string{n.NamespacePolicy(ns.Namespace)},
		"token_ttl":                        int(o.ttl().Seconds()),
		"token_max_ttl":                    int(o.ttl().Seconds()),
		"token_type":                       "service",
		"audience":                         o.Audience,
	}
	return d
}

// EnsureNamespaceRole writes the namespace's read-only policy and its
// login role on the cluster's Kubernetes auth mount: any service account
// of that namespace (and only that namespace) logs in and gets the policy.
func (s *Setup) EnsureNamespaceRole(ctx context.Context, n Names, ns v1alpha1.VaultNamespace, o RoleOptions) error {
	if err := s.putPolicy(ctx, n.NamespacePolicy(ns.Namespace), NamespacePolicy(n, ns)); err != nil {
		return err
	}
	p := "auth/" + n.AuthPath + "/role/" + n.NamespaceRole(ns.Namespace)
	if _, err := s.write(ctx, "write Kubernetes auth role "+ns.Namespace, p, "create/update", s.roleData(n, ns, o)); err != nil {
		return err
	}
	s.log.Info("wrote vault namespace role", "namespace", ns.Namespace, "role", p)
	return nil
}

// ReadNamespaceRole compares the namespace's policy and role in Vault with
// what EnsureNamespaceRole writes.
func (s *Setup) ReadNamespaceRole(ctx context.Context, n Names, ns v1alpha1.VaultNamespace, o RoleOptions) (NamespaceRoleState, error) {
	var st NamespaceRoleState
	text, ok, err := s.getPolicy(ctx, n.NamespacePolicy(ns.Namespace))
	if err != nil {
		return st, err
	}
	st.PolicyExists, st.PolicyCurrent = ok, ok && text == NamespacePolicy(n, ns)
	p := "auth/" + n.AuthPath + "/role/" + n.NamespaceRole(ns.Namespace)
	sec, err := s.read(ctx, "read Kubernetes auth role "+ns.Namespace, p)
	if err != nil {
		return st, err
	}
	if sec == nil || sec.Data == nil {
		return st, nil
	}
	st.RoleExists = true
	want := s.roleData(n, ns, o)
	st.RoleCurrent = sameStrings(sec.Data["bound_service_account_names"], want["bound_service_account_names"].([]string)) &&
		sameStrings(sec.Data["bound_service_account_namespaces"], want["bound_service_account_namespaces"].([]string)) &&
		sameStrings(sec.Data["token_policies"], want["token_policies"].([]string)) &&
		toInt(sec.Data["token_ttl"]) == want["token_ttl"].(int) &&
		toInt(sec.Data["token_max_ttl"]) == want["token_max_ttl"].(int) &&
		str(sec.Data["audience"]) == o.Audience
	return st, nil
}

// DeleteNamespaceRole deletes the namespace's role and policy.
func (s *Setup) DeleteNamespaceRole(ctx context.Context, n Names, namespace string) error {
	p := "auth/" + n.AuthPath + "/role/" + n.NamespaceRole(namespace)
	if err := s.delete(ctx, "delete Kubernetes auth role "+namespace, p); err != nil {
		return err
	}
	return s.deletePolicy(ctx, n.NamespacePolicy(namespace))
}

// --- policies ------------------------------------------------------------

func (s *Setup) putPolicy(ctx context.Context, name, text string) error {
	p := "sys/policies/acl/" + name
	_, err := s.write(ctx, "write policy "+name, p, "update", map[string]any{"policy": text})
	return err
}

func (s *Setup) getPolicy(ctx context.Context, name string) (string, bool, error) {
	p := "sys/policies/acl/" + name
	sec, err := s.read(ctx, "read policy "+name, p)
	if err != nil || sec == nil || sec.Data == nil {
		return "", false, err
	}
	text, _ := sec.Data["policy"].(string)
	return text, true, nil
}

func (s *Setup) deletePolicy(ctx context.Context, name string) error {
	return s.delete(ctx, "delete policy "+name, "sys/policies/acl/"+name)
}

// --- helpers -------------------------------------------------------------

// toInt reads a number from Vault's JSON (json.Number with the client's
// decoder, float64 or int otherwise).
func toInt(v any) int {
	switch x := v.(type) {
	case json.Number:
		i, _ := x.Int64()
		return int(i)
	case float64:
		return int(x)
	case int:
		return x
	case int64:
		return int(x)
	case string:
		i, _ := strconv.Atoi(x)
		return i
	}
	return 0
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func sameStrings(got any, want []string) bool {
	g := toStrings(got)
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func listKeys(sec *api.Secret) []string {
	if sec == nil || sec.Data == nil {
		return nil
	}
	return toStrings(sec.Data["keys"])
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
