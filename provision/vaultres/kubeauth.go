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

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/vault"
)

// The reviewer JWT is a TokenRequest token of the reviewer service
// account: the API server issues it at once, where a legacy token Secret
// waits for kube-controller-manager's token controller (seconds after a
// cluster starts).
const (
	// ReviewerTokenLifetime is the lifetime Create asks for; the API
	// server may grant less (--service-account-max-token-expiration).
	ReviewerTokenLifetime = 365 * 24 * time.Hour
	// ReviewerRenewBefore: a reviewer token that expires within this
	// shows as drift, so a routine `secprov up` replaces it in time.
	ReviewerRenewBefore = 30 * 24 * time.Hour
	// reviewerAccountWait bounds how long Create waits for the reviewer
	// service account; the cluster's bootstrap, which Create depends on,
	// has already created it, so this only covers a lagging cache.
	reviewerAccountWait = 5 * time.Second
)

// KubernetesAuthInputs declare a cluster's Kubernetes auth mount.
type KubernetesAuthInputs struct {
	Access vault.Access `json:"access"`
	Path   string       `json:"path" secprov:"replace"`
	// Kubeconfig of the cluster admin: the API server address and CA
	// Vault uses, and the identity that requests the reviewer's token.
	Kubeconfig string `json:"kubeconfig"`
	// The token reviewer (defaults: vault.Reviewer*): a service account
	// bound to system:auth-delegator, created by the cluster's bootstrap.
	ReviewerNamespace      string `json:"reviewerNamespace,omitempty"`
	ReviewerServiceAccount string `json:"reviewerServiceAccount,omitempty"`
	// Issuer of service-account tokens, if Vault should check it; empty
	// leaves that to the API server's TokenReview.
	Issuer string `json:"issuer,omitempty"`
}

