package cluster

import (
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/vault"
)

// What a cluster's isolation checks need to know about the other clusters
// of the machine, whatever provider made them: their records are the only
// source, so clusters of different providers see each other.

// Peers lists the records of every cluster but self.
type Peers func() ([]*Record, error)

// RecordPeers lists the clusters of a state root.
func RecordPeers(stateDir string) Peers {
	return func() ([]*Record, error) {
		recs, _, err := Records(stateDir)
		return recs, err
	}
}

// ForeignCredentials returns the admin client credentials of every peer of
// another environment, read from its admin kubeconfig. A peer that is half
// gone is skipped: there is nothing to test with.
func ForeignCredentials(self *Record, peers Peers) ([]verify.Credential, error) {
	if peers == nil {
		return nil, nil
	}
	recs, err := peers()
	if err != nil {
		return nil, err
	}
	var out []verify.Credential
	for _, r := range recs {
		if r.Name == self.Name || r.Environment == self.Environment {
			continue
		}
		cert, key, err := clientCredential(r.Kubeconfig)
		if err != nil {
			continue
		}
		out = append(out, verify.Credential{Cluster: r.Name, Environment: r.Environment, CertPEM: cert, KeyPEM: hardening.Secret(key)})
	}
	return out, nil
}

// clientCredential reads the client certificate and key of a kubeconfig's
// current context.
func clientCredential(kubeconfig string) (cert, key []byte, err error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no current context", kubeconfig)
	}
	ai, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no user %q", kubeconfig, ctx.AuthInfo)
	}
	cert, key = ai.ClientCertificateData, ai.ClientKeyData
	if len(cert) == 0 && ai.ClientCertificate != "" {
		if cert, err = os.ReadFile(ai.ClientCertificate); err != nil {
			return nil, nil, err
		}
	}
	if len(key) == 0 && ai.ClientKey != "" {
		if key, err = os.ReadFile(ai.ClientKey); err != nil {
			return nil, nil, err
		}
	}
	if len(cert) == 0 || len(key) == 0 {
		return nil, nil, fmt.Errorf("%s: no client certificate", kubeconfig)
	}
	return cert, key, nil
}

// VaultOf returns how verify reaches the cluster's Vault, its object
// names, and the clusters of other environments in the same Vault.
// kmsToken is the file holding the KMS plugin's token.
func VaultOf(self *Record, kmsToken string, peers Peers) (*verify.Vault, error) {
	vr := self.Vault
	if vr == nil {
		return nil, fmt.Errorf("cluster %s was created without Vault; run secprov up to add it", self.Name)
	}
	spec, err := self.DecodeSpec()
	if err != nil {
		return nil, err
	}
	v := &verify.Vault{Admin: vr.Admin, KMSSocket: vr.KMSSocket, Names: vault.NamesFor(self.Name, spec)}
	if vr.KMSSocket != "" {
		v.KMSToken = vault.Access{Address: vr.Admin.Address, CAFile: vr.Admin.CAFile, TokenFile: kmsToken}
	}
	if peers == nil {
		return v, nil
	}
	recs, err := peers()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Name == self.Name || r.Environment == self.Environment || r.Vault == nil ||
			!blueprints.SameService(r.Vault.Admin.Address, vr.Admin.Address) {
			continue
		}
		spec, err := r.DecodeSpec()
		if err != nil {
			continue // a damaged peer; its own verify reports it
		}
		v.Peers = append(v.Peers, verify.VaultPeer{Cluster: r.Name, Environment: r.Environment, Names: vault.NamesFor(r.Name, spec)})
	}
	return v, nil
}
