package review

import (
	"fmt"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// exceptionState judges one exception against the catalog and the clock.
type exceptionState struct {
	known, justified, expired bool
}

func (s exceptionState) valid() bool { return s.known && s.justified && !s.expired }

func judgeException(e *env, x v1alpha1.Exception) exceptionState {
	_, known := blueprints.ControlByID(blueprints.ControlID(x.Control))
	return exceptionState{known: known, justified: blueprints.ExceptionJustified(x.Justification), expired: blueprints.ExceptionExpired(x.Expires, e.now)}
}

func ruleExceptionExpired(e *env, b *blueprints.Blueprint, out *emitter) {
	for i, x := range b.Spec.Exceptions {
		if st := judgeException(e, x); st.known && st.expired {
			out.add(b, fmt.Sprintf("spec.exceptions[%d].expires", i), 0, "exception for %s expired on %s: the control applies again at full severity", x.Control, x.Expires)
		}
	}
}

func ruleExceptionJustified(e *env, b *blueprints.Blueprint, out *emitter) {
	for i, x := range b.Spec.Exceptions {
		if st := judgeException(e, x); st.known && !st.justified {
			out.add(b, fmt.Sprintf("spec.exceptions[%d].justification", i), 0, "exception for %s has justification %q, which says nothing; it does not apply until it explains why (at least %d characters)", x.Control, x.Justification, blueprints.MinJustification)
		}
	}
}

func ruleExceptionKnown(_ *env, b *blueprints.Blueprint, out *emitter) {
	for i, x := range b.Spec.Exceptions {
		if _, ok := blueprints.ControlByID(blueprints.ControlID(x.Control)); !ok {
			out.add(b, fmt.Sprintf("spec.exceptions[%d].control", i), 0, "exception names %q, which is not a secprov control; it has no effect", x.Control)
		}
	}
}

// exceptionRules are not themselves subject to exceptions: an exception
// must not excuse its own problems.
func isExceptionRule(id blueprints.ControlID) bool {
	return id == blueprints.ExceptionsCurrent || id == blueprints.ExceptionsExplained || id == blueprints.ExceptionsKnownControl
}

// applyExceptions downgrades every finding whose control has a valid
// exception in the finding's blueprint to info and says so in the message.
func applyExceptions(e *env, hits []hit) {
	valid := map[*blueprints.Blueprint]map[blueprints.ControlID]*v1alpha1.Exception{}
	for i := range hits {
		h := &hits[i]
		if isExceptionRule(h.Rule) || h.final {
			continue
		}
		m, ok := valid[h.bp]
		if !ok {
			m = map[blueprints.ControlID]*v1alpha1.Exception{}
			for j := range h.bp.Spec.Exceptions {
				x := &h.bp.Spec.Exceptions[j]
				if judgeException(e, *x).valid() {
					m[blueprints.ControlID(x.Control)] = x
				}
			}
			valid[h.bp] = m
		}
		if x, ok := m[h.Control]; ok {
			h.Exception = x
			h.Severity = blueprints.SeverityInfo
			h.Message = fmt.Sprintf("%s [excepted until %s: %s]", h.Message, x.Expires, strings.Join(strings.Fields(x.Justification), " "))
		}
	}
}
