// Package review is secprov's static blueprint review, the check run in code
// review before any cluster exists. Every control of the catalog marked
// blueprints.ByReview has exactly one rule here, with the control's ID. Rules
// read the loaded (defaulted) blueprints; cross-blueprint rules see the whole
// set so prod and test are proven apart. Exceptions written in a blueprint
// downgrade matching findings to info; with a base revision, changes that
// weaken security are reported as SP-CHG-001.
package review

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Finding is one problem a rule found in one blueprint. Its JSON form is part
// of secprov's interface: do not rename or add JSON fields.
type Finding struct {
	Rule        blueprints.ControlID `json:"rule"`
	Severity    blueprints.Severity  `json:"severity"`
	Blueprint   string               `json:"blueprint"` // cluster name
	File        string               `json:"file"`
	Line        int                  `json:"line"`
	Column      int                  `json:"column"`
	Path        string               `json:"path"` // field path, e.g. spec.apiServer.endpoint
	Message     string               `json:"message"`
	Remediation string               `json:"remediation"`

	// Control is the control the finding is about: the rule's own, or for
	// SP-CHG-001 the control the change weakens. Exceptions match on it.
	Control blueprints.ControlID `json:"-"`
	// Exception is the blueprint's exception that downgraded the finding to
	// info; nil when none applied.
	Exception *v1alpha1.Exception `json:"-"`
}

// Excepted reports whether a valid exception downgraded the finding.
func (f *Finding) Excepted() bool { return f.Exception != nil }

// Options tune a review.
type Options struct {
	// Now decides which exceptions have expired. Zero means time.Now().
	Now time.Time
	// Base holds the blueprints at a base revision; when set, changes that
	// weaken security versus the base are reported (SP-CHG-001).
	Base *Base
}

// Review runs every rule over bps and returns the findings, sorted by file,
// line, column and rule.
func Review(bps []*blueprints.Blueprint, opts Options) []Finding {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	e := &env{now: opts.Now, base: opts.Base}
	out := &emitter{}
	for _, r := range ruleSet() {
		out.rule = r.id
		if r.one != nil {
			for _, b := range bps {
				r.one(e, b, out)
			}
		}
		if r.all != nil {
			r.all(e, bps, out)
		}
	}
	applyExceptions(e, out.hits)
	findings := make([]Finding, len(out.hits))
	for i, h := range out.hits {
		findings[i] = h.Finding
	}
	SortFindings(findings)
	return findings
}

// SortFindings orders findings by file, line, column, rule, then path and
// message so output is stable.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Message, b.Message))
	})
}

// env is what rules may read besides the blueprints.
type env struct {
	now  time.Time
	base *Base
}

// rule is the code behind one control. Exactly one of one (per blueprint)
// and all (over the whole set, for cross-blueprint rules) is set.
type rule struct {
	id  blueprints.ControlID
	one func(e *env, b *blueprints.Blueprint, out *emitter)
	all func(e *env, bps []*blueprints.Blueprint, out *emitter)
}

// ruleSet lists every rule. It is a function, not a variable, so nothing
// can change the rules behind a caller's back.
func ruleSet() []rule {
	return []rule{
		{id: blueprints.APIEndpointPrivate, one: ruleAPIEndpoint},
		{id: blueprints.APIAllowedCIDRsNarrow, one: ruleAPICIDRs},
		{id: blueprints.AuditLogging, one: ruleAuditEnabled},
		{id: blueprints.AuditRetention, one: ruleAuditRetention},
		{id: blueprints.NoWeakeningChange, all: ruleChanges},
		{id: blueprints.EncryptionAtRestOn, one: ruleEncryptionOn},
		{id: blueprints.EncryptionProviderStrong, one: ruleEncryptionStrong},
		{id: blueprints.EncryptionCoversSecrets, one: ruleEncryptionSecrets},
		{id: blueprints.ExceptionsCurrent, one: ruleExceptionExpired},
		{id: blueprints.ExceptionsExplained, one: ruleExceptionJustified},
		{id: blueprints.ExceptionsKnownControl, one: ruleExceptionKnown},
		{id: blueprints.IsolationOwnCluster, all: ruleUniqueNames},
		{id: blueprints.IsolationVault, all: ruleSharedVault},
		{id: blueprints.IsolationNetworks, all: ruleSharedNetworks},
		{id: blueprints.IsolationProdLabels, one: ruleProdLabels},
		{id: blueprints.CiliumCNI, one: ruleCNI},
		{id: blueprints.NetworkDefaultDeny, one: ruleDefaultDeny},
		{id: blueprints.NetworkAllowNarrow, one: ruleAllowNarrow},
		{id: blueprints.NetworkEncrypted, one: ruleTransparentEncryption},
		{id: blueprints.PodSecurityRestricted, one: rulePSSEnforce},
		{id: blueprints.PodSecurityExemptionsFew, one: rulePSSExemptions},
		{id: blueprints.PodSecurityAuditWarn, one: rulePSSAuditWarn},
		{id: blueprints.RBACAdminsNamed, one: ruleRBACAdmins},
		{id: blueprints.VaultSecrets, one: ruleVault},
		{id: blueprints.GuardrailImages, one: ruleImages},
		{id: blueprints.GuardrailsEnforced, one: ruleGuardrailsMode},
		{id: blueprints.StateSecretsVault, one: ruleStateSecrets},
	}
}

