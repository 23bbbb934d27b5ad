// Package kms is the Kubernetes KMS v2 plugin backed by Vault Transit.
//
// The kube-apiserver encrypts every stored secret with a local data key
// and asks this plugin to wrap that key (or the seed it derives keys
// from). The plugin sends it to <mount>/encrypt/<key> of the cluster's own
// transit mount and hands back Vault's ciphertext, so the key that protects
// etcd never leaves Vault. It runs beside the control plane with a narrow,
// periodic token that may only encrypt and decrypt with that one key and
// read its metadata.
//
// Serve runs the plugin on a unix socket, Probe asks a running plugin for
// its status, and ParseStored reads the envelope the apiserver writes to
// etcd, so checks can prove a secret really went through the plugin.
package kms
