// Package vault is secprov's Vault integration: how to reach a Vault
// (Access), the per-cluster names of every Vault object (Names), the
// policies secprov writes, and the idempotent setup of transit keys, KV
// mounts, Kubernetes auth and the KMS plugin's narrow token. Package
// vault/kms is the Kubernetes KMS v2 plugin backed by Vault Transit.
//
// It is a leaf: provision and verify import it, it imports only the
// blueprint types.
package vault
