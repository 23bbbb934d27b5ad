package hardening

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/vault"
)

// VaultAccess is where the pods of a cluster reach its Vault when the
// route is not the one Vault advertises (the local Vault listens on this
// machine's loopback; a kind cluster's pods reach it through a relay at
// their network's gateway).
type VaultAccess struct {
	// Address is where the pods connect.
	Address netip.AddrPort
	// ServerName is the name Vault's certificate is checked against.
	ServerName string
	// CACert is the PEM of the CA that issued Vault's certificate.
	CACert string
}

// Names of what VaultAccessObjects renders in each listed namespace.
const (
	// VaultAccessPolicy allows egress to Vault, and nowhere else.
	VaultAccessPolicy = "secprov-allow-vault"
	// VaultConfigMap tells workloads how to reach and log in to Vault, in
	// the variables Vault's clients read (VAULT_ADDR, VAULT_CACERT is the
	// ca.crt key mounted as a file, VAULT_TLS_SERVER_NAME).
	VaultConfigMap = "secprov-vault"
)

// VaultAccessObjects are, in every namespace spec.vault lists, an egress
// policy to Vault's address and port (default deny drops it otherwise) and
// a ConfigMap with the address, CA certificate, server name, auth path and
// role (SP-VAULT-001). Namespaces Vault does not list get neither, so
// their pods cannot even open a connection to it.
func VaultAccessObjects(cluster string, spec v1alpha1.Spec, a VaultAccess) []Object {
	if !spec.Vault.IsEnabled() {
		return nil
	}
	n := vault.NamesFor(cluster, spec)
	ctl := []blueprints.ControlID{blueprints.VaultSecrets}
	addr := a.Address.Addr()
	bits := 32
	if addr.Is6() {
		bits = 128
	}
	var out []Object
	for _, vn := range spec.Vault.Namespaces {
		ns := vn.Namespace
		out = append(out,
			Object{Controls: ctl, Object: networkPolicy(ns, VaultAccessPolicy, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(addr, bits).String()}}},
					Ports: []networkingv1.NetworkPolicyPort{port("TCP", int(a.Address.Port()))},
				}},
			})},
			Object{Controls: ctl, Object: &corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
				ObjectMeta: meta(ns, VaultConfigMap, nil),
				Data: map[string]string{
					"VAULT_ADDR":            "https://" + a.Address.String(),
					"VAULT_TLS_SERVER_NAME": a.ServerName,
					"VAULT_AUTH_PATH":       "auth/" + n.AuthPath,
					"VAULT_ROLE":            n.NamespaceRole(ns),
					"VAULT_KV_MOUNT":        n.KVMount,
					"ca.crt":                a.CACert,
				},
			}},
		)
	}
	return out
}
