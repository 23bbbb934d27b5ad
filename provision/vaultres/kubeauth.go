package vaultres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/vault"
)

// ReviewerTokenWait bounds how long Create waits for the token controller
// to fill the reviewer's token Secret (normally well under a second after
// the Secret is created).
const ReviewerTokenWait = 30 * time.Second

// KubernetesAuthInputs declare a cluster's Kubernetes auth mount.
type KubernetesAuthInputs struct {
	Access vault.Access `json:"access"`
	Path   string       `json:"path" secprov:"replace"`
	// Kubeconfig of the cluster admin: the API server address and CA
	// Vault uses, and the identity that reads the reviewer's token.
	Kubeconfig string `json:"kubeconfig"`
	// The token reviewer (defaults: vault.Reviewer*): a service account
	// bound to system:auth-delegator and its long-lived token Secret.
	ReviewerNamespace      string `json:"reviewerNamespace,omitempty"`
	ReviewerServiceAccount string `json:"reviewerServiceAccount,omitempty"`
	ReviewerSecret         string `json:"reviewerSecret,omitempty"`
	// Issuer of service-account tokens, if Vault should check it; empty
	// leaves that to the API server's TokenReview.
	Issuer string `json:"issuer,omitempty"`
}

// KubernetesAuthOutputs say what Vault was configured with. None of it is
// secret: the JWT is represented by the uid of the Secret it came from.
type KubernetesAuthOutputs struct {
	Host     string `json:"host"`
	CASHA256 string `json:"caSHA256"`
	// ReviewerSecretUID is the uid of the reviewer Secret whose token was
	// written to Vault: a recreated Secret (new token, the old one no
	// longer valid) shows as drift. Not its resourceVersion: the API server
	// labels the Secret when the token is used.
	ReviewerSecretUID string `json:"reviewerSecretUID"`
}

// apiServer is what Vault needs of a cluster, from its kubeconfig.
type apiServer struct {
	host   string
	caPEM  string
	client kubernetes.Interface
}

func loadAPIServer(kubeconfig string) (*apiServer, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	ca := cfg.TLSClientConfig.CAData
	if len(ca) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if ca, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: CA: %w", kubeconfig, err)
		}
	}
	if len(ca) == 0 {
		return nil, fmt.Errorf("kubeconfig %s: no certificate authority for %s: Vault must verify the API server", kubeconfig, cfg.Host)
	}
	cfg.Timeout = 15 * time.Second
	cfg.UserAgent = "secprov-vault"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return &apiServer{host: cfg.Host, caPEM: string(ca), client: cs}, nil
}

func sha(s string) string {
	h := sha256.Sum256([]byte(strings.TrimSpace(s)))
	return "sha256:" + hex.EncodeToString(h[:])
}

