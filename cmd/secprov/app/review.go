package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/review"
)

type reviewFlags struct {
	base      string
	output    string
	failOn    string
	listRules bool
}

func newReviewCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &reviewFlags{}
	cmd := &cobra.Command{
		Use:   "review [PATH...]",
		Short: "Review blueprints statically for security problems",
		Long: `Review loads blueprints (files, or directories of *.yaml/*.yml; default: the
current directory) and reports schema errors with file:line:col and security
findings with rule IDs. With --base it also reports every change that weakens
security versus a git revision.

Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
2 a blueprint did not load or the command was used wrongly (the full report is
still printed).`,
		Example: `  secprov review blueprints/
  secprov review --base origin/main -o markdown blueprints/
  secprov review --list-rules -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReview(cmd.Context(), s, root, flags, args)
		},
	}
	cmd.Flags().StringVar(&flags.base, "base", "", "git revision to compare with; changes that weaken security are reported ("+string(blueprints.NoWeakeningChange)+")")
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text, json, sarif or markdown")
	cmd.Flags().StringVar(&flags.failOn, "fail-on", "high", "exit 1 when a finding has this severity or higher: critical, high, medium, low, info or none")
	completeGitRefs(cmd, "base")
	completeValues(cmd, "output", "text", "json", "sarif", "markdown")
	completeValues(cmd, "fail-on", slices.Concat(severities, []string{"none"})...)
	cmd.Flags().BoolVar(&flags.listRules, "list-rules", false, "list the review rules and exit")
	return cmd
}

func runReview(ctx context.Context, s Streams, root *rootFlags, flags *reviewFlags, args []string) error {
	format, err := review.ParseFormat(flags.output)
	if err != nil {
		return usageErr(err)
	}
	if flags.listRules {
		if len(args) > 0 || flags.base != "" {
			return usageErr(fmt.Errorf("--list-rules takes no paths and no --base"))
		}
		return usageErr(review.WriteRules(s.Out, format))
	}
	var failOn blueprints.Severity
	if flags.failOn != "none" {
		if failOn, err = blueprints.ParseSeverity(flags.failOn); err != nil {
			return usageErr(fmt.Errorf("--fail-on: %w, or none", err))
		}
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	log := root.logger(s.Err)

	bps, loadErr := blueprints.Load(args...)
	opts := review.Options{Now: time.Now()}
	if flags.base != "" {
		base, err := review.LoadBaseReusing(ctx, log, flags.base, bps, args...)
		if err != nil {
			return usageErr(err)
		}
		opts.Base = base
	}
	report := review.NewReport(bps, review.Review(bps, opts), loadErr)
	report.Base = flags.base

	wopts := review.WriteOptions{Verbose: root.verbose > 0, FailOn: failOn, ToolVersion: Version()}
	if format == review.FormatSARIF {
		wopts.SrcRoot = sarifRoot(ctx)
	}
	if err := review.Write(s.Out, report, format, wopts); err != nil {
		return fmt.Errorf("writing the review report: %w", err)
	}
	switch {
	case len(report.Errors) > 0:
		return &ExitError{Code: ExitUsage}
	case report.AtOrAbove(failOn) > 0:
		return &ExitError{Code: ExitFindings}
	}
	return nil
}

// sarifRoot is the directory SARIF paths are relative to: the root of the
// git repository around the working directory, which is what code scanning
// expects, else the working directory itself.
func sarifRoot(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err == nil {
		if root := strings.TrimSpace(out.String()); root != "" {
			return root
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}