// Rules returns the catalog controls that review checks, sorted by ID: one
// per rule.
func Rules() []blueprints.Control {
	var out []blueprints.Control
	for _, r := range ruleSet() {
		c, ok := blueprints.ControlByID(r.id)
		if !ok {
			// ruleSet and the catalog are tested against each other.
			panic("review rule " + string(r.id) + " has no control in the catalog")
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b blueprints.Control) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// hit is a finding plus the blueprint it belongs to, which exceptions and
// positions need (names alone may be duplicated).
type hit struct {
	Finding
	bp *blueprints.Blueprint
	// final findings keep their severity whatever exceptions say (a newly
	// added exception must not excuse itself).
	final bool
}

// emitter collects what the rules report and fills in the common fields.
type emitter struct {
	rule blueprints.ControlID
	hits []hit
}

// add reports a finding of the current rule at path in b. sev 0 means the
// control's severity.
func (o *emitter) add(b *blueprints.Blueprint, path string, sev blueprints.Severity, format string, args ...any) {
	o.addFor(o.rule, b, path, sev, format, args...)
}

// addFor reports a finding that concerns control (for SP-CHG-001, the
// control a change weakens).
func (o *emitter) addFor(control blueprints.ControlID, b *blueprints.Blueprint, path string, sev blueprints.Severity, format string, args ...any) {
	c, _ := blueprints.ControlByID(control)
	if sev == 0 {
		sev = c.Severity
	}
	rem := c.Remediation
	if control != o.rule {
		own, _ := blueprints.ControlByID(o.rule)
		rem = strings.TrimSpace(fmt.Sprintf("%s (%s). %s", strings.TrimSuffix(own.Remediation, "."), control, c.Remediation))
	}
	pos := b.PosOf(path)
	o.hits = append(o.hits, hit{bp: b, Finding: Finding{
		Rule: o.rule, Severity: sev, Blueprint: b.Name(), File: b.Source.File,
		Line: pos.Line, Column: pos.Column, Path: path,
		Message: fmt.Sprintf(format, args...), Remediation: rem, Control: control,
	}})
}

// last returns the finding added most recently.
func (o *emitter) last() *hit { return &o.hits[len(o.hits)-1] }

// Report is everything one review run produced, ready for the encoders.
type Report struct {
	Blueprints int
	Findings   []Finding
	Errors     []LoadError
	// Base is the base revision compared against, if any.
	Base string
}

// LoadError is a problem loading a blueprint file. Its JSON form is part
// of secprov's interface.
type LoadError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"` // starts with the field path when there is one
}

// NewReport combines the loaded blueprints, their findings and the error
// Load returned (nil, a blueprints.ErrorList or any other error).
func NewReport(bps []*blueprints.Blueprint, findings []Finding, loadErr error) *Report {
	r := &Report{Blueprints: len(bps), Findings: findings}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Errors = LoadErrors(loadErr)
	return r
}

// LoadErrors flattens what blueprints.Load returned. Problems not tied to a
// line (an unreadable file, a size limit) are placed at 1:1 so every
// consumer (editors, problem matchers, SARIF) gets a valid position.
func LoadErrors(err error) []LoadError {
	out := []LoadError{}
	if err == nil {
		return out
	}
	var el blueprints.ErrorList
	if !errors.As(err, &el) {
		return append(out, LoadError{Line: 1, Column: 1, Message: err.Error()})
	}
	for _, e := range el {
		msg := e.Message
		if e.Path != "" {
			msg = e.Path + ": " + msg
		}
		out = append(out, LoadError{File: e.File, Line: max(e.Line, 1), Column: max(e.Column, 1), Message: msg})
	}
	slices.SortStableFunc(out, func(a, b LoadError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return out
}

// AtOrAbove counts the findings whose severity is at least threshold. A
// zero threshold (--fail-on none) counts nothing.
func (r *Report) AtOrAbove(threshold blueprints.Severity) int {
	if threshold == 0 {
		return 0
	}
	n := 0
	for _, f := range r.Findings {
		if f.Severity >= threshold {
			n++
		}
	}
	return n
}

// Counts returns the number of findings per severity.
func (r *Report) Counts() map[blueprints.Severity]int {
	m := map[blueprints.Severity]int{}
	for _, f := range r.Findings {
		m[f.Severity]++
	}
	return m
}

// severities lists every severity, most severe first.
var severities = []blueprints.Severity{
	blueprints.SeverityCritical, blueprints.SeverityHigh, blueprints.SeverityMedium, blueprints.SeverityLow, blueprints.SeverityInfo,
}
