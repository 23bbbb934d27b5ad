package kms

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"k8s.io/kms/pkg/service"
)

// APIVersion is the KMS plugin API version the plugin speaks.
const APIVersion = "v2"

// healthy is the only Healthz value the apiserver accepts as healthy.
const healthy = "ok"

// Plugin implements the KMS v2 service.Service with one Vault transit key.
// It is safe for concurrent use.
type Plugin struct {
	tok     *token
	addr    string
	mount   string
	key     string
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	version int  // newest key version seen; 0 before the first answer
	ok      bool // health at the last Status
	checked bool // whether Status ran yet
}

var _ service.Service = (*Plugin)(nil)

// New returns a plugin for o's transit key, reading the token file once.
// It does not contact Vault: an unreachable Vault shows in Status.
func New(ctx context.Context, o Options) (*Plugin, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.checkVault(); err != nil {
		return nil, err
	}
	if _, err := readTokenFile(o.Vault.TokenFile); err != nil {
		return nil, fmt.Errorf("vault %s: %w", o.Vault.Address, err)
	}
	c, err := o.Vault.Client(ctx)
	if err != nil {
		return nil, err
	}
	return &Plugin{
		tok:     &token{c: c, file: o.Vault.TokenFile, addr: o.Vault.Address, log: o.Log},
		addr:    o.Vault.Address,
		mount:   o.Mount,
		key:     o.Key,
		timeout: o.Timeout,
		log:     o.Log,
	}, nil
}

// Encrypt wraps data (the apiserver's DEK or seed) with the transit key.
// The key ID names the key version Vault actually used.
func (p *Plugin) Encrypt(ctx context.Context, uid string, data []byte) (*service.EncryptResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	path := p.mount + "/encrypt/" + p.key
	var s *api.Secret
	err := p.tok.do(func(c *api.Client) error {
		var err error
		s, err = c.Logical().WriteWithContext(ctx, path, map[string]any{
			"plaintext": base64.StdEncoding.EncodeToString(data),
		})
		return err
	})
	if err != nil {
		err = p.vaultErr("encrypt with transit key "+p.mount+"/"+p.key, err)
		p.log.Warn("encrypt failed", "uid", uid, "err", err)
		return nil, err
	}
	var ct string
	if s != nil {
		ct, _ = s.Data["ciphertext"].(string)
	}
	v, err := ciphertextVersion(ct)
	if err != nil {
		return nil, fmt.Errorf("vault %s: encrypt with transit key %s/%s: unexpected answer: %w", p.addr, p.mount, p.key, err)
	}
	p.sawVersion(v)
	return &service.EncryptResponse{Ciphertext: []byte(ct), KeyID: KeyID(p.mount, p.key, v)}, nil
}

