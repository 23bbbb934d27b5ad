// Package verify is secprov's post-install check suite. Every check proves
// one hardening control (same SP- ID as the control and review rule) by
// looking at the live cluster — the API, the control-plane processes and
// files, and etcd — never at the blueprint alone.
//
// A check is a declaration (ID, title, severity, refs, remediation from the
// control catalog, the target capabilities it needs) plus a Run func;
// running produces a Result. The declaration is never mutated into the
// result. A check whose needs the target does not offer is skipped by the
// runner with the reason, before it runs.
package verify

import (
	"context"
	"fmt"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Status is the closed set of check outcomes.
type Status string

// Statuses, worst first in reports.
const (
	StatusFail  Status = "fail"
	StatusError Status = "error" // the check could not run: the cluster or access is broken
	StatusWarn  Status = "warn"
	StatusSkip  Status = "skip" // never without a reason
	StatusPass  Status = "pass"
)

// Evidence is what a check looked at: the object and field, what it
// wanted and what it found.
type Evidence struct {
	Object string `json:"object"`
	Field  string `json:"field,omitempty"`
	Want   string `json:"want,omitempty"`
	Got    string `json:"got,omitempty"`
}

func (e Evidence) String() string {
	s := e.Object
	if e.Field != "" {
		s += " " + e.Field
	}
	if e.Want != "" || e.Got != "" {
		s += fmt.Sprintf(": want %s, got %s", e.Want, orNone(e.Got))
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Outcome is what a check's Run returns.
type Outcome struct {
	Status   Status
	Reason   string // one line
	Evidence []Evidence
}

// DefaultCheckTimeout bounds one check. It is a guard against a hung
// check, not a performance target: on kind every file, process and etcd
// read is a docker exec into a node, which takes seconds apiece on a busy
// machine while the probe pods start beside it.
const DefaultCheckTimeout = 2 * time.Minute

// Pass, Fail, Warn, Skip and Errorf build outcomes.
func Pass(reason string, ev ...Evidence) Outcome { return Outcome{StatusPass, reason, ev} }
func Fail(reason string, ev ...Evidence) Outcome { return Outcome{StatusFail, reason, ev} }
func Warn(reason string, ev ...Evidence) Outcome { return Outcome{StatusWarn, reason, ev} }
func Skip(reason string) Outcome                 { return Outcome{Status: StatusSkip, Reason: reason} }
func Errorf(format string, args ...any) Outcome {
	return Outcome{Status: StatusError, Reason: fmt.Sprintf(format, args...)}
}

// Check declares one live check.
type Check struct {
	// ID of the control it proves (from blueprints.Controls).
	ID blueprints.ControlID
	// Title overrides the control title when the check proves a narrower
	// aspect; usually empty.
	Title string
	// Exclusive checks run alone (they change cluster state or measure
	// timing); the others run concurrently.
	Exclusive bool
	// Needs are the capabilities Run uses: every Target method it calls
	// (directly or through a helper) and every component it connects to.
	// The runner skips the check when the target lacks one, so Run never
	// has to find out by calling and failing.
	Needs []Capability
	// Timeout, when longer than the runner's, is this check's own (the
	// network probes start pods).
	Timeout time.Duration
	Run     func(ctx context.Context, t Target) Outcome
}

// Result is one check's result on one cluster.
type Result struct {
	ID          blueprints.ControlID `json:"id"`
	Title       string               `json:"title"`
	Status      Status               `json:"status"`
	Severity    blueprints.Severity  `json:"severity"`
	Reason      string               `json:"reason"`
	Evidence    []Evidence           `json:"evidence"`
	Remediation string               `json:"remediation,omitempty"`
	Refs        []string             `json:"refs,omitempty"`
	Duration    time.Duration        `json:"-"`
}

// Summary counts results by status.
type Summary struct {
	Total   int `json:"total"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Warned  int `json:"warned"`
	Skipped int `json:"skipped"`
	Errored int `json:"errors"`
}

// Report is the suite's result for one cluster.
type Report struct {
	Cluster     string        `json:"cluster"`
	Environment string        `json:"environment"`
	Provider    string        `json:"provider"`
	Results     []Result      `json:"results"`
	Summary     Summary       `json:"summary"`
	Duration    time.Duration `json:"-"`
}

// Options filter and tune a run.
type Options struct {
	// Filter keeps checks whose ID matches; nil runs all.
	Filter *regexp.Regexp
	// Concurrency of non-exclusive checks; 0 means 8.
	Concurrency int
	// Timeout per check; 0 means DefaultCheckTimeout.
	Timeout time.Duration
	// Now judges blueprint exceptions; nil means time.Now.
	Now func() time.Time
}

// Run runs checks against the target and returns the report, results in
// check order. A panicking check yields an error result, not a crash.
func Run(ctx context.Context, t Target, checks []Check, opts Options) *Report {
	start := time.Now()
	info := t.Info()
	have := t.Capabilities()
	rep := &Report{Cluster: info.Name, Environment: info.Environment, Provider: info.Provider}
	var selected []Check
	for _, c := range checks {
		if opts.Filter == nil || opts.Filter.MatchString(string(c.ID)) {
			selected = append(selected, c)
		}
	}
	rep.Results = make([]Result, len(selected))
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 8
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, c := range selected {
		if c.Exclusive {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rep.Results[i] = runOne(ctx, t, have, c, timeout)
			applyException(&rep.Results[i], info.Spec, now)
		}()
	}
	wg.Wait()
	for i, c := range selected {
		if c.Exclusive {
			rep.Results[i] = runOne(ctx, t, have, c, timeout)
			applyException(&rep.Results[i], info.Spec, now)
		}
	}
	rep.Summary = summarize(rep.Results)
	rep.Duration = time.Since(start)
	return rep
}

func runOne(ctx context.Context, t Target, have []Capability, c Check, timeout time.Duration) (res Result) {
	ctl, _ := blueprints.ControlByID(c.ID)
	res = Result{ID: c.ID, Title: cmpOr(c.Title, ctl.Title), Severity: ctl.Severity, Remediation: ctl.Remediation, Evidence: []Evidence{}}
	for _, r := range ctl.Refs {
		res.Refs = append(res.Refs, r.String())
	}
	if missing := Missing(have, c.Needs); len(missing) > 0 {
		res.Status, res.Reason = StatusSkip, needsReason(t.Info().Provider, missing)
		return res
	}
	start := time.Now()
	timeout = max(timeout, c.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		res.Duration = time.Since(start)
		if p := recover(); p != nil {
			res.Status, res.Reason = StatusError, fmt.Sprintf("check panicked: %v\n%s", p, debug.Stack())
		}
	}()
	out := c.Run(ctx, t)
	if ctx.Err() != nil && out.Status != StatusPass {
		out = Errorf("timed out after %v: %s", timeout, out.Reason)
	}
	if out.Status == StatusSkip && out.Reason == "" {
		out.Reason = "skipped without a reason (a bug in the check)"
		out.Status = StatusError
	}
	res.Status, res.Reason = out.Status, out.Reason
	if out.Evidence != nil {
		res.Evidence = out.Evidence
	}
	return res
}

// needsReason says which capabilities a skipped check needs and that the
// provider lacks them: "needs nodes; provider local has none".
func needsReason(provider string, missing []Capability) string {
	names := make([]string, len(missing))
	for i, c := range missing {
		names[i] = string(c)
	}
	if len(names) == 1 {
		return fmt.Sprintf("needs %s; provider %s has none", names[0], orNone(provider))
	}
	return fmt.Sprintf("needs %s; provider %s has none of these", strings.Join(names, ", "), orNone(provider))
}

// applyException turns a failure into a warning when the cluster's
// blueprint holds a valid exception for the control: the weakening is
// deliberate, justified and not yet expired, as review reports it too. An
// expired or unjustified exception changes nothing.
func applyException(res *Result, spec v1alpha1.Spec, now time.Time) {
	if res.Status != StatusFail {
		return
	}
	x, ok := blueprints.ActiveException(spec.Exceptions, res.ID, now)
	if !ok {
		return
	}
	res.Status = StatusWarn
	res.Reason = fmt.Sprintf("excepted until %s (%s): %s", x.Expires, x.Justification, res.Reason)
}

func summarize(rs []Result) Summary {
	s := Summary{Total: len(rs)}
	for _, r := range rs {
		switch r.Status {
		case StatusPass:
			s.Passed++
		case StatusFail:
			s.Failed++
		case StatusWarn:
			s.Warned++
		case StatusSkip:
			s.Skipped++
		case StatusError:
			s.Errored++
		}
	}
	return s
}

// Failed reports whether any result fails (or errors) at or above sev.
func (r *Report) Failed(sev blueprints.Severity) bool {
	return slices.ContainsFunc(r.Results, func(res Result) bool {
		return (res.Status == StatusFail || res.Status == StatusError) && res.Severity >= sev
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ByID returns the result with that ID.
func (r *Report) ByID(id blueprints.ControlID) (Result, bool) {
	i := slices.IndexFunc(r.Results, func(res Result) bool { return res.ID == id })
	if i < 0 {
		return Result{}, false
	}
	return r.Results[i], true
}

func joinEvidence(ev []Evidence) string {
	parts := make([]string, len(ev))
	for i, e := range ev {
		parts[i] = e.String()
	}
	return strings.Join(parts, "; ")
}
