package engine

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Op is what the engine does (or would do) to a resource.
type Op string

// Ops as reported in plans and results. A replacement is reported as
// OpReplace in a Plan; in progress events it shows as its two halves,
// OpCreateReplacement then OpDeleteReplaced.
const (
	OpSame              Op = "same"
	OpCreate            Op = "create"
	OpUpdate            Op = "update"
	OpReplace           Op = "replace"
	OpDelete            Op = "delete"
	OpCreateReplacement Op = "create-replacement"
	OpDeleteReplaced    Op = "delete-replaced"
	OpRead              Op = "read"
	OpRefresh           Op = "refresh"
	OpOther             Op = "other"
)

func opOf(o apitype.OpType) Op {
	switch o {
	case apitype.OpSame:
		return OpSame
	case apitype.OpCreate:
		return OpCreate
	case apitype.OpUpdate:
		return OpUpdate
	case apitype.OpReplace:
		return OpReplace
	case apitype.OpDelete:
		return OpDelete
	case apitype.OpCreateReplacement:
		return OpCreateReplacement
	case apitype.OpDeleteReplaced:
		return OpDeleteReplaced
	case apitype.OpRead, apitype.OpReadReplacement:
		return OpRead
	case apitype.OpRefresh:
		return OpRefresh
	default:
		return OpOther
	}
}

// ChangeKind is how one property changes.
type ChangeKind string

const (
	ChangeAdd    ChangeKind = "add"
	ChangeUpdate ChangeKind = "update"
	ChangeDelete ChangeKind = "delete"
)

// PropertyChange is one changed input property.
type PropertyChange struct {
	Path    string     // Pulumi property path: "content", "flags.auditLog", "args[2]"
	Kind    ChangeKind // add, update or delete
	Replace bool       // this change forces replacement
}

// ResourceChange is one resource in a plan or result.
type ResourceChange struct {
	URN  string
	Type string // type token, e.g. secprov:local:Etcd
	Name string // name in the program
	Op   Op
	// Changes lists changed properties, sorted by path (update/replace).
	Changes []PropertyChange
}

// Replaces reports the properties that force replacement.
func (r ResourceChange) Replaces() []string {
	var out []string
	for _, c := range r.Changes {
		if c.Replace {
			out = append(out, c.Path)
		}
	}
	return out
}

// Plan is what `up` would do to a stack, one entry per resource in the
// order the engine visited them. The stack itself and the provider
// instance are internal and left out.
type Plan struct {
	Stack     string
	Resources []ResourceChange
	// Counts per op (OpReplace counts a replacement once).
	Counts map[Op]int
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	for op, n := range p.Counts {
		if op != OpSame && n > 0 {
			return true
		}
	}
	return false
}

// EventKind classifies progress events.
type EventKind string

const (
	StepStarted EventKind = "started" // the engine began a step on a resource
	StepDone    EventKind = "done"    // the step succeeded
	StepFailed  EventKind = "failed"  // the step failed; Message says why
	Diagnostic  EventKind = "diag"    // a message from the engine or the provider
)

// Event is one progress report, delivered in order to Options.OnEvent so a
// CLI can print a step list with ✓/✗ and the time each step took.
type Event struct {
	Kind EventKind
	URN  string
	Type string
	Name string
	Op   Op
	// Elapsed is the step's duration (StepDone, StepFailed).
	Elapsed time.Duration
	// Severity is "info", "warning" or "error" (Diagnostic).
	Severity string
	Message  string
}

// Diag is an error the engine reported, with the resource it concerns.
type Diag struct {
	URN     string
	Type    string
	Name    string
	Message string
}

// collector turns the engine's event stream into progress events, the
// per-resource plan and the error diagnostics.
type collector struct {
	redact func(string) string
	notify func(Event)

	mu        sync.Mutex
	started   map[string]time.Time // urn+op -> start
	order     []string             // URNs in first-seen order
	resources map[string]*ResourceChange
	errs      []Diag
	lastErr   map[string]string // urn -> last error message, for StepFailed
	summary   *apitype.SummaryEvent
	outputs   map[string]any // the stack resource's outputs, secrets masked
}

func newCollector(redact func(string) string, notify func(Event)) *collector {
	if notify == nil {
		notify = func(Event) {}
	}
	return &collector{
		redact:    redact,
		notify:    notify,
		started:   map[string]time.Time{},
		resources: map[string]*ResourceChange{},
		lastErr:   map[string]string{},
	}
}

// consume handles events from ch until ch is closed or stop is; run it in
// a goroutine. stop must only close once no more events can be sent.
func (c *collector) consume(ch <-chan events.EngineEvent, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			c.handle(ev.EngineEvent, time.Now())
		case <-stop:
			return
		}
	}
}

func internalType(t string) bool {
	return t == "pulumi:pulumi:Stack" || strings.HasPrefix(t, "pulumi:providers:")
}