// reviewerToken returns the reviewer's token and the Secret's uid,
// waiting up to wait for the Secret to exist and be filled. The Secret
// must be a service-account token of the reviewer account: anything else
// in that name is refused rather than handed to Vault.
func (k *apiServer) reviewerToken(ctx context.Context, in KubernetesAuthInputs, wait time.Duration) (jwt, uid string, err error) {
	ref := in.ReviewerNamespace + "/" + in.ReviewerSecret
	deadline := time.Now().Add(wait)
	for {
		s, err := k.client.CoreV1().Secrets(in.ReviewerNamespace).Get(ctx, in.ReviewerSecret, metav1.GetOptions{})
		switch {
		case err == nil && s.Type != corev1.SecretTypeServiceAccountToken:
			return "", "", fmt.Errorf("cluster %s: Secret %s is of type %s, not %s", k.host, ref, s.Type, corev1.SecretTypeServiceAccountToken)
		case err == nil && s.Annotations[corev1.ServiceAccountNameKey] != in.ReviewerServiceAccount:
			return "", "", fmt.Errorf("cluster %s: Secret %s holds a token of service account %q, not %q", k.host, ref, s.Annotations[corev1.ServiceAccountNameKey], in.ReviewerServiceAccount)
		case err == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0:
			return string(s.Data[corev1.ServiceAccountTokenKey]), string(s.UID), nil
		case err != nil && !apierrors.IsNotFound(err):
			return "", "", fmt.Errorf("cluster %s: read Secret %s: %w", k.host, ref, err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				return "", "", fmt.Errorf("cluster %s: Secret %s of the Vault token reviewer not found after %v (the cluster's bootstrap creates it with service account %s bound to system:auth-delegator): %w",
					k.host, ref, wait, in.ReviewerServiceAccount, err)
			}
			return "", "", fmt.Errorf("cluster %s: Secret %s has no token after %v: is kube-controller-manager running (its token controller fills it)?", k.host, ref, wait)
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func kubernetesAuthKind() provider.TypedKind[KubernetesAuthInputs, KubernetesAuthOutputs] {
	type req = provider.TypedRequest[KubernetesAuthInputs, KubernetesAuthOutputs]
	ensure := func(ctx context.Context, r req) (KubernetesAuthOutputs, error) {
		in := r.Inputs
		k, err := loadAPIServer(in.Kubeconfig)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		jwt, uid, err := k.reviewerToken(ctx, in, ReviewerTokenWait)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		s, err := vault.NewSetup(ctx, in.Access, r.Log)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		err = s.EnsureKubernetesAuth(ctx, in.Path, vault.KubernetesAuthConfig{Host: k.host, CACert: k.caPEM, ReviewerJWT: jwt, Issuer: in.Issuer})
		return KubernetesAuthOutputs{Host: k.host, CASHA256: sha(k.caPEM), ReviewerSecretUID: uid}, err
	}
	return provider.TypedKind[KubernetesAuthInputs, KubernetesAuthOutputs]{
		Token:               KubernetesAuthType,
		ReplaceOnChanges:    replaceAccess,
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *KubernetesAuthInputs) []provider.Failure {
			f := checkName(checkAccess(in.Access), "path", in.Path)
			if !filepath.IsAbs(in.Kubeconfig) {
				f = append(f, provider.Failure{Property: "kubeconfig", Reason: fmt.Sprintf("%q must be an absolute path", in.Kubeconfig)})
			}
			for _, d := range []struct {
				v   *string
				def string
			}{{&in.ReviewerNamespace, vault.ReviewerNamespace}, {&in.ReviewerServiceAccount, vault.ReviewerServiceAccount}, {&in.ReviewerSecret, vault.ReviewerSecret}} {
				if *d.v == "" {
					*d.v = d.def
				}
			}
			return f
		},
		Create: func(ctx context.Context, r req) (string, KubernetesAuthOutputs, error) {
			out, err := ensure(ctx, r)
			if err != nil {
				return createdID(r.Inputs.Path, err), out, err
			}
			return r.Inputs.Path, out, nil
		},
		// Vault returns the configuration without the JWT: compare the
		// address and CA with the kubeconfig, and the reviewer Secret with
		// the one whose token was written.
		Diff: func(ctx context.Context, r req, d provider.Diff) (provider.Diff, error) {
			in := r.Inputs
			if d.Replaces() || !known(in.Access, in.Path, in.Kubeconfig) {
				return d, nil
			}
			s, err := vault.NewSetup(ctx, in.Access, r.Log)
			if err != nil {
				return d, err
			}
			live, ok, err := s.ReadKubernetesAuth(ctx, in.Path)
			if err != nil {
				return d, err
			}
			if !ok {
				return drift(d, "path", provider.Add, true), nil
			}
			if !live.ReviewerJWTSet {
				d = drift(d, "tokenReviewerJWT", provider.Add, false)
			}
			if live.Issuer != in.Issuer {
				d = drift(d, "issuer", provider.Update, false)
			}
			k, err := loadAPIServer(in.Kubeconfig)
			if err != nil {
				// The cluster is being rebuilt in this same run; Update
				// reads the kubeconfig again once it exists.
				r.Log.Debug("kubeconfig not readable; Vault config will be rewritten", "error", err)
				return drift(d, "kubeconfig", provider.Update, false), nil
			}
			if live.Host != k.host {
				d = drift(d, "kubernetesHost", provider.Update, false)
			}
			if sha(live.CACert) != sha(k.caPEM) {
				d = drift(d, "kubernetesCACert", provider.Update, false)
			}
			if _, uid, err := k.reviewerToken(ctx, in, 0); err != nil || uid != r.State.ReviewerSecretUID {
				// A new token, or the API server is down (a component
				// restarted by the same run): rewriting is harmless.
				d = drift(d, "reviewerSecret", provider.Update, false)
			}
			return d, nil
		},
		Read: func(ctx context.Context, r req) (KubernetesAuthInputs, KubernetesAuthOutputs, bool, error) {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return r.Inputs, r.State, false, err
			}
			live, ok, err := s.ReadKubernetesAuth(ctx, r.Inputs.Path)
			if err != nil || !ok {
				return r.Inputs, r.State, false, err
			}
			out := r.State
			out.Host, out.CASHA256 = live.Host, sha(live.CACert)
			return r.Inputs, out, true, nil
		},
		Update: ensure,
		Delete: func(ctx context.Context, r req) error {
			s, err := vault.NewSetup(ctx, r.Inputs.Access, r.Log)
			if err != nil {
				return err
			}
			return s.DeleteKubernetesAuth(ctx, r.Inputs.Path)
		},
	}
}
