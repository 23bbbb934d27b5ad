// Package kind is secprov's provider of clusters with nodes: per cluster,
// a kind cluster (one control-plane node and spec.provider.kind.workers
// workers, containers of the Docker engine) on a Docker network of its
// own, created through the sigs.k8s.io/kind library with a configuration
// rendered from the blueprint: the same hardening renderers as the local
// provider, applied through kubeadm. The cluster CA, client credentials,
// rendered config files and audit log live in the cluster's private
// directory on this machine, as for local.
package kind

import (
	"fmt"
	"path"
	"path/filepath"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/paths"
)

// Components are the control plane's, as hardening names them: kubeadm
// runs them as static pods on the control-plane node.
var Components = hardening.Components()

// NetworkName is the Docker network of a cluster's nodes: one per
// cluster, never kind's shared "kind" network, so nodes of different
// environments cannot reach each other.
func NetworkName(cluster string) string { return "secprov-" + cluster }

// ControlPlaneNode is the name (container, hostname and Kubernetes node)
// of a cluster's control-plane node, as kind names it.
func ControlPlaneNode(cluster string) string { return cluster + "-control-plane" }

// WorkerNode is the name of the i-th worker (from 1), as kind names it.
func WorkerNode(cluster string, i int) string {
	if i == 1 {
		return cluster + "-worker"
	}
	return fmt.Sprintf("%s-worker%d", cluster, i)
}

// NodeNames lists a cluster's nodes, the control plane first.
func NodeNames(cluster string, workers int) []string {
	out := []string{ControlPlaneNode(cluster)}
	for i := 1; i <= workers; i++ {
		out = append(out, WorkerNode(cluster, i))
	}
	return out
}

// APIServerNodePort is where the API server listens inside the
// control-plane node (kind publishes it on a host port).
const APIServerNodePort = 6443

// nodePKI is kubeadm's certificate directory inside the nodes.
const nodePKI = "/etc/kubernetes/pki"

// etcdDataDir is kubeadm's etcd data directory in the control-plane node.
const etcdDataDir = "/var/lib/etcd"

// Paths inside the control-plane node that verify and the node hardening
// judge.
const (
	nodeKubernetesDir = "/etc/kubernetes"
	nodeManifestsDir  = "/etc/kubernetes/manifests"
	nodeKubeletDir    = "/var/lib/kubelet"
)

// layout names the kind provider's files in a cluster directory, beside
// the shared ones (paths.Layout).
type layout struct{ paths.Layout }

func newLayout(dir string) layout { return layout{paths.NewLayout(dir)} }

// KindDir holds what the kind provider writes for kubeadm before create.
func (l layout) KindDir() string { return filepath.Join(l.Dir, "kind") }

// HostFactsFile records the host facts the cluster was created with
// (HostFacts): later ups render the same node configuration from them,
// so the host changing under a cluster does not replace it.
func (l layout) HostFactsFile() string { return filepath.Join(l.KindDir(), "host-facts.json") }

// PatchesDir is kubeadm's patches directory (mounted read-only into the
// control-plane node at the same path).
func (l layout) PatchesDir() string { return filepath.Join(l.KindDir(), "kubeadm-patches") }

// DiscoveryKubeconfig is what workers join with (mounted read-only into
// them at the same path).
func (l layout) DiscoveryKubeconfig() string {
	return filepath.Join(l.KindDir(), "discovery.kubeconfig")
}

// KindKubeconfig is where the kind library exports its own admin
// kubeconfig while it creates the cluster; secprov removes it after.
func (l layout) KindKubeconfig() string { return filepath.Join(l.KindDir(), "kind-admin.kubeconfig") }

// CACert and CAKey are the cluster CA, made by secprov before create and
// mounted read-only into the control-plane node where kubeadm finds them.
func (l layout) CACert() string { return filepath.Join(l.PKIDir(), "ca.crt") }
func (l layout) CAKey() string  { return filepath.Join(l.PKIDir(), "ca.key") }

// CreateFailureLogs is where a failed create leaves the nodes' logs.
func (l layout) CreateFailureLogs() string { return filepath.Join(l.LogDir(), "kind-create-failed") }

func nodePath(elem ...string) string { return path.Join(append([]string{nodePKI}, elem...)...) }

// files are the control plane's files as kubeadm lays them out in the
// control-plane node, and the rendered config files and audit log, which
// live in the cluster directory and are mounted into the node at the same
// paths.
func files(l layout) hardening.Files {
	return hardening.Files{
		CACert: nodePath("ca.crt"), CAKey: nodePath("ca.key"),
		EtcdCACert:     nodePath("etcd", "ca.crt"),
		EtcdServerCert: nodePath("etcd", "server.crt"), EtcdServerKey: nodePath("etcd", "server.key"),
		EtcdPeerCert: nodePath("etcd", "peer.crt"), EtcdPeerKey: nodePath("etcd", "peer.key"),
		// kubeadm's etcd health-check client: a client certificate of the
		// etcd CA, as etcd's own client identity wants.
		EtcdSelfClientCert: nodePath("etcd", "healthcheck-client.crt"), EtcdSelfClientKey: nodePath("etcd", "healthcheck-client.key"),
		APIServerEtcdCert: nodePath("apiserver-etcd-client.crt"), APIServerEtcdKey: nodePath("apiserver-etcd-client.key"),
		APIServerCert: nodePath("apiserver.crt"), APIServerKey: nodePath("apiserver.key"),
		KubeletClientCert: nodePath("apiserver-kubelet-client.crt"), KubeletClientKey: nodePath("apiserver-kubelet-client.key"),
		FrontProxyCACert:     nodePath("front-proxy-ca.crt"),
		FrontProxyClientCert: nodePath("front-proxy-client.crt"), FrontProxyClientKey: nodePath("front-proxy-client.key"),
		ServiceAccountKey: nodePath("sa.key"), ServiceAccountPub: nodePath("sa.pub"),
		ControllerManagerKubeconfig: path.Join(nodeKubernetesDir, "controller-manager.conf"),
		SchedulerKubeconfig:         path.Join(nodeKubernetesDir, "scheduler.conf"),
		EncryptionConfig:            l.EncryptionConfig(),
		AuditPolicy:                 l.AuditPolicy(),
		AuditLog:                    l.AuditLog(),
		AdmissionConfig:             l.AdmissionConfig(),
		EtcdDataDir:                 etcdDataDir,
	}
}

// host is where etcd, the controller manager and the scheduler listen in
// the control-plane node, and how the API server reaches etcd: the node's
// loopback. The API server itself binds the node's address (see
// kubeadmFlags), which the other nodes reach over the cluster's network.
const host = "127.0.0.1"

// topology is what the kind provider tells hardening: components on the
// node's loopback, one API server whose kubernetes Service endpoint kubeadm
// sets to the node's address, and nodes that run the CNI agent, which
// needs privileged pods (Pod Security keeps them out of workload
// namespaces).
var topology = hardening.Topology{Host: host, AdvertiseAddress: host, AllowPrivileged: true}
