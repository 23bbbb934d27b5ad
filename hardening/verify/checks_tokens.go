package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// checkServiceAccountTokens: the token flags, and a real token issued by
// the TokenRequest API authenticates through a TokenReview, names the
// hardened issuer and is signed by the key --service-account-key-file
// names. TokenRequest stores nothing, so the check needs no cleanup. The
// token never leaves this function.
func checkServiceAccountTokens(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.APIServerServiceAccountTokens, []string{APIServer}, &r)
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	const ns, sa = "default", "default"
	exp := int64(600) // the shortest lifetime the API accepts
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.skip("ServiceAccount default/default does not exist, so no token was issued")
		return r.outcome("")
	case err != nil:
		r.fail(Evidence{Object: "ServiceAccount default/default", Field: "TokenRequest", Want: "a token", Got: err.Error()},
			"the TokenRequest API does not issue tokens")
		return r.outcome("")
	}
	token := tr.Status.Token
	user := "system:serviceaccount:" + ns + ":" + sa
	rev, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		r.errorf("TokenReview: %v", err)
		return r.outcome("")
	}
	ev := Evidence{Object: "TokenReview", Field: "issued token of " + ns + "/" + sa, Want: "authenticated as " + user}
	if rev.Status.Authenticated && rev.Status.User.Username == user {
		ev.Got = "authenticated as " + user
		r.ok(ev)
	} else {
		ev.Got = fmt.Sprintf("authenticated=%v user=%q error=%q", rev.Status.Authenticated, rev.Status.User.Username, rev.Status.Error)
		r.fail(ev, "a freshly issued service-account token does not authenticate")
	}
	hdr, claims, input, sig, err := splitJWT(token)
	if err != nil {
		r.errorf("issued token: %v", err)
		return r.outcome("")
	}
	iss := Evidence{Object: "issued token", Field: "iss", Want: hardening.ServiceAccountIssuer, Got: claims.Issuer}
	if claims.Issuer == hardening.ServiceAccountIssuer {
		r.ok(iss)
	} else {
		r.fail(iss, "tokens carry issuer "+claims.Issuer)
	}
	if c := comps[APIServer]; c != nil {
		if path := Args(c.Args)["service-account-key-file"]; path != "" {
			data, err := t.ReadFile(ctx, path)
			if err != nil {
				r.errorf("read --service-account-key-file: %v", err)
				return r.outcome("")
			}
			ev := Evidence{Object: "issued token", Field: "signature (" + hdr.Alg + ")", Want: "verifies with " + path}
			if err := verifyJWT(hdr.Alg, input, sig, data); err != nil {
				ev.Got = err.Error()
				r.fail(ev, "issued tokens are not signed by the key --service-account-key-file names")
			} else {
				ev.Got = "verifies"
				r.ok(ev)
			}
		}
	}
	return r.outcome("tokens are looked up, issued by " + hardening.ServiceAccountIssuer + " and signed by the dedicated key")
}

type jwtHeader struct {
	Alg string `json:"alg"`
}

type jwtClaims struct {
	Issuer string `json:"iss"`
}

// splitJWT decodes a compact JWS without trusting it.
func splitJWT(token string) (h jwtHeader, c jwtClaims, input string, sig []byte, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, c, "", nil, errors.New("not a JWT")
	}
	dec := base64.RawURLEncoding
	hb, err1 := dec.DecodeString(parts[0])
	cb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, c, "", nil, fmt.Errorf("JWT encoding: %w", err)
	}
	if err := errors.Join(json.Unmarshal(hb, &h), json.Unmarshal(cb, &c)); err != nil {
		return h, c, "", nil, fmt.Errorf("JWT JSON: %w", err)
	}
	return h, c, parts[0] + "." + parts[1], sig, nil
}

// verifyJWT checks an RS256 or ES256 signature against any public key in
// the PEM data (public keys or certificates).
func verifyJWT(alg, input string, sig, pemData []byte) error {
	keys := publicKeys(pemData)
	if len(keys) == 0 {
		return errors.New("no public key in the key file")
	}
	sum := sha256.Sum256([]byte(input))
	for _, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" && rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if alg == "ES256" && len(sig) == 64 &&
				ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				return nil
			}
		}
	}
	return fmt.Errorf("%s signature matches none of %d key(s)", alg, len(keys))
}

func publicKeys(data []byte) []crypto.PublicKey {
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		switch b.Type {
		case "PUBLIC KEY":
			if k, err := x509.ParsePKIXPublicKey(b.Bytes); err == nil {
				out = append(out, k)
			}
		case "RSA PUBLIC KEY":
			if k, err := x509.ParsePKCS1PublicKey(b.Bytes); err == nil {
				out = append(out, k)
			}
		case "CERTIFICATE":
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				out = append(out, c.PublicKey)
			}
		}
	}
}

// canaryName is a unique, recognisable name for an object a check
// creates (and deletes).
func canaryName(what string) string {
	return "secprov-verify-" + what + "-" + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