// Decrypt unwraps a ciphertext made by Encrypt. The ciphertext names its
// key version, so data written before a rotation still decrypts.
func (p *Plugin) Decrypt(ctx context.Context, uid string, req *service.DecryptRequest) ([]byte, error) {
	if req.KeyID != "" {
		mount, key, _, err := ParseKeyID(req.KeyID)
		if err != nil {
			return nil, fmt.Errorf("decrypt: the data's key ID was not made by this plugin (it serves transit key %s/%s): %w", p.mount, p.key, err)
		}
		if mount != p.mount || key != p.key {
			return nil, fmt.Errorf("decrypt: the data was encrypted with %s, but this plugin serves transit key %s/%s", req.KeyID, p.mount, p.key)
		}
	}
	if _, err := ciphertextVersion(string(req.Ciphertext)); err != nil {
		return nil, fmt.Errorf("decrypt with transit key %s/%s: %w", p.mount, p.key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	path := p.mount + "/decrypt/" + p.key
	var s *api.Secret
	err := p.tok.do(func(c *api.Client) error {
		var err error
		s, err = c.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": string(req.Ciphertext)})
		return err
	})
	if err != nil {
		err = p.vaultErr("decrypt with transit key "+p.mount+"/"+p.key, err)
		p.log.Warn("decrypt failed", "uid", uid, "keyID", req.KeyID, "err", err)
		return nil, err
	}
	var b64 string
	if s != nil {
		b64, _ = s.Data["plaintext"].(string)
	}
	pt, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || b64 == "" {
		return nil, fmt.Errorf("vault %s: decrypt with transit key %s/%s: answer has no plaintext", p.addr, p.mount, p.key)
	}
	return pt, nil
}

// Status reads the transit key from Vault on every call, so a rotation
// shows in the key ID at once. Healthz is "ok" only when Vault answered
// and the key can encrypt; otherwise it says what is wrong.
func (p *Plugin) Status(ctx context.Context) (*service.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, err := p.latestVersion(ctx)
	if err == nil {
		p.sawVersion(v)
	}
	p.sawHealth(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	res := &service.StatusResponse{Version: APIVersion, Healthz: healthy}
	if p.version > 0 {
		// When Vault is away, the last version seen is still the best
		// statement of the current write key.
		res.KeyID = KeyID(p.mount, p.key, p.version)
	}
	if err != nil {
		res.Healthz = err.Error()
	}
	return res, nil
}

// latestVersion reads the transit key's newest version, the one encrypt
// uses.
func (p *Plugin) latestVersion(ctx context.Context) (int, error) {
	path := p.mount + "/keys/" + p.key
	var s *api.Secret
	err := p.tok.do(func(c *api.Client) error {
		var err error
		s, err = c.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return 0, p.vaultErr("read transit key "+p.mount+"/"+p.key, err)
	}
	if s == nil {
		return 0, fmt.Errorf("vault %s: transit key %s/%s does not exist (secprov up creates it; check --transit-mount and --transit-key)", p.addr, p.mount, p.key)
	}
	if enc, _ := s.Data["supports_encryption"].(bool); !enc {
		return 0, fmt.Errorf("vault %s: transit key %s/%s cannot encrypt (type %v)", p.addr, p.mount, p.key, s.Data["type"])
	}
	n, _ := s.Data["latest_version"].(json.Number)
	v, err := n.Int64()
	if err != nil || v < 1 {
		return 0, fmt.Errorf("vault %s: transit key %s/%s: no latest_version in Vault's answer", p.addr, p.mount, p.key)
	}
	return int(v), nil
}

// sawVersion records the newest key version and logs rotations.
func (p *Plugin) sawVersion(v int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v <= p.version {
		return
	}
	if p.version > 0 {
		p.log.Info("transit key rotated: new data keys are encrypted with the new version", "from", KeyID(p.mount, p.key, p.version), "to", KeyID(p.mount, p.key, v))
	}
	p.version = v
}

// sawHealth logs changes of health, not every poll.
func (p *Plugin) sawHealth(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok := err == nil
	if p.checked && ok == p.ok {
		return
	}
	first := !p.checked
	p.checked, p.ok = true, ok
	switch {
	case ok && first:
		p.log.Info("Vault transit key is usable", "vault", p.addr, "keyID", KeyID(p.mount, p.key, p.version))
	case ok:
		p.log.Info("healthy again: Vault transit key is usable", "vault", p.addr, "keyID", KeyID(p.mount, p.key, p.version))
	default:
		p.log.Warn("unhealthy: cannot use the Vault transit key", "vault", p.addr, "err", err)
	}
}

// vaultErr says which Vault and what failed, and for a refusal, what to
// check. Vault's answer is folded onto one line: it ends up in the
// apiserver's healthz output.
func (p *Plugin) vaultErr(what string, err error) error {
	err = compact(err)
	if isStatus(err, http.StatusForbidden) {
		return fmt.Errorf("vault %s: %s: permission denied: the plugin's token may not use this key (check that --transit-mount and --transit-key name this cluster's key and the token file holds this cluster's KMS token): %w", p.addr, what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vault %s: %s: no answer within %s: %w", p.addr, what, p.timeout, err)
	}
	return fmt.Errorf("vault %s: %s: %w", p.addr, what, err)
}

// responseError is Vault's error answer on one line, without the URL
// (vaultErr names Vault and the key).
type responseError struct{ re *api.ResponseError }

func (e responseError) Error() string {
	var msgs []string
	for _, m := range e.re.Errors {
		for line := range strings.Lines(m) {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line != "" && !strings.HasSuffix(line, "occurred:") {
				msgs = append(msgs, strings.TrimSpace(line))
			}
		}
	}
	return fmt.Sprintf("HTTP %d: %s", e.re.StatusCode, strings.Join(msgs, "; "))
}

func (e responseError) Unwrap() error { return e.re }

// compact replaces Vault's multi-line error answers with responseError.
func compact(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return responseError{re}
	}
	return err
}
