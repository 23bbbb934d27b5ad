package evidence

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	trv0 "github.com/in-toto/attestation/go/predicates/test_result/v0"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
	"google.golang.org/protobuf/encoding/protojson"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
)

// The run happens on runDay; the blueprint's exception expires a month
// later.
var (
	runDay      = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	exceptUntil = "2027-01-07"
)

type fixture struct {
	dir        string // holds test.yaml, with one exception
	file       BlueprintFile
	in         Input
	prod, test *PEMSigner
	keys       []PublicKey // both environments' public keys
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	src, err := os.ReadFile("../../../blueprints/examples/test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.Replace(src, []byte("  exceptions: []"), []byte(`  exceptions:
    - control: SP-AUD-001
      justification: "audit sink migration, accepted by the platform lead"
      expires: "`+exceptUntil+`"
  #`), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	bps, err := blueprints.Load(filepath.Join(dir, "test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bp := bps[0]
	rep := &verify.Report{Cluster: bp.Name(), Environment: bp.Spec.Environment, Provider: "local", Results: []verify.Result{
		{ID: "SP-API-001", Status: verify.StatusPass, Severity: blueprints.SeverityHigh, Reason: "bound to loopback", Evidence: []verify.Evidence{}},
		{ID: "SP-AUD-001", Status: verify.StatusWarn, Severity: blueprints.SeverityHigh, Reason: "excepted until " + exceptUntil, Evidence: []verify.Evidence{}},
		{ID: "SP-ENC-001", Status: verify.StatusFail, Severity: blueprints.SeverityHigh, Reason: "plaintext", Evidence: []verify.Evidence{}},
		{ID: "SP-NET-002", Status: verify.StatusSkip, Severity: blueprints.SeverityHigh, Reason: "needs nodes", Evidence: []verify.Evidence{}},
	}}
	rep.Summary = verify.Summary{Total: 4, Passed: 1, Warned: 1, Failed: 1, Skipped: 1}
	f := &fixture{dir: dir, file: BlueprintFile{Name: "test.yaml", Data: src}}
	f.in = Input{Report: rep, Blueprints: []BlueprintFile{f.file}, Spec: bp.Spec, CACertDER: testCA(t), Time: runDay, Version: "v0.0.0-test"}
	f.prod, f.test = newKey(t), newKey(t)
	f.keys = []PublicKey{f.prod.Public("prod", "prod.pem"), f.test.Public("test", "test.pem")}
	return f
}

func newKey(t testing.TB) *PEMSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewPEMSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testCA(t testing.TB) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop-test-ca"},
		NotBefore: runDay, NotAfter: runDay.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (f *fixture) sign(t *testing.T, s Signer, in Input) []byte {
	t.Helper()
	out, err := Sign(context.Background(), s, in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mutate decodes an envelope, lets fn change it and encodes it again.
func mutate(t *testing.T, envJSON []byte, fn func(e *dsse.Envelope)) []byte {
	t.Helper()
	var e dsse.Envelope
	if err := json.Unmarshal(envJSON, &e); err != nil {
		t.Fatal(err)
	}
	fn(&e)
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyAcceptsWhatSignMakes(t *testing.T) {
	f := newFixture(t)
	env := f.sign(t, f.test, f.in)
	v, err := Verify(context.Background(), env, VerifyOptions{Keys: f.keys, BlueprintsDir: f.dir, Now: runDay.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Cluster != "shop-test" || v.Environment != "test" || v.KeyEnvironment != "test" || !v.BlueprintsChecked {
		t.Errorf("verified %+v", v)
	}
	if !v.Time.Equal(runDay) || v.Result != "FAILED" || len(v.Passed) != 1 || len(v.Warned) != 1 || len(v.Failed) != 1 {
		t.Errorf("claims: time %v result %s passed %v warned %v failed %v", v.Time, v.Result, v.Passed, v.Warned, v.Failed)
	}
	if len(v.Exceptions) != 1 || v.Exceptions[0].Control != "SP-AUD-001" || v.Exceptions[0].Expires != exceptUntil {
		t.Errorf("exceptions %+v", v.Exceptions)
	}
	if v.CatalogDigest != CatalogDigest() || v.Version != "v0.0.0-test" {
		t.Errorf("configuration: catalog %s version %s", v.CatalogDigest, v.Version)
	}
	if v.Report.Summary.Failed != 1 || len(v.Report.Results) != 4 {
		t.Errorf("embedded report %+v", v.Report.Summary)
	}
}

// TestIndependentDSSEVerifier checks the envelope with the dsse library's
// own ECDSA verifier and the exported PEM, none of secprov's verifying
// code: any DSSE implementation given the public key accepts it.
func TestIndependentDSSEVerifier(t *testing.T) {
	f := newFixture(t)
	env := f.sign(t, f.test, f.in)
	pemText, err := EncodePublicKeys([]PublicKey{f.test.Public("test", "test.pem")})
	if err != nil {
		t.Fatal(err)
	}
	keyID, _ := f.test.KeyID()
	sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(&signerverifier.SSLibKey{
		KeyID: keyID, KeyType: signerverifier.ECDSAKeyType, Scheme: signerverifier.ECDSAKeyScheme,
		KeyVal: signerverifier.KeyVal{Public: string(pemText)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	ev, err := dsse.NewEnvelopeVerifier(sv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Verify(context.Background(), &e); err != nil {
		t.Fatalf("dsse library rejects secprov's envelope: %v", err)
	}
	// And it notices tampering on its own too.
	e.Payload = base64.StdEncoding.EncodeToString(append([]byte(" "), mustB64(t, e.Payload)...))
	if _, err := ev.Verify(context.Background(), &e); err == nil {
		t.Fatal("dsse library accepted a tampered payload")
	}
}

// TestPredicateIsPlainTestResult: a generic in-toto consumer decodes the
// predicate as test-result v0.1 with unknown fields refused.
func TestPredicateIsPlainTestResult(t *testing.T) {
	f := newFixture(t)
	st, err := Statement(f.in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		t.Fatal(err)
	}
	var tr trv0.TestResult
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, &tr); err != nil {
		t.Fatalf("predicate is not strict test-result: %v", err)
	}
	if tr.GetResult() != "FAILED" || len(tr.GetConfiguration()) != 3 {
		t.Errorf("test-result %v", &tr)
	}
	var names []string
	for _, s := range st.GetSubject() {
		names = append(names, s.GetName())
	}
	if got := strings.Join(names, " "); got != "blueprint:test.yaml spec:shop-test cluster-ca:shop-test" {
		t.Errorf("subjects %s", got)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperMatrix: every way evidence can be wrong is rejected, naming
// the part that failed.
func TestTamperMatrix(t *testing.T) {
	f := newFixture(t)
	good := f.sign(t, f.test, f.in)
	ctx := context.Background()
	dayAfter := runDay.Add(24 * time.Hour)

	// A blueprint directory whose file differs by one byte.
	edited := t.TempDir()
	b := bytes.Clone(f.file.Data)
	b[len(b)-2] ^= 1 // inside the trailing comment: the spec is unchanged
	if err := os.WriteFile(filepath.Join(edited, "test.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []byte
		opts VerifyOptions
		part string // VerifyError.Part expected among the errors
		msg  string
	}{
		{"payload byte flipped", mutate(t, good, func(e *dsse.Envelope) {
			p := mustB64(t, e.Payload)
			p[len(p)/2] ^= 1
			e.Payload = base64.StdEncoding.EncodeToString(p)
		}), VerifyOptions{Keys: f.keys}, "signature", "altered or signed by another key"},
		{"signature byte flipped", mutate(t, good, func(e *dsse.Envelope) {
			s := mustB64(t, e.Signatures[0].Sig)
			s[len(s)-1] ^= 1
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(s)
		}), VerifyOptions{Keys: f.keys}, "signature", "altered"},
		{"payloadType changed", mutate(t, good, func(e *dsse.Envelope) { e.PayloadType = "application/json" }),
			VerifyOptions{Keys: f.keys}, "envelope", "payloadType"},
		{"signatures removed", mutate(t, good, func(e *dsse.Envelope) { e.Signatures = nil }),
			VerifyOptions{Keys: f.keys}, "envelope", "no signature"},
		{"keyid swapped to prod's", mutate(t, good, func(e *dsse.Envelope) { e.Signatures[0].KeyID, _ = f.prod.KeyID() }),
			VerifyOptions{Keys: f.keys}, "signature", "another key"},
		{"blueprint edited by one byte", good, VerifyOptions{Keys: f.keys, BlueprintsDir: edited}, "subject blueprint:test.yaml", "changed since the run"},
		{"blueprint missing", good, VerifyOptions{Keys: f.keys, BlueprintsDir: t.TempDir()}, "subject blueprint:test.yaml", "no such file"},
		{"signed with the other environment's key", f.sign(t, f.prod, f.in), VerifyOptions{Keys: f.keys}, "key", "statement claims environment test but was signed with prod's key"},
		{"key without environment", good, VerifyOptions{Keys: []PublicKey{{KeyID: f.keys[1].KeyID, Source: "plain.pem", Key: f.keys[1].Key}}}, "key", "names no environment"},
		{"only the other environment's key given", good, VerifyOptions{Keys: f.keys[:1]}, "signature", "no signature"},
		{"exception expired since the run", good, VerifyOptions{Keys: f.keys, Now: time.Date(2027, 1, 8, 0, 0, 0, 0, time.UTC)}, "exception SP-AUD-001", "expired on " + exceptUntil},
		{"truncated", good[:len(good)/2], VerifyOptions{Keys: f.keys}, "envelope", "truncated"},
		{"not JSON", []byte("apiVersion: v1\nkind: Secret\n"), VerifyOptions{Keys: f.keys}, "envelope", "not DSSE JSON"},
		{"empty", nil, VerifyOptions{Keys: f.keys}, "envelope", "empty"},
		{"trailing data", append(bytes.Clone(good), []byte("{}")...), VerifyOptions{Keys: f.keys}, "envelope", "after its JSON"},
		{"no keys", good, VerifyOptions{}, "signature", "no verification key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Now.IsZero() {
				c.opts.Now = dayAfter
			}
			_, err := Verify(ctx, c.env, c.opts)
			if err == nil {
				t.Fatal("accepted")
			}
			var ve *VerifyError
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &ve) && ve.Part == c.part {
					found = true
				}
			}
			if !found || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q; want part %q saying %q", err, c.part, c.msg)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestReportAndListsMustAgree: a statement whose embedded report
// disagrees with its test-result lists is refused even when signed.
func TestReportAndListsMustAgree(t *testing.T) {
	f := newFixture(t)
	st, err := Statement(f.in)
	if err != nil {
		t.Fatal(err)
	}
	// Move the failed check to passed in the predicate only.
	m := st.GetPredicate().AsMap()
	m["failedTests"] = []any{}
	m["passedTests"] = []any{"SP-API-001", "SP-ENC-001"}
	pb, _ := json.Marshal(m)
	if err := protojson.Unmarshal(pb, st.Predicate); err != nil {
		t.Fatal(err)
	}
	payload, _ := MarshalStatement(st)
	es, _ := dsse.NewEnvelopeSigner(f.test)
	e, err := es.SignPayload(context.Background(), PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(e)
	_, err = Verify(context.Background(), env, VerifyOptions{Keys: f.keys, Now: runDay})
	if err == nil || !strings.Contains(err.Error(), "predicate: check SP-ENC-001 is \"fail\" in the report but \"passed\" in the predicate") {
		t.Fatalf("got %v", err)
	}
}

func TestStatementRefusesIncompleteInput(t *testing.T) {
	f := newFixture(t)
	noCA := f.in
	noCA.CACertDER = nil
	noBP := f.in
	noBP.Blueprints = nil
	dup := f.in
	dup.Blueprints = []BlueprintFile{f.file, {Name: "other/test.yaml", Data: []byte("x")}}
	for name, in := range map[string]Input{"no CA": noCA, "no blueprints": noBP, "duplicate names": dup} {
		if _, err := Statement(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPublicKeysRoundTrip(t *testing.T) {
	f := newFixture(t)
	b, err := EncodePublicKeys(f.keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePublicKeys(b, "keys.pem")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Environment != "prod" || got[1].KeyID != f.keys[1].KeyID {
		t.Fatalf("%+v", got)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParsePublicKeys([]byte(bad), "bad.pem"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseTransitSignature(t *testing.T) {
	v, sig, err := parseTransitSignature("vault:v3:" + base64.StdEncoding.EncodeToString([]byte("sig")))
	if err != nil || v != 3 || string(sig) != "sig" {
		t.Fatalf("%d %q %v", v, sig, err)
	}
	for _, bad := range []string{"", "vault:v0:AA==", "vault:vx:AA==", "other:v1:AA==", "vault:v1:!!"} {
		if _, _, err := parseTransitSignature(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	fx := newFixture(f)
	good, _ := Sign(context.Background(), fx.test, fx.in)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"x","sig":"AA=="}]}`))
	f.Add([]byte(`{"payload":null,"signatures":[null]}`))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(b)
		if err == nil && (env == nil || len(env.Signatures) == 0) {
			t.Fatal("accepted an envelope without signatures")
		}
		// The whole verification path must not panic either.
		_, _ = Verify(context.Background(), b, VerifyOptions{Keys: fx.keys, Now: runDay})
		if err == nil {
			if payload, derr := base64.StdEncoding.DecodeString(env.Payload); derr == nil {
				_, _ = ParseStatement(payload)
			}
		}
	})
}

// TestBlueprintsAtGitRevision: the blueprints can be checked as they are
// at a git revision, whatever the working tree holds since.
func TestBlueprintsAtGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	f := newFixture(t)
	env := f.sign(t, f.test, f.in)
	git := func(args ...string) {
		t.Helper()
		c := exec.Command("git", append([]string{"-C", f.dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", "test.yaml")
	git("commit", "-q", "-m", "the blueprint of the run")
	git("tag", "run")
	p := filepath.Join(f.dir, "test.yaml")
	if err := os.WriteFile(p, append(bytes.Clone(f.file.Data), []byte("# edited later\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "a later edit")
	opts := VerifyOptions{Keys: f.keys, Now: runDay, BlueprintsDir: f.dir}
	if _, err := Verify(context.Background(), env, opts); err == nil || !strings.Contains(err.Error(), "changed since the run") {
		t.Errorf("the edited working tree: %v", err)
	}
	opts.BlueprintsRev = "run"
	if _, err := Verify(context.Background(), env, opts); err != nil {
		t.Errorf("at the run's tag: %v", err)
	}
	opts.BlueprintsRev = "HEAD"
	if _, err := Verify(context.Background(), env, opts); err == nil || !strings.Contains(err.Error(), "changed since the run") {
		t.Errorf("at HEAD (edited): %v", err)
	}
	opts.BlueprintsRev = "no-such-rev"
	if _, err := Verify(context.Background(), env, opts); err == nil || !strings.Contains(err.Error(), "git show no-such-rev:./test.yaml") {
		t.Errorf("an unknown revision: %v", err)
	}
}
