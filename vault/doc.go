// Package vault is where secprov's Vault integration lands: transit keys,
// per-cluster KV mounts, policies and Kubernetes auth, and the KMS v2
// plugin backed by Vault Transit that turns encryptionAtRest vault-kms into
// a real provider. Until then the local provider encrypts with secretbox
// and says so (see provision/local.EffectiveEncryption); the pinned Vault
// server (v1.17.6) is already part of the toolchain.
package vault
