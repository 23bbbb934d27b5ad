package vault

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// rule is one path stanza of a Vault ACL policy.
type rule struct {
	path string
	caps []string
	why  string // rendered as a comment above the stanza
}

// render writes an ACL policy in HCL: a header comment, then one stanza
// per rule in the given order, so the text is stable and diffable.
func render(header string, rules []rule) string {
	var b strings.Builder
	for _, l := range strings.Split(header, "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	for _, r := range rules {
		b.WriteString("\n")
		if r.why != "" {
			b.WriteString("# " + r.why + "\n")
		}
		quoted := make([]string, len(r.caps))
		for i, c := range r.caps {
			quoted[i] = strconv.Quote(c)
		}
		// Vault paths secprov writes are validated to [A-Za-z0-9_/*-], so
		// Go quoting is valid HCL quoting.
		fmt.Fprintf(&b, "path %s {\n  capabilities = [%s]\n}\n", strconv.Quote(r.path), strings.Join(quoted, ", "))
	}
	return b.String()
}

// KMSPolicy is the text of the policy named n.KMSPolicy(): the KMS
// plugin may encrypt and decrypt with the cluster's transit key and read
// the key's metadata (its current version is the plugin's key ID), and
// nothing else. (Its token also carries Vault's default policy, which lets
// it renew and look up itself.)
func KMSPolicy(n Names) string {
	m, k := n.TransitMount, n.TransitKey
	return render(fmt.Sprintf("secprov: KMS v2 plugin of cluster %s.\nEncrypt and decrypt with one transit key; nothing else.", n.Cluster), []rule{
		{path: m + "/encrypt/" + k, caps: []string{"update"}},
		{path: m + "/decrypt/" + k, caps: []string{"update"}},
		{path: m + "/keys/" + k, caps: []string{"read"}},
	})
}

// EvidencePolicy is the text of the policy named n.EvidencePolicy(): sign
// with the environment's signing key and nothing else, not even read it
// (its public keys are read with the operator's token).
func EvidencePolicy(n Names) string {
	return render(fmt.Sprintf("secprov: evidence signer of cluster %s.\nSign with one transit key; nothing else.", n.Cluster), []rule{
		{path: n.TransitMount + "/sign/" + n.SigningKey + "/sha2-256", caps: []string{"update"}},
	})
}

// kvGlob maps a blueprint KV path ("payments/*", "payments*", "payments/db")
// to the Vault ACL path under a kv-v2 prefix. Vault's only glob is a
// trailing "*" matching any suffix (slashes included), which is what the
// blueprint means by a trailing "*" or "/*"; anything else is exact.
func kvGlob(prefix, p string) string {
	return prefix + strings.TrimPrefix(p, "/")
}

// NamespacePolicy is the text of the policy named
// n.NamespacePolicy(ns.Namespace): read the secrets at ns.Paths in the
// cluster's KV mount and list and read their metadata (versions), nothing
// else: no writes, no deletes, no other mount.
func NamespacePolicy(n Names, ns v1alpha1.VaultNamespace) string {
	paths := slices.Clone(ns.Paths)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	var rules []rule
	for _, p := range paths {
		rules = append(rules,
			rule{path: kvGlob(n.KVMount+"/data/", p), caps: []string{"read"}},
			rule{path: kvGlob(n.KVMount+"/metadata/", p), caps: []string{"read", "list"}},
		)
	}
	return render(fmt.Sprintf("secprov: workloads in namespace %s of cluster %s.\nRead-only access to their KV paths; nothing else.", ns.Namespace, n.Cluster), rules)
}

