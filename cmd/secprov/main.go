// Command secprov provisions and hardens Kubernetes clusters from blueprints.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"secprov.dev/secprov/cmd/secprov/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	// An error without a message means the command already printed its
	// report; only the exit code is left to deliver.
	if err != nil && err.Error() != "" {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(app.ExitCode(err))
}
