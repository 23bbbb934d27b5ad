package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/atomicfile"
)

// MaxEnvelopeBytes bounds what ParseEnvelope reads: a verify report with
// every check's evidence is tens of KiB.
const MaxEnvelopeBytes = 8 << 20

// Sign signs a statement into a DSSE envelope and returns its JSON.
func Sign(ctx context.Context, s Signer, in Input) ([]byte, error) {
	st, err := Statement(in)
	if err != nil {
		return nil, err
	}
	payload, err := MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	es, err := dsse.NewEnvelopeSigner(s)
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign evidence: %w", err)
	}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseEnvelope decodes a DSSE envelope strictly: one JSON object with
// a payloadType, a base64 payload and at least one signature, nothing
// after it. It never panics on any input.
func ParseEnvelope(b []byte) (*dsse.Envelope, error) {
	if len(b) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("envelope is %d bytes, more than the %d an evidence file can be", len(b), MaxEnvelopeBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("envelope is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var env dsse.Envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("envelope is not DSSE JSON (truncated or another file?): %w", err)
	}
	if dec.More() {
		return nil, errors.New("envelope has data after its JSON object")
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("envelope payloadType is %q, want %q", env.PayloadType, PayloadType)
	}
	if env.Payload == "" {
		return nil, errors.New("envelope has no payload")
	}
	if _, err := base64.StdEncoding.DecodeString(env.Payload); err != nil {
		return nil, fmt.Errorf("envelope payload is not base64: %w", err)
	}
	if len(env.Signatures) == 0 {
		return nil, errors.New("envelope has no signature: unsigned evidence proves nothing")
	}
	for i, s := range env.Signatures {
		if _, err := base64.StdEncoding.DecodeString(s.Sig); err != nil || s.Sig == "" {
			return nil, fmt.Errorf("signature %d (keyid %q) is not base64", i, s.KeyID)
		}
	}
	return &env, nil
}

// VerifyOptions are what an envelope is checked against.
type VerifyOptions struct {
	// Keys that may have signed it; the one that did must belong to the
	// environment the statement claims.
	Keys []PublicKey
	// BlueprintsDir, when set, holds the blueprint files the statement
	// names; each must match its subject byte for byte.
	BlueprintsDir string
	// BlueprintsRev, with BlueprintsDir, reads the files as they are at
	// this git revision of the repository holding the directory instead
	// of from the working tree.
	BlueprintsRev string
	// Now judges whether exceptions have expired since the run.
	Now time.Time
}

// Verified is what a verified envelope says.
type Verified struct {
	*Claims
	KeyID             string
	KeySource         string
	KeyEnvironment    string // empty: the key file names none
	BlueprintsChecked bool
	// ExpiredSince are exceptions in force during the run that have
	// expired by opts.Now.
	ExpiredSince []Exception
}

// VerifyError says which part of the evidence failed.
type VerifyError struct {
	Part string // "signature", "subject blueprint:prod.yaml", "key", …
	Err  error
}

func (e *VerifyError) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func fail(part string, format string, args ...any) error {
	return &VerifyError{Part: part, Err: fmt.Errorf(format, args...)}
}

// Verify checks an envelope: the signature with the dsse library's
// verifier and the given keys, the key's environment against the
// statement's, the statement's own consistency, the blueprint files on
// disk against the subjects, and the exceptions against opts.Now. All
// problems are returned together; Verified is nil unless the signature
// holds.
func Verify(ctx context.Context, envJSON []byte, opts VerifyOptions) (*Verified, error) {
	env, err := ParseEnvelope(envJSON)
	if err != nil {
		return nil, &VerifyError{Part: "envelope", Err: err}
	}
	if len(opts.Keys) == 0 {
		return nil, fail("signature", "no verification key: pass --key PEM or --vault")
	}
	vs := make([]dsse.Verifier, len(opts.Keys))
	for i, k := range opts.Keys {
		vs[i] = verifier{k}
	}
	ev, err := dsse.NewEnvelopeVerifier(vs...)
	if err != nil {
		return nil, err
	}
	accepted, payload, err := ev.VerifyAndDecode(ctx, env)
	if err != nil || len(accepted) == 0 {
		ids := make([]string, len(env.Signatures))
		for i, s := range env.Signatures {
			ids[i] = s.KeyID
		}
		have := make([]string, len(opts.Keys))
		for i, k := range opts.Keys {
			have[i] = k.KeyID
		}
		return nil, fail("signature", "no signature (keyid %s) verifies with the given keys (%s): the envelope was altered or signed by another key",
			strings.Join(ids, ", "), strings.Join(have, ", "))
	}
	claims, err := ParseStatement(payload)
	if err != nil {
		return nil, &VerifyError{Part: "statement", Err: err}
	}
	key := keyOf(opts.Keys, accepted[0].KeyID)
	v := &Verified{Claims: claims, KeyID: key.KeyID, KeySource: key.Source, KeyEnvironment: key.Environment}
	var errs []error
	switch {
	case key.Environment == "":
		errs = append(errs, fail("key", "%s names no environment, so it cannot show the evidence is %s's: export keys with secprov evidence keys -o pem", key.Source, claims.Environment))
	case key.Environment != claims.Environment:
		errs = append(errs, fail("key", "statement claims environment %s but was signed with %s's key %s", claims.Environment, key.Environment, key.KeyID))
	}
	if err := claims.ConsistentLists(); err != nil {
		errs = append(errs, &VerifyError{Part: "predicate", Err: err})
	}
	if opts.BlueprintsDir != "" {
		v.BlueprintsChecked = true
		errs = append(errs, checkBlueprints(claims, opts.BlueprintsDir, opts.BlueprintsRev)...)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	for _, x := range claims.Exceptions {
		if blueprints.ExceptionExpired(x.Expires, now) {
			v.ExpiredSince = append(v.ExpiredSince, x)
			errs = append(errs, fail("exception "+x.Control, "expired on %s, after the run (%s): the failure it excused as a warning no longer stands; renew it in the blueprint or fix the control, then verify again",
				x.Expires, claims.Time.UTC().Format(time.DateOnly)))
		}
	}
	return v, errors.Join(errs...)
}

func keyOf(keys []PublicKey, id string) PublicKey {
	for _, k := range keys {
		if k.KeyID == id {
			return k
		}
	}
	return PublicKey{KeyID: id, Source: "unknown"}
}

// readBlueprint reads a blueprint file of dir, from the working tree or
// (rev set) from that git revision of the repository dir is in.
func readBlueprint(dir, rev, name string) ([]byte, string, error) {
	p := filepath.Join(dir, name)
	if rev == "" {
		b, err := os.ReadFile(p)
		return b, p, err
	}
	at := rev + ":./" + name // ./: relative to dir, not the repository's root
	out, err := exec.Command("git", "-C", dir, "show", at).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("git show %s: %s", at, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, p + "@" + rev, err
	}
	return out, p + "@" + rev, nil
}

// checkBlueprints compares the blueprint files in dir (at git revision rev
// when set) with the subjects, and the spec they load to with the spec
// subject.
func checkBlueprints(c *Claims, dir, rev string) []error {
	var errs []error
	names := make([]string, 0, len(c.Blueprints))
	for n := range c.Blueprints {
		names = append(names, n)
	}
	slices.Sort(names)
	var bps []*blueprints.Blueprint
	for _, n := range names {
		if n != filepath.Base(n) || n == ".." || n == "." {
			errs = append(errs, fail("subject "+SubjectBlueprint+n, "is not a plain file name"))
			continue
		}
		b, p, err := readBlueprint(dir, rev, n)
		if err != nil {
			errs = append(errs, fail("subject "+SubjectBlueprint+n, "%v", err))
			continue
		}
		if got := SHA256(b); got != c.Blueprints[n] {
			errs = append(errs, fail("subject "+SubjectBlueprint+n, "%s has sha256 %s, the evidence names %s: the blueprint changed since the run", p, got, c.Blueprints[n]))
			continue
		}
		loaded, err := blueprints.LoadBytes(p, b)
		if err != nil {
			errs = append(errs, fail("subject "+SubjectSpec+c.Cluster, "the blueprints no longer load: %v", err))
			continue
		}
		bps = append(bps, loaded...)
	}
	if len(errs) > 0 {
		return errs
	}
	for _, bp := range bps {
		if bp.Name() != c.Cluster {
			continue
		}
		d, err := SpecDigest(bp.Spec)
		if err != nil {
			return []error{err}
		}
		if d != c.SpecDigest {
			return []error{fail("subject "+SubjectSpec+c.Cluster, "the blueprints default to spec sha256 %s, the evidence names %s (another secprov version defaults differently?)", d, c.SpecDigest)}
		}
		return nil
	}
	return []error{fail("subject "+SubjectSpec+c.Cluster, "no blueprint in %s defines cluster %s", dir, c.Cluster)}
}

// WriteFile signs the statement and writes the envelope to path (0644,
// atomically). Nothing is written unless signing succeeded: a failed
// signer never leaves an unsigned or partial file under the signed name.
func WriteFile(ctx context.Context, path string, s Signer, in Input) error {
	out, err := Sign(ctx, s, in)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, out, 0o644)
}
