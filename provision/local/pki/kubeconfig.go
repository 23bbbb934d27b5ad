package pki

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"secprov.dev/secprov/internal/atomicfile"
)

// WriteKubeconfig writes a kubeconfig for one user of one cluster to path,
// mode 0600. The CA, certificate and key are embedded rather than referenced,
// so the file keeps working when copied elsewhere or when the PKI directory
// moves. The context is named "<user>@<cluster>" and is the current one.
func WriteKubeconfig(path, server, caFile, certFile, keyFile, user, cluster string) error {
	if u, err := url.Parse(server); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("kubeconfig %s: server %q is not an https:// URL", path, server)
	}
	if user == "" || cluster == "" {
		return fmt.Errorf("kubeconfig %s: user and cluster names must not be empty", path)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: read CA: %w", path, err)
	}
	if _, err := loadCert(caFile); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: read client certificate: %w", path, err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: read client key: %w", path, err)
	}
	// A mismatched pair would only fail later, at the first request.
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return fmt.Errorf("kubeconfig %s: client certificate %s and key %s do not form a pair: %w", path, certFile, keyFile, err)
	}
	ctxName := user + "@" + cluster
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			cluster: {Server: server, CertificateAuthorityData: ca},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			user: {ClientCertificateData: cert, ClientKeyData: key},
		},
		Contexts: map[string]*clientcmdapi.Context{
			ctxName: {Cluster: cluster, AuthInfo: user},
		},
		CurrentContext: ctxName,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: encode: %w", path, err)
	}
	return atomicfile.Write(path, data, keyMode)
}
