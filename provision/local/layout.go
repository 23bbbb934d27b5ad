// Package local is secprov's embedded provider: per cluster, etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler run as
// supervised processes bound to loopback, each cluster in its own 0700
// directory with its own PKI, keys and ports. No Docker, no nodes: a real,
// hardened control plane for policy and API work.
package local

import (
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/hostproc"
	"secprov.dev/secprov/provision/local/pki"
	"secprov.dev/secprov/provision/paths"
)

// Components in start order, named as hardening names them.
const (
	Etcd              = hardening.Etcd
	APIServer         = hardening.APIServer
	ControllerManager = hardening.ControllerManager
	Scheduler         = hardening.Scheduler
)

// KMSPlugin is the KMS v2 plugin process (secprov kms-plugin) of a
// cluster that encrypts with vault-kms; it starts before the API server.
const KMSPlugin = hostproc.KMSPlugin

// Components lists the control-plane processes in start order.
var Components = hardening.Components()

// files are the control plane's files in layout l with PKI bundle b,
// without touching disk.
func files(l paths.Layout, b *pki.Bundle) hardening.Files {
	return hardening.Files{
		CACert: b.CACert, CAKey: b.CAKey, EtcdCACert: b.EtcdCACert,
		EtcdServerCert: b.EtcdServerCert, EtcdServerKey: b.EtcdServerKey,
		EtcdPeerCert: b.EtcdPeerCert, EtcdPeerKey: b.EtcdPeerKey,
		EtcdSelfClientCert: b.EtcdSelfClientCert, EtcdSelfClientKey: b.EtcdSelfClientKey,
		APIServerEtcdCert: b.APIServerEtcdClientCert, APIServerEtcdKey: b.APIServerEtcdClientKey,
		APIServerCert: b.APIServerCert, APIServerKey: b.APIServerKey,
		KubeletClientCert: b.APIServerKubeletClientCert, KubeletClientKey: b.APIServerKubeletClientKey,
		FrontProxyCACert: b.FrontProxyCACert, FrontProxyClientCert: b.FrontProxyClientCert, FrontProxyClientKey: b.FrontProxyClientKey,
		ServiceAccountKey: b.ServiceAccountKey, ServiceAccountPub: b.ServiceAccountPub,
		ControllerManagerKubeconfig: l.Kubeconfig(ControllerManager),
		SchedulerKubeconfig:         l.Kubeconfig(Scheduler),
		EncryptionConfig:            l.EncryptionConfig(),
		AuditPolicy:                 l.AuditPolicy(),
		AuditLog:                    l.AuditLog(),
		AdmissionConfig:             l.AdmissionConfig(),
		EtcdDataDir:                 l.EtcdDataDir(),
	}
}

// host is where every process of a local cluster listens: the loopback
// interface is the local provider's private network.
const host = "127.0.0.1"

// topology is what the local provider tells hardening: everything on
// loopback, one API server (no endpoint reconciliation, which refuses a
// loopback advertise address), no nodes and so no privileged pods.
var topology = hardening.Topology{Host: host, AdvertiseAddress: host, NoEndpointReconciler: true}
