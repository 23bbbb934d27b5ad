package verify

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// findings collects what one check saw, so every check turns many
// observations into one outcome the same way: any error wins (the check
// could not tell), then any failure, then any warning; a check that could
// not look at everything it proves skips with the reasons why, keeping the
// evidence of what it did see. It never passes on part of its control.
//
// Failures seen in behaviour (a request, a handshake, a stored value) lead
// the reason; flag mismatches follow, because "anonymous GET got 200" says
// more than "--anonymous-auth is true".
type findings struct {
	errs, fails, flagFails, warns, skips []string
	bad, flagBad, good                   []Evidence
}

func (r *findings) fail(e Evidence, why string) {
	r.fails = append(r.fails, why)
	r.bad = append(r.bad, e)
}

// failFlag records a flag that is missing or weaker than hardened.
func (r *findings) failFlag(e Evidence, why string) {
	r.flagFails = append(r.flagFails, why)
	r.flagBad = append(r.flagBad, e)
}

func (r *findings) warn(e Evidence, why string) {
	r.warns = append(r.warns, why)
	r.bad = append(r.bad, e)
}

func (r *findings) ok(e ...Evidence) { r.good = append(r.good, e...) }

func (r *findings) skip(why string) { r.skips = append(r.skips, why) }

func (r *findings) errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *findings) failed() bool { return len(r.fails)+len(r.flagFails)+len(r.errs) > 0 }

// outcome: pass says what was proven when nothing is wrong.
func (r *findings) outcome(pass string) Outcome {
	r.fails, r.flagFails = append(r.fails, r.flagFails...), nil
	r.bad, r.flagBad = append(r.bad, r.flagBad...), nil
	switch {
	case len(r.errs) > 0:
		return Outcome{Status: StatusError, Reason: summary(r.errs), Evidence: r.bad}
	case len(r.fails) > 0:
		return Fail(summary(r.fails), r.bad...)
	case len(r.warns) > 0:
		return Warn(summary(r.warns), r.bad...)
	case len(r.skips) > 0:
		return Outcome{Status: StatusSkip, Reason: strings.Join(r.skips, "; "), Evidence: r.good}
	}
	return Pass(pass, r.good...)
}

// summary keeps a reason to one line: the first problem and a count.
func summary(reasons []string) string {
	if len(reasons) == 1 {
		return reasons[0]
	}
	return fmt.Sprintf("%s (and %d more)", reasons[0], len(reasons)-1)
}

// judgeRendered compares a file the control plane reads with what
// hardening renders for the cluster's blueprint: a file changed out of
// band fails the check of its control, naming the file, even while the
// running component still holds the old content (it reads the file again
// on its next start).
func judgeRendered(ctx context.Context, t Target, r *findings, path string, render func(v1alpha1.Spec) ([]byte, error)) {
	want, err := render(t.Info().Spec)
	if err != nil {
		r.errorf("render %s for comparison: %v", path, err)
		return
	}
	got, err := t.ReadFile(ctx, path)
	if err != nil {
		r.errorf("read %s: %v", path, err)
		return
	}
	ev := Evidence{Object: path, Field: "content", Want: "secprov's render of the blueprint (" + fmt.Sprint(len(want)) + " bytes)"}
	if bytes.Equal(got, want) {
		ev.Got = "identical"
		r.ok(ev)
		return
	}
	ev.Got = fmt.Sprintf("differs (%d bytes)", len(got))
	r.fail(ev, path+" differs from its render: changed out of band, it takes effect on the next restart; secprov up restores it")
}
