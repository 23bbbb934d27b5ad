// Command secprov provisions and hardens Kubernetes clusters from blueprints.
//
// Exit codes: 0 success; 1 findings or a failed step; 2 usage errors or
// bad input; 130 stopped by SIGINT, 143 by SIGTERM (see app.Exec: a
// command gets app.SignalGrace to stop, a second signal exits at once).
package main

import (
	"os"

	"secprov.dev/secprov/cmd/secprov/app"
)

func main() {
	os.Exit(app.Exec(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
