package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening"
)

// auditChecks prove that the API server really writes an audit log, never
// with secret payloads, and keeps it long enough (SP-AUDIT-001..002).
func auditChecks() []Check {
	return []Check{
		{ID: blueprints.AuditLogging, Exclusive: true, Run: checkAuditLog, Needs: needs(API, Processes, Files)},
		{ID: blueprints.AuditRetention, Run: checkAuditRetention, Needs: needs(Processes)},
	}
}

// AuditWait bounds how long SP-AUDIT-001 waits for its canary event.
const AuditWait = 5 * time.Second

// RangeReader is implemented by targets that can read a file from an
// offset; SP-AUDIT-001 then reads only what its canary appended instead of
// the whole (up to --audit-log-maxsize) log on every poll. It is a faster
// ReadFile, so it belongs to the Files capability, not a capability of its
// own: without it the check reads the whole file and proves the same.
type RangeReader interface {
	ReadFileFrom(ctx context.Context, path string, offset int64) ([]byte, error)
}

func readFrom(ctx context.Context, t Target, path string, off int64) ([]byte, error) {
	if rr, ok := t.(RangeReader); ok {
		return rr.ReadFileFrom(ctx, path, off)
	}
	data, err := t.ReadFile(ctx, path)
	if err != nil || off > int64(len(data)) {
		return data, err
	}
	return data[off:], nil
}

type auditEvent struct {
	Verb      string `json:"verb"`
	Stage     string `json:"stage"`
	ObjectRef *struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`
}

// checkAuditLog creates a secret canary with a random value and waits for
// its create event in the log the API server's --audit-log-path names.
// Every event written meanwhile is searched for the value (raw and
// base64, as a Secret's data is serialised), and no secret event may carry
// a request or response body.
func checkAuditLog(ctx context.Context, t Target) Outcome {
	var r findings
	comps, _ := flagCheck(ctx, t, blueprints.AuditLogging, []string{APIServer}, &r)
	c := comps[APIServer]
	if c == nil {
		return r.outcome("")
	}
	if policy := Args(c.Args)["audit-policy-file"]; policy != "" {
		judgeRendered(ctx, t, &r, policy, hardening.AuditPolicy)
	}
	path := Args(c.Args)["audit-log-path"]
	if path == "" || path == "-" {
		return r.outcome("") // the flag comparison has failed already
	}
	var start int64
	switch fi, err := t.Stat(ctx, path); {
	case err == nil:
		start = fi.Size()
	case !errors.Is(err, fs.ErrNotExist):
		r.errorf("stat %s: %v", path, err)
		return r.outcome("")
	}
	cs, err := t.Client()
	if err != nil {
		r.errorf("admin client: %v", err)
		return r.outcome("")
	}
	const ns = "default"
	name := canaryName("audit")
	value := []byte("secprov-canary-" + randomHex(16))
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{hardening.ManagedByLabel: "secprov-verify"}},
		Data:       map[string][]byte{"canary": value},
	}, metav1.CreateOptions{})
	if err != nil {
		r.errorf("create canary secret %s/%s: %v", ns, name, err)
		return r.outcome("")
	}
	defer deleteSecret(ctx, cs, ns, name)

	leaks := [][]byte{value, []byte(base64.StdEncoding.EncodeToString(value))}
	deadline := time.Now().Add(AuditWait)
	found := false
	var scanned int
	for !found {
		data, err := readFrom(ctx, t, path, start)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.errorf("read %s: %v", path, err)
			return r.outcome("")
		}
		found, scanned = scanAudit(data, ns, name, leaks, path, &r)
		if found || time.Now().After(deadline) {
			break
		}
		// Rotation moves the old file aside; read the new one from its start.
		if fi, err := t.Stat(ctx, path); err == nil && fi.Size() < start {
			start = 0
		}
		select {
		case <-ctx.Done():
			r.errorf("waiting for the audit event: %v", ctx.Err())
			return r.outcome("")
		case <-time.After(50 * time.Millisecond):
		}
	}
	ev := Evidence{Object: path, Field: "create secrets/" + ns + "/" + name, Want: fmt.Sprintf("an audit event within %v", AuditWait)}
	if found {
		ev.Got = "logged"
		r.ok(ev)
	} else {
		ev.Got = fmt.Sprintf("not logged (%d new events read)", scanned)
		r.fail(ev, "a secret creation does not appear in the audit log")
	}
	return r.outcome("a canary request is logged within seconds, without the secret's value")
}

// scanAudit reads audit events (one JSON object per line) and reports
// whether the canary's create event is among them; leaks are recorded as
// failures.
func scanAudit(data []byte, ns, name string, leaks [][]byte, path string, r *findings) (found bool, events int) {
	leaked := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		events++
		for _, l := range leaks {
			if !leaked && bytes.Contains(line, l) {
				leaked = true
				r.fail(Evidence{Object: path, Field: "secret payload", Want: "never logged", Got: "the canary secret's value is in the log"},
					"the audit log contains a secret's value")
			}
		}
		var e auditEvent
		if json.Unmarshal(line, &e) != nil || e.ObjectRef == nil {
			continue
		}
		if e.ObjectRef.Resource == "secrets" && (len(e.RequestObject) > 0 || len(e.ResponseObject) > 0) && !leaked {
			leaked = true
			r.fail(Evidence{Object: path, Field: "secret events", Want: "Metadata level (no bodies)", Got: "request or response body logged"},
				"the audit policy logs secret bodies")
		}
		if e.Verb == "create" && e.ObjectRef.Resource == "secrets" && e.ObjectRef.Namespace == ns && e.ObjectRef.Name == name {
			found = true
		}
	}
	return found, events
}

// checkAuditRetention: maxage, maxbackup and maxsize are at least the
// catalog's minimums (30 days, 10 files, 100 MB) and at least what the
// blueprint asks for.
func checkAuditRetention(ctx context.Context, t Target) Outcome {
	c, err := t.Component(ctx, APIServer)
	if err != nil {
		return Errorf("read kube-apiserver's arguments: %v", err)
	}
	if p := Args(c.Args)["audit-log-path"]; p == "" || p == "-" {
		return Skip(fmt.Sprintf("audit logging to a file is off (no --audit-log-path); %s reports it", blueprints.AuditLogging))
	}
	var r findings
	flagCheck(ctx, t, blueprints.AuditRetention, []string{APIServer}, &r)
	return r.outcome("audit log retention meets the minimums and the blueprint")
}
