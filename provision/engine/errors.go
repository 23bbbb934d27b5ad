package engine

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
)

// Error is a failed engine operation: the engine's own diagnostics,
// extracted from its event stream (or, when it failed before producing
// events, from its error output), plus what to do next. The full engine
// output is never part of the message; Unwrap gives the underlying error
// for debugging.
type Error struct {
	Op    string // "preview", "up", "destroy", ...
	Stack string
	// Diags are the engine's error diagnostics, most specific first.
	Diags []Diag
	// Hint says what to do next.
	Hint string
	err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Stack == "" {
		fmt.Fprintf(&b, "%s failed", e.Op)
	} else {
		fmt.Fprintf(&b, "%s of stack %q failed", e.Op, e.Stack)
	}
	switch len(e.Diags) {
	case 0:
	case 1:
		b.WriteString(": ")
		b.WriteString(e.Diags[0].describe())
	default:
		b.WriteString(":")
		for _, d := range e.Diags {
			b.WriteString("\n  - ")
			b.WriteString(strings.ReplaceAll(d.describe(), "\n", "\n    "))
		}
	}
	if e.Hint != "" {
		b.WriteString("\n")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.err }

// checkFailure is how the engine words a Check failure after the
// "<type> resource '<name>': " prefix.
var checkFailure = regexp.MustCompile(`(?s)^property (\S+) value .* has a problem: (.*)$`)

func (d Diag) describe() string {
	msg := d.Message
	if d.Name == "" || d.Type == "" || strings.HasPrefix(d.Type, "pulumi:") {
		return msg
	}
	// The engine repeats type and name in some messages; say them once.
	if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("%s resource '%s': ", d.Type, d.Name)); ok {
		msg = rest
	} else if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("%s resource '%s' has a problem: ", d.Type, d.Name)); ok {
		msg = rest
	}
	msg = checkFailure.ReplaceAllString(msg, "property $1: $2")
	return fmt.Sprintf("%s %q: %s", d.Type, d.Name, msg)
}

// genericDiag matches the engine's closing summary lines, which say nothing
// the specific diagnostics haven't.
var genericDiag = regexp.MustCompile(`^(update|preview|destroy|refresh) failed$|^one or more errors occurred`)

// wrap builds an *Error from a failed Automation API call. diags are the
// error diagnostics collected from the event stream (nil if there was
// none); autoErr carries the engine's stdout/stderr in its text.
func (e *Engine) wrap(op, stack string, autoErr error, diags []Diag, hint string) error {
	if autoErr == nil {
		return nil
	}
	redact := e.redactor()
	var specific []Diag
	for _, d := range diags {
		d.Message = redact(d.Message)
		if genericDiag.MatchString(d.Message) {
			continue
		}
		specific = append(specific, d)
	}
	if len(specific) == 0 {
		for _, line := range stderrErrors(autoErr.Error()) {
			specific = append(specific, Diag{Message: redact(line)})
		}
	}
	if len(specific) == 0 {
		// Nothing recognisable: the underlying error's first line (never
		// the whole output dump, which may be long and noisy).
		first, _, _ := strings.Cut(redact(autoErr.Error()), "\n")
		specific = append(specific, Diag{Message: first})
	}
	if hint == "" {
		// The whole output too: a Vault error's detail ("Code: 503 …
		// Vault is sealed") follows its "error:" line.
		hint = hintFor(op, stack, redactURL(e.cfg.Backend), specific, redact(autoErr.Error()))
	}
	return &Error{Op: op, Stack: stack, Diags: specific, Hint: hint, err: redactedError{autoErr, redact}}
}

// stderrErrors picks the "error: ..." lines out of the engine's output as
// the auto error renders it ("...\nstderr: <text>").
func stderrErrors(text string) []string {
	_, stderr, ok := strings.Cut(text, "\nstderr: ")
	if !ok {
		stderr = text
	}
	var out []string
	for _, line := range strings.Split(colors.Never.Colorize(stderr), "\n") {
		line = strings.TrimSpace(line)
		if msg, ok := strings.CutPrefix(line, "error: "); ok && !genericDiag.MatchString(msg) {
			out = append(out, msg)
		}
	}
	return out
}