// setupRules are the capabilities secprov uses to create, check and remove
// one cluster's Vault objects, each stanza exact to that cluster's names so
// a token for one cluster cannot touch another's (policy names are listed
// one by one: cluster names may share prefixes, "shop" and "shop-ns-x").
func setupRules(n Names) []rule {
	t, kv, auth := n.TransitMount, n.KVMount, n.AuthPath
	rules := []rule{
		{path: "sys/mounts/" + t, caps: []string{"read", "update", "delete"}, why: "the transit mount: enable, check its type, disable on down"},
		{path: t + "/keys/" + n.TransitKey, caps: []string{"read", "update", "delete"}, why: "the KMS key: create, check, delete on down"},
		{path: t + "/keys/" + n.TransitKey + "/config", caps: []string{"update"}, why: "allow the key's deletion right before down deletes it"},
		{path: t + "/keys/" + n.TransitKey + "/rotate", caps: []string{"update"}, why: "secprov rotate-keys: add a new key version"},
		{path: t + "/keys", caps: []string{"list"}, why: "down disables the transit mount only when no other key is left in it"},
		{path: "sys/mounts/" + kv, caps: []string{"read", "update", "delete"}, why: "the KV v2 mount of workload secrets: enable, check, disable on down"},
		{path: kv + "/config", caps: []string{"read"}, why: "wait until a new KV v2 mount has finished upgrading"},
		{path: "sys/auth/" + auth, caps: []string{"read", "update", "delete", "sudo"}, why: "the Kubernetes auth mount (Vault requires sudo for sys/auth)"},
		{path: "auth/" + auth + "/config", caps: []string{"read", "update"}, why: "its API server address, CA and token reviewer JWT"},
		{path: "auth/" + auth + "/role/*", caps: []string{"create", "read", "update", "delete"}, why: "one login role per namespace (this mount belongs to the cluster)"},
		{path: "sys/policies/acl/" + n.KMSPolicy(), caps: []string{"read", "update", "delete"}, why: "the KMS plugin's policy"},
	}
	if n.SigningKey != "" {
		rules = append(rules,
			rule{path: t + "/keys/" + n.SigningKey, caps: []string{"read", "update", "delete"}, why: "the environment's evidence signing key: create, read its public keys, delete on down"},
			rule{path: t + "/keys/" + n.SigningKey + "/config", caps: []string{"update"}, why: "allow the signing key's deletion right before down deletes it"},
			rule{path: t + "/keys/" + n.SigningKey + "/rotate", caps: []string{"update"}, why: "rotate the signing key (old versions keep verifying)"},
			rule{path: "sys/policies/acl/" + n.EvidencePolicy(), caps: []string{"read", "update", "delete"}, why: "the evidence signer's policy"},
			rule{path: "auth/token/roles/" + n.EvidenceTokenRole(), caps: []string{"create", "read", "update", "delete"}, why: "the token role of the evidence signer"},
			rule{path: "auth/token/create/" + n.EvidenceTokenRole(), caps: []string{"update"}, why: "mint the evidence signer's token from that role"},
		)
	}
	for _, ns := range sortedNamespaces(n) {
		rules = append(rules, rule{path: "sys/policies/acl/" + n.NamespacePolicy(ns), caps: []string{"read", "update", "delete"},
			why: "the read-only policy of namespace " + ns})
	}
	rules = append(rules,
		rule{path: "auth/token/roles/" + n.KMSTokenRole(), caps: []string{"create", "read", "update", "delete"}, why: "the token role that mints the KMS plugin's periodic orphan token"},
		rule{path: "auth/token/create/" + n.KMSTokenRole(), caps: []string{"update"}, why: "mint the KMS plugin's token from that role"},
		rule{path: "auth/token/lookup-accessor", caps: []string{"update"}, why: "check that the KMS token is still valid (by accessor: secprov keeps no token)"},
		rule{path: "auth/token/revoke-accessor", caps: []string{"update"}, why: "revoke the KMS token on down or when it is replaced"},
	)
	return rules
}

func sortedNamespaces(n Names) []string {
	var out []string
	for _, ns := range n.Namespaces {
		out = append(out, ns.Namespace)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SetupPolicy is the least-privilege policy a user's own Vault token needs
// for secprov to manage one cluster's objects (spec.vault.address set):
// its transit mount and key, KV mount, Kubernetes auth mount and roles,
// the policies and token role secprov writes, and the KMS token. Apply it
// with `vault policy write secprov-setup-<cluster> -` and give secprov a
// token that has it. It lists the namespace policies by name: when
// spec.vault.namespaces changes, write the new policy before `up` (adding)
// or after it (removing).
func SetupPolicy(n Names) string {
	return render(fmt.Sprintf("secprov setup policy for cluster %s.\nLets secprov create, check and remove this cluster's Vault objects; nothing else.", n.Cluster), setupRules(n))
}
