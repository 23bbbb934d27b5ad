// Package app wires secprov's commands. Each command lives in its own file
// with a private flag struct; RunE only maps flags onto library options.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0
	ExitFindings = 1 // the command ran and found something at or above the threshold
	ExitUsage    = 2 // bad flags, unreadable or invalid input
)

// ExitError carries an exit code. A nil Err means the command already printed
// what the user needs (a report with findings) and only the code matters.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageErr marks err as a usage/input problem (exit 2).
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// ExitCode maps an error returned by Main to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// Streams are the process's standard streams, passed explicitly so commands
// are testable in-process.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Main runs secprov with the given arguments (args[0] is the program name).
// When invoked as pulumi-resource-secprov it serves the Pulumi provider
// protocol instead of the CLI.
func Main(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(args) > 0 && filepath.Base(args[0]) == pluginBinaryName {
		return servePlugin(ctx, o)
	}
	return Run(ctx, Streams{In: in, Out: out, Err: errOut}, args[1:])
}

// Run executes the CLI with args (without the program name).
func Run(ctx context.Context, s Streams, args []string) error {
	root := newRootCommand(s)
	root.SetArgs(args)
	// Errors before a command runs (unknown command or flag, wrong
	// arguments) are usage errors; errors from a running command are
	// runtime failures unless the command says otherwise with ExitError.
	started := false
	root.PersistentPreRun = func(*cobra.Command, []string) { started = true }
	err := root.ExecuteContext(ctx)
	var ee *ExitError
	if err != nil && !errors.As(err, &ee) && !started {
		err = usageErr(err)
	}
	return err
}

type rootFlags struct {
	verbose int
}

func newRootCommand(s Streams) *cobra.Command {
	flags := &rootFlags{}
	cmd := &cobra.Command{
		Use:   "secprov",
		Short: "Provision and harden Kubernetes clusters from declarative blueprints",
		Long: `secprov creates separate, hardened Kubernetes clusters (one per environment)
from declarative blueprints, proves the result with a post-install check suite,
and reviews blueprints statically in code review.

SIGINT or SIGTERM asks the running command to stop; one that has not
stopped 1.5s later is abandoned, and a second signal exits at once. The
exit code is then 130 (SIGINT) or 143 (SIGTERM); anything up started
converges when it is run again.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetIn(s.In)
	cmd.SetOut(s.Out)
	cmd.SetErr(s.Err)
	cmd.PersistentFlags().CountVarP(&flags.verbose, "verbose", "v", "more output (repeat for debug logs)")
	cmd.AddCommand(
		newVersionCommand(s),
		newInitCommand(s),
		newSchemaCommand(s),
		newReviewCommand(s, flags),
		newToolsCommand(s, flags),
		newImagesCommand(s, flags),
		newPlanCommand(s, flags),
		newUpCommand(s, flags),
		newVerifyCommand(s, flags),
		newEvidenceCommand(s),
		newStatusCommand(s, flags),
		newStateCommand(s, flags),
		newKubeconfigCommand(s),
		newDownCommand(s, flags),
		newVaultCommand(s, flags),
		newKMSPluginCommand(s, flags),
		newVaultRelayCommand(s, flags),
		newRotateKeysCommand(s),
	)
	strictCompletion(cmd)
	noFileArgs(cmd)
	return cmd
}

// strictCompletion makes `secprov completion` refuse a shell it has no
// script for. Cobra's default command is not runnable, so for an unknown
// shell (or none) it prints its help and exits 0, which a setup script
// takes for success and then sources nothing.
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, sc := range c.Commands() {
			shells = append(shells, sc.Name())
		}
		list := strings.Join(shells, ", ")
		c.Args = func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr(fmt.Errorf("name a shell: secprov completion SHELL, where SHELL is one of %s", list))
			}
			return usageErr(fmt.Errorf("unknown shell %s: secprov completion supports %s", quoteArg(args[0]), list))
		}
		// Only Args runs (it always refuses); RunE makes the command
		// runnable so that it does.
		c.RunE = func(*cobra.Command, []string) error { return nil }
	}
}

// logger returns a logger writing to stderr at a level chosen by -v.
func (f *rootFlags) logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case f.verbose >= 2:
		level = slog.LevelDebug
	case f.verbose == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// writeJSON writes v as indented JSON: the -o json output of every command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