// hintFor recognises the failures users can fix themselves.
// full is the engine's whole output: a Vault error's detail follows its
// "error:" line, so the Vault and backend cases look there too.
func hintFor(op, stack, backend string, diags []Diag, full string) string {
	all := ""
	for _, d := range diags {
		all += d.Message + "\n"
	}
	vaultErr := strings.Contains(all, "secrets manager") || strings.Contains(all, "hashivault") || strings.Contains(all, "keeper")
	if vaultErr {
		all += full
	}
	switch {
	case strings.Contains(all, "Vault is sealed"):
		return fmt.Sprintf("The Vault whose Transit key encrypts the state secrets of %q is sealed: unseal it (secprov up unseals its local Vault), then run again. Nothing was changed.", stack)
	case vaultErr && (strings.Contains(all, "permission denied") || strings.Contains(all, "Code: 403")):
		return fmt.Sprintf("Vault refused the token that encrypts the state secrets of %q (revoked, lapsed or without the key's policy): `secprov up` mints a new one; for a hashivault:// key you manage, set VAULT_TOKEN. Nothing was changed.", stack)
	case vaultErr && (strings.Contains(all, "connection refused") || strings.Contains(all, "no such host") || strings.Contains(all, "i/o timeout")):
		return fmt.Sprintf("The Vault that encrypts the state secrets of %q cannot be reached: start it (secprov up starts its local Vault) or check its address, then run again. Nothing was changed.", stack)
	case strings.Contains(all, "password authentication failed"), strings.Contains(all, "InvalidAccessKeyId"), strings.Contains(all, "SignatureDoesNotMatch"):
		return fmt.Sprintf("The state backend %s refused the credentials: fix the user and password in the URL (or PGPASSWORD), or the AWS credentials, then run again. Nothing was changed.", backend)
	case strings.Contains(all, "get credentials"), strings.Contains(all, "no EC2 IMDS role"):
		return fmt.Sprintf("No credentials for the state backend %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), then run again. Nothing was changed.", backend)
	case strings.Contains(all, "connection refused"), strings.Contains(all, "no such host"), strings.Contains(all, "i/o timeout"),
		strings.Contains(all, "failed to ping"):
		return fmt.Sprintf("The state backend %s cannot be reached: check that it runs and that the URL's host and port are right, then run again. Nothing was changed.", backend)
	case strings.Contains(all, "incorrect passphrase"), strings.Contains(all, "passphrase must be set"),
		strings.Contains(all, "failed to decrypt"):
		return fmt.Sprintf("The state of %q was encrypted with another passphrase: set %s to the passphrase used when the stack was created (or restore the state dir's passphrase file).", stack, EnvPassphrase)
	case strings.Contains(all, "currently locked"):
		return fmt.Sprintf("Another secprov (or pulumi) run holds the stack's lock: wait for it to finish. If it died, clear its lock with `secprov state unlock --cluster %s`.", stack)
	case strings.Contains(all, "has a problem"):
		return "A resource's inputs were rejected (the property is named above): fix the blueprint value it comes from, then run again. Nothing was changed."
	case strings.Contains(all, "no resource plugin"), strings.Contains(all, "could not find plugin"),
		strings.Contains(all, "failed to load plugin"):
		return "The engine could not start secprov's provider plugin: check that the secprov binary still exists where it ran from (the state dir's plugins/ link points at it)."
	case strings.Contains(all, "context canceled"), strings.Contains(all, "cancelled"), strings.Contains(all, "canceled"):
		return fmt.Sprintf("The %s was interrupted. Run it again: finished resources are kept and the rest is retried.", op)
	}
	switch op {
	case "up", "destroy":
		return fmt.Sprintf("Fix the cause above and run %s again: resources that succeeded are recorded in the state and only the rest is retried.", op)
	default:
		return "Fix the cause above and run again (-v shows the engine's progress)."
	}
}

// redactor hides the passphrase and the state's Vault tokens in any text
// that leaves the engine.
func (e *Engine) redactor() func(string) string {
	secrets := e.secretValues()
	backend, shown := e.cfg.Backend, redactURL(e.cfg.Backend)
	if u, err := url.Parse(backend); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && len(pw) >= 6 {
			secrets = append(secrets, pw, url.QueryEscape(pw))
		}
	}
	return func(s string) string {
		if backend != shown {
			s = strings.ReplaceAll(s, backend, shown)
		}
		for _, p := range secrets {
			if p != "" {
				s = strings.ReplaceAll(s, p, "[redacted]")
			}
		}
		return s
	}
}

// redactedError keeps an underlying error for errors.Is/As while redacting
// its text.
type redactedError struct {
	err    error
	redact func(string) string
}

func (r redactedError) Error() string { return r.redact(r.err.Error()) }
func (r redactedError) Unwrap() error { return r.err }

// redactingWriter passes whole lines to w with the passphrase redacted
// (a line is held back until its newline so the passphrase can't be split
// across writes).
type redactingWriter struct {
	w      io.Writer
	redact func(string) string
	mu     sync.Mutex
	buf    []byte
}

func (r *redactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	i := bytes.LastIndexByte(r.buf, '\n')
	if i < 0 {
		if len(r.buf) < 64<<10 {
			return len(p), nil
		}
		i = len(r.buf) - 1 // an absurdly long line: flush anyway
	}
	if _, err := io.WriteString(r.w, r.redact(string(r.buf[:i+1]))); err != nil {
		return 0, err
	}
	r.buf = append(r.buf[:0], r.buf[i+1:]...)
	return len(p), nil
}

// flush writes a last line that had no newline.
func (r *redactingWriter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) > 0 {
		_, _ = io.WriteString(r.w, r.redact(string(r.buf)))
		r.buf = r.buf[:0]
	}
}