func (c *collector) handle(ev apitype.EngineEvent, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ev.ResourcePreEvent != nil:
		m := ev.ResourcePreEvent.Metadata
		c.record(m)
		if internalType(m.Type) {
			return
		}
		op := opOf(m.Op)
		c.started[m.URN+"\x00"+string(op)] = now
		c.notify(Event{Kind: StepStarted, URN: m.URN, Type: m.Type, Name: urnName(m.URN), Op: op})
	case ev.ResOutputsEvent != nil:
		m := ev.ResOutputsEvent.Metadata
		if m.Type == "pulumi:pulumi:Stack" && m.New != nil {
			c.outputs = m.New.Outputs
		}
		if internalType(m.Type) {
			return
		}
		op := opOf(m.Op)
		c.notify(Event{Kind: StepDone, URN: m.URN, Type: m.Type, Name: urnName(m.URN), Op: op,
			Elapsed: c.elapsed(m.URN, op, now)})
	case ev.ResOpFailedEvent != nil:
		m := ev.ResOpFailedEvent.Metadata
		op := opOf(m.Op)
		c.notify(Event{Kind: StepFailed, URN: m.URN, Type: m.Type, Name: urnName(m.URN), Op: op,
			Elapsed: c.elapsed(m.URN, op, now), Message: c.lastErr[m.URN]})
	case ev.DiagnosticEvent != nil:
		d := ev.DiagnosticEvent
		msg := c.redact(strings.TrimSpace(colors.Never.Colorize(d.Message)))
		if msg == "" {
			return
		}
		sev := d.Severity
		if sev == "info#err" {
			sev = "info"
		}
		if sev == "error" {
			c.lastErr[d.URN] = msg
			c.errs = append(c.errs, Diag{URN: d.URN, Type: urnType(d.URN), Name: urnName(d.URN), Message: msg})
		}
		if sev == "debug" {
			return
		}
		c.notify(Event{Kind: Diagnostic, URN: d.URN, Type: urnType(d.URN), Name: urnName(d.URN), Severity: sev, Message: msg})
	case ev.SummaryEvent != nil:
		s := *ev.SummaryEvent
		c.summary = &s
	}
}

func (c *collector) elapsed(urn string, op Op, now time.Time) time.Duration {
	key := urn + "\x00" + string(op)
	if t, ok := c.started[key]; ok {
		delete(c.started, key)
		return now.Sub(t).Round(time.Millisecond)
	}
	return 0
}

// record folds one step into the per-resource view: the three steps of a
// replacement become one OpReplace entry.
func (c *collector) record(m apitype.StepEventMetadata) {
	if internalType(m.Type) {
		return
	}
	op := opOf(m.Op)
	switch op {
	case OpCreateReplacement, OpDeleteReplaced:
		op = OpReplace
	}
	r, ok := c.resources[m.URN]
	switch {
	case !ok:
		r = &ResourceChange{URN: m.URN, Type: m.Type, Name: urnName(m.URN), Op: op}
		c.resources[m.URN] = r
		c.order = append(c.order, m.URN)
	case r.Op == OpRefresh:
		// With Refresh, a resource's refresh step comes first; what
		// happens next (same, update, create again) is what counts.
		r.Op, r.Changes = op, nil
	case op == OpReplace:
		r.Op = OpReplace
	}
	if len(m.DetailedDiff) > 0 || len(m.Diffs) > 0 {
		r.Changes = changesOf(m)
	}
}

func changesOf(m apitype.StepEventMetadata) []PropertyChange {
	var out []PropertyChange
	if len(m.DetailedDiff) > 0 {
		for path, d := range m.DetailedDiff {
			pc := PropertyChange{Path: path, Kind: ChangeUpdate}
			switch d.Kind {
			case apitype.DiffAdd, apitype.DiffAddReplace:
				pc.Kind = ChangeAdd
			case apitype.DiffDelete, apitype.DiffDeleteReplace:
				pc.Kind = ChangeDelete
			}
			switch d.Kind {
			case apitype.DiffAddReplace, apitype.DiffDeleteReplace, apitype.DiffUpdateReplace:
				pc.Replace = true
			}
			out = append(out, pc)
		}
	} else {
		// No detail (not from our provider): top-level keys only.
		for _, k := range m.Diffs {
			out = append(out, PropertyChange{Path: k, Kind: ChangeUpdate, Replace: contains(m.Keys, k)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// plan returns the collected per-resource view.
func (c *collector) plan(stack string) *Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &Plan{Stack: stack, Counts: map[Op]int{}}
	for _, urn := range c.order {
		r := *c.resources[urn]
		if r.Op == OpSame {
			r.Changes = nil
		}
		p.Resources = append(p.Resources, r)
		p.Counts[r.Op]++
	}
	return p
}

// secretMask is how the event stream shows a secret value.
const secretMask = "[secret]"

// stackOutputs returns the stack's outputs as the events reported them.
func (c *collector) stackOutputs() map[string]Output {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Output, len(c.outputs))
	for k, v := range c.outputs {
		if s, ok := v.(string); ok && s == secretMask {
			out[k] = Output{Secret: true}
			continue
		}
		out[k] = Output{Value: v}
	}
	return out
}

func (c *collector) diagnostics() []Diag {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Diag(nil), c.errs...)
}

func urnName(urn string) string {
	if urn == "" {
		return ""
	}
	return resource.URN(urn).Name()
}

func urnType(urn string) string {
	if urn == "" {
		return ""
	}
	return string(resource.URN(urn).Type())
}
