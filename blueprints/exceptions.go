package blueprints

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// ExceptionExpired reports whether an exception's last day (YYYY-MM-DD,
// UTC) lies before now. An unparsable date counts as expired; the loader
// rejects those anyway.
func ExceptionExpired(expires string, now time.Time) bool {
	d, err := time.Parse(ExceptionDateLayout, expires)
	if err != nil {
		return true
	}
	return now.UTC().Format(ExceptionDateLayout) > d.Format(ExceptionDateLayout)
}

// MinJustification is the fewest non-space characters a justification
// needs: enough for "why" and "who accepted it", not a placeholder.
const MinJustification = 10

// ExceptionJustified reports whether a justification says something: long
// enough and not a placeholder such as TODO or n/a.
func ExceptionJustified(j string) bool {
	n := 0
	for _, r := range j {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	if n < MinJustification {
		return false
	}
	lower := strings.ToLower(strings.TrimSpace(j))
	for _, ph := range []string{"todo", "tbd", "n/a", "fixme", "xxx"} {
		if rest, ok := strings.CutPrefix(lower, ph); ok {
			if next, _ := utf8.DecodeRuneInString(rest); rest == "" || !unicode.IsLetter(next) {
				return false // a placeholder, perhaps with a note after it
			}
		}
	}
	return true
}

// ActiveException returns the exception for control that is in force at
// now: naming a known control, justified and not expired.
func ActiveException(exceptions []v1alpha1.Exception, control ControlID, now time.Time) (v1alpha1.Exception, bool) {
	if _, known := ControlByID(control); !known {
		return v1alpha1.Exception{}, false
	}
	for _, x := range exceptions {
		if ControlID(x.Control) == control && ExceptionJustified(x.Justification) && !ExceptionExpired(x.Expires, now) {
			return x, true
		}
	}
	return v1alpha1.Exception{}, false
}
