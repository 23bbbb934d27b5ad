package vault

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"
)

var (
	// ErrPermissionDenied: Vault answered 403 for an object secprov manages.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnreachable: Vault did not answer (not running, wrong address,
	// network).
	ErrUnreachable = errors.New("unreachable")
)

// SetupPolicyHint is what a 403 error tells the user to do.
const SetupPolicyHint = "the token needs the secprov setup policy (see vault/README.md)"

// opError is one failed Vault operation: a message a person can act on,
// and the causes for errors.Is/As (a sentinel and the client's error).
type opError struct {
	msg    string
	causes []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.causes }

// fail describes a failed operation on one Vault object: op says what
// secprov was doing ("enable transit mount"), path is the API path it
// called, need the capability that path requires. A 403 names the path and
// the capability, an unreachable Vault says what to do; neither contains
// the token (the client never puts it into errors).
func fail(addr, op, path, need string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &opError{msg: fmt.Sprintf("vault %s: %s: %v", addr, op, err), causes: []error{err}}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == 403 {
			return &opError{
				msg:    fmt.Sprintf("vault %s: %s: permission denied on %s (needs %s): %s", addr, op, path, need, SetupPolicyHint),
				causes: []error{ErrPermissionDenied, err},
			}
		}
		detail := strings.Join(re.Errors, "; ")
		if detail == "" {
			detail = "no detail"
		}
		return &opError{msg: fmt.Sprintf("vault %s: %s (%s %s): HTTP %d: %s", addr, op, re.HTTPMethod, path, re.StatusCode, detail), causes: []error{err}}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		var (
			unknownCA x509.UnknownAuthorityError
			hostErr   x509.HostnameError
			invalid   x509.CertificateInvalidError
		)
		if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
			return &opError{
				msg: fmt.Sprintf("vault %s: %s: the server's TLS certificate is not trusted (%v): set the CA bundle (%s or the access's caFile) or check spec.vault.address",
					addr, op, ue.Err, EnvCACert),
				causes: []error{err},
			}
		}
		return &opError{
			msg:    fmt.Sprintf("vault %s is unreachable (%v) while trying to %s: start it, or check spec.vault.address", addr, ue.Err, op),
			causes: []error{ErrUnreachable, err},
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return &opError{
			msg:    fmt.Sprintf("vault %s is unreachable (%v) while trying to %s: start it, or check spec.vault.address", addr, err, op),
			causes: []error{ErrUnreachable, err},
		}
	}
	return &opError{msg: fmt.Sprintf("vault %s: %s (%s): %v", addr, op, path, err), causes: []error{err}}
}

// statusCode is the HTTP status of a Vault answer, 0 if err is not one.
func statusCode(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// responseSays reports whether Vault's error messages contain s; used for
// the few "not found" answers Vault gives as 400 with a message.
func responseSays(err error, s string) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}
