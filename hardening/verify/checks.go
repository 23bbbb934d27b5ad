package verify

// Checks returns the full suite in report order. Each check lives in a
// checks_<area>.go file of its own.
func Checks() []Check {
	var all []Check
	for _, group := range [][]Check{} {
		all = append(all, group...)
	}
	return all
}