// KubernetesAuthOutputs say what Vault was configured with. None of it is
// secret: the JWT is represented by the account it belongs to and its
// expiry.
type KubernetesAuthOutputs struct {
	Host     string `json:"host"`
	CASHA256 string `json:"caSHA256"`
	// ReviewerServiceAccountUID is the uid of the reviewer service account
	// whose token was written to Vault: a recreated account invalidates
	// its tokens, so a different uid shows as drift.
	ReviewerServiceAccountUID string `json:"reviewerServiceAccountUID"`
	// ReviewerTokenExpires is when that token expires (RFC 3339), as
	// granted by the API server.
	ReviewerTokenExpires string `json:"reviewerTokenExpires"`
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

// reviewerToken requests a token of the reviewer service account with
// the TokenRequest API and returns it with the account's uid and the
// expiry the API server granted. A missing account is retried for up to
// wait.
func (k *apiServer) reviewerToken(ctx context.Context, in KubernetesAuthInputs, wait time.Duration) (jwt, uid string, expires time.Time, err error) {
	ref := in.ReviewerNamespace + "/" + in.ReviewerServiceAccount
	seconds := int64(ReviewerTokenLifetime / time.Second)
	deadline := time.Now().Add(wait)
	for {
		// The account's uid is read before the token is requested: were
		// the account recreated in between, the recorded uid is the old
		// one and the next Diff replaces the token, never the reverse.
		sa, err := k.client.CoreV1().ServiceAccounts(in.ReviewerNamespace).Get(ctx, in.ReviewerServiceAccount, metav1.GetOptions{})
		if err == nil {
			var tr *authenticationv1.TokenRequest
			tr, err = k.client.CoreV1().ServiceAccounts(in.ReviewerNamespace).CreateToken(ctx, in.ReviewerServiceAccount,
				&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
			switch {
			case err == nil && tr.Status.Token == "":
				return "", "", time.Time{}, fmt.Errorf("cluster %s: the API server returned an empty token for service account %s", k.host, ref)
			case err == nil:
				return tr.Status.Token, string(sa.UID), tr.Status.ExpirationTimestamp.Time, nil
			}
		}
		if !apierrors.IsNotFound(err) {
			return "", "", time.Time{}, fmt.Errorf("cluster %s: request a token for the Vault token reviewer %s: %w", k.host, ref, err)
		}
		if time.Now().After(deadline) {
			return "", "", time.Time{}, fmt.Errorf("cluster %s: service account %s of the Vault token reviewer not found after %v (the cluster's bootstrap creates it, bound to system:auth-delegator; run `secprov up` to restore it): %w",
				k.host, ref, wait, err)
		}
		select {
		case <-ctx.Done():
			return "", "", time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reviewerDrift says why the reviewer token written to Vault (recorded in
// state) should be replaced, or "" if it is still good: the account is
// gone or was recreated (its tokens died with it), the expiry is unknown,
// or it is less than ReviewerRenewBefore away. sa is nil if the account
// could not be read.
func reviewerDrift(sa *corev1.ServiceAccount, state KubernetesAuthOutputs, now time.Time) string {
	if sa == nil {
		return "reviewer service account not readable"
	}
	if string(sa.UID) != state.ReviewerServiceAccountUID {
		return "reviewer service account recreated"
	}
	exp, err := time.Parse(time.RFC3339, state.ReviewerTokenExpires)
	if err != nil {
		return "reviewer token expiry unknown"
	}
	if exp.Sub(now) < ReviewerRenewBefore {
		return "reviewer token expires " + state.ReviewerTokenExpires
	}
	return ""
}

func kubernetesAuthResourceType() provider.TypedResourceType[KubernetesAuthInputs, KubernetesAuthOutputs] {
	type req = provider.TypedRequest[KubernetesAuthInputs, KubernetesAuthOutputs]
	ensure := func(ctx context.Context, r req) (KubernetesAuthOutputs, error) {
		in := r.Inputs
		k, err := loadAPIServer(in.Kubeconfig)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		jwt, uid, expires, err := k.reviewerToken(ctx, in, reviewerAccountWait)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		if time.Until(expires) < ReviewerRenewBefore {
			// Every preview will show drift and every up renew it; between
			// ups Vault's logins fail once it has expired.
			r.Log.Warn("the API server granted the Vault token reviewer a short-lived token: run `secprov up` before it expires, or raise --service-account-max-token-expiration",
				"cluster", k.host, "expires", expires.UTC().Format(time.RFC3339))
		}
		s, err := vault.NewSetup(ctx, in.Access, r.Log)
		if err != nil {
			return KubernetesAuthOutputs{}, err
		}
		out := KubernetesAuthOutputs{Host: k.host, CASHA256: sha(k.caPEM)}
		if err := s.EnsureKubernetesAuth(ctx, in.Path, vault.KubernetesAuthConfig{Host: k.host, CACert: k.caPEM, ReviewerJWT: jwt, Issuer: in.Issuer}); err != nil {
			// Without the reviewer fields the next Diff asks for a new
			// token whether or not this one reached Vault.
			return out, err
		}
		out.ReviewerServiceAccountUID, out.ReviewerTokenExpires = uid, expires.UTC().Format(time.RFC3339)
		return out, nil
	}
	return provider.TypedResourceType[KubernetesAuthInputs, KubernetesAuthOutputs]{
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
			}{{&in.ReviewerNamespace, vault.ReviewerNamespace}, {&in.ReviewerServiceAccount, vault.ReviewerServiceAccount}} {
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
		// address and CA with the kubeconfig, and the reviewer service
		// account and token expiry with the ones recorded. Diff never
		// mints a token: a preview must change nothing.
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
			sa, err := k.client.CoreV1().ServiceAccounts(in.ReviewerNamespace).Get(ctx, in.ReviewerServiceAccount, metav1.GetOptions{})
			if err != nil {
				// Gone, or the API server is down (a component restarted
				// by the same run): rewriting is harmless.
				r.Log.Debug("reviewer service account not readable; Vault config will be rewritten", "error", err)
				sa = nil
			}
			if why := reviewerDrift(sa, r.State, time.Now()); why != "" {
				r.Log.Debug("reviewer token will be replaced", "reason", why)
				d = drift(d, "reviewerToken", provider.Update, false)
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
