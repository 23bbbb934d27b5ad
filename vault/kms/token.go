package kms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// token keeps the plugin's Vault token usable: it switches to the token
// in the token file when Vault refuses the one in use (secprov rotates the
// token by rewriting the file), and renews the token before it expires.
type token struct {
	c    *api.Client
	file string
	addr string
	log  *slog.Logger

	mu sync.Mutex // one reload at a time
}

// readTokenFile returns the token in path. The file must be private: a
// token other users can read is a token other users have.
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o: it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// do runs call, and if Vault answers 403 and the token file now holds a
// different token, switches to it and runs call once more.
func (t *token) do(call func(*api.Client) error) error {
	used := t.c.Token()
	err := call(t.c)
	if !isStatus(err, http.StatusForbidden) {
		return err
	}
	switched, rerr := t.reload(used)
	if rerr != nil {
		return fmt.Errorf("%w (re-reading the token file failed too: %v)", err, rerr)
	}
	if !switched {
		return err
	}
	return call(t.c)
}

// reload reads the token file and reports whether it holds a token other
// than used, making that the token in use.
func (t *token) reload(used string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok, err := readTokenFile(t.file)
	if err != nil {
		return false, err
	}
	if tok == used {
		return false, nil
	}
	// Concurrent requests that failed together reload once: the first
	// switches, the others find the new token already in use.
	if tok != t.c.Token() {
		t.c.SetToken(tok)
		t.log.Info("Vault refused the token; switched to the new token in the token file", "vault", t.addr, "tokenFile", t.file)
	}
	return true, nil
}

// Renewal timing: renew after a third of the TTL, so two failed attempts
// still leave time before the token expires; retry failures with a
// backoff that never waits longer than maxRetry.
const (
	renewFraction = 3
	minRenewWait  = time.Second
	maxRetry      = 30 * time.Second
)

// keepAlive renews the token until ctx ends. It returns early only for a
// token that never expires.
func (t *token) keepAlive(ctx context.Context) {
	failures := 0
	for {
		wait, err := t.renew(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			failures++
			wait = min(minRenewWait<<min(failures-1, 5), maxRetry)
			t.log.Warn("Vault token renewal failed; retrying", "vault", t.addr, "retryIn", wait.String(), "err", err)
		case wait == 0:
			t.log.Info("Vault token never expires; not renewing it", "vault", t.addr)
			return
		default:
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// renew renews the token once and returns when to renew it next (zero for
// a token that never expires).
func (t *token) renew(ctx context.Context) (time.Duration, error) {
	var s *api.Secret
	err := t.do(func(c *api.Client) error {
		var err error
		s, err = c.Auth().Token().RenewSelfWithContext(ctx, 0)
		return err
	})
	switch {
	case isStatus(err, http.StatusBadRequest) && strings.Contains(err.Error(), "not renewable"):
		return t.notRenewable(ctx)
	case isStatus(err, http.StatusForbidden):
		return 0, fmt.Errorf("vault %s refused renew-self: the token's policies must allow update on auth/token/renew-self (Vault's default policy does): %w", t.addr, compact(err))
	case err != nil:
		return 0, fmt.Errorf("vault %s: renew token: %w", t.addr, compact(err))
	case s == nil || s.Auth == nil:
		return 0, fmt.Errorf("vault %s: renew token: empty answer", t.addr)
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	t.log.Debug("renewed the Vault token", "vault", t.addr, "ttl", ttl.String())
	return max(ttl/renewFraction, minRenewWait), nil
}

// notRenewable handles a token Vault will not renew: a root or other
// non-expiring token needs nothing; an expiring one is logged so someone
// replaces the token file before it runs out.
func (t *token) notRenewable(ctx context.Context) (time.Duration, error) {
	var s *api.Secret
	err := t.do(func(c *api.Client) error {
		var err error
		s, err = c.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("vault %s: the token is not renewable and looking it up failed: %w", t.addr, compact(err))
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return 0, fmt.Errorf("vault %s: token lookup: %w", t.addr, err)
	}
	if ttl == 0 {
		return 0, nil
	}
	t.log.Warn("Vault token is not renewable; replace the token file before it expires", "vault", t.addr, "tokenFile", t.file, "expiresIn", ttl.String())
	return max(ttl/renewFraction, minRenewWait), nil
}

// isStatus reports whether err is a Vault answer with HTTP status code.
func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}
