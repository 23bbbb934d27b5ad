package app

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
)

// verifyOpts are the check-suite flags shared by verify and up.
type verifyOpts struct {
	check  string
	failOn string
}

func (o *verifyOpts) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.check, "check", "", "run only checks whose ID matches this regular expression (e.g. 'SP-ETCD-|SP-ENC-')")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "high", "exit 1 when a check fails (or errors) at or above this severity: critical, high, medium, low, info")
	completeChecks(cmd)
	completeValues(cmd, "fail-on", severities...)
}

func (o verifyOpts) parse() (*regexp.Regexp, blueprints.Severity, error) {
	sev, err := blueprints.ParseSeverity(o.failOn)
	if err != nil {
		return nil, 0, usageErr(fmt.Errorf("--fail-on: %w", err))
	}
	if o.check == "" {
		return nil, sev, nil
	}
	re, err := regexp.Compile(o.check)
	if err != nil {
		return nil, 0, usageErr(fmt.Errorf("--check: %w", err))
	}
	return re, sev, nil
}

func verifyFails(reps []*verify.Report, o verifyOpts) bool {
	_, sev, err := o.parse()
	if err != nil {
		return true
	}
	for _, r := range reps {
		if r.Failed(sev) {
			return true
		}
	}
	return false
}

// verifyClusters runs the suite on each cluster, one after the other: each
// suite already runs its checks concurrently.
// inspect, when set, looks at each open target before the suite runs
// (verify --attest takes the CA and applied spec from it).
func verifyClusters(ctx context.Context, stateDir string, clusters []string, filter *regexp.Regexp, inspect func(verify.Target) error) ([]*verify.Report, error) {
	var reps []*verify.Report
	for _, c := range clusters {
		t, err := provision.Target(providers.Registry(), stateDir, c)
		if err != nil {
			return reps, err
		}
		if inspect != nil {
			if err := inspect(t); err != nil {
				if closer, ok := t.(interface{ Close() error }); ok {
					closer.Close()
				}
				return reps, err
			}
		}
		rep := verify.Run(ctx, t, verify.Checks(), verify.Options{Filter: filter})
		if closer, ok := t.(interface{ Close() error }); ok {
			closer.Close()
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// runVerify is up's verify step: the suite on each cluster and, unless
// quiet, the text report on stdout.
func runVerify(ctx context.Context, s Streams, stateDir string, clusters []string, o verifyOpts, quiet bool) ([]*verify.Report, error) {
	filter, _, err := o.parse()
	if err != nil {
		return nil, err
	}
	reps, err := verifyClusters(ctx, stateDir, clusters, filter, nil)
	if err != nil {
		return reps, err
	}
	if !quiet && len(reps) > 0 {
		fmt.Fprintln(s.Out)
		if err := verify.WriteReports(s.Out, "text", reps, verify.WriteOptions{}); err != nil {
			return reps, err
		}
	}
	return reps, nil
}

type verifyFlags struct {
	verifyOpts
	clusters []string
	all      bool
	output   string
	files    []string
	attest   string
	key      string
}

func newVerifyCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &verifyFlags{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Run the post-install check suite against live clusters",
		Long: `verify proves each hardening control on the live cluster — through the API,
the control-plane processes and files, and etcd — not from the blueprint.
Every check has a stable ID (the same as the control and review rule), a
status (pass, fail, warn, skip with a reason, error) and evidence.

Exit codes: 0 all checks at or above --fail-on pass; 1 a check failed or
errored at or above --fail-on; 2 usage errors or no such cluster.`,
		Example: `  secprov verify --all
  secprov verify --cluster shop-prod --check 'SP-ENC-' -o json
  secprov verify --all -f blueprints/ -o sarif > verify.sarif
  secprov verify --cluster shop-prod -f blueprints/ --attest shop-prod.dsse.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, verify.Formats...); err != nil {
				return err
			}
			filter, sev, err := flags.parse()
			if err != nil {
				return err
			}
			if err := checkClusterNames(flags.clusters); err != nil {
				return err
			}
			stateDir, err := paths.StateDir()
			if err != nil {
				return err
			}
			names := flags.clusters
			if len(names) == 0 || flags.all {
				if names, err = provision.Clusters(stateDir); err != nil {
					return err
				}
				if len(names) == 0 {
					return usageErr(fmt.Errorf("no clusters in %s: run secprov up first", stateDir))
				}
			}
			wopts := verify.WriteOptions{Verbose: root.verbose > 0, ToolVersion: Version()}
			if flags.output == "sarif" {
				// Cluster records do not say which file a blueprint came
				// from, so SARIF reads the blueprints again to locate
				// results; before the suite runs, so a missing one is told
				// at once.
				if wopts.Blueprints, err = sarifBlueprints(flags.files, names); err != nil {
					return err
				}
				wopts.SrcRoot = sarifRoot(cmd.Context())
			}
			var att *attestation
			var inspect func(verify.Target) error
			if flags.attest != "" {
				if len(names) != 1 {
					return usageErr(fmt.Errorf("--attest signs one cluster's run: pass --cluster NAME (clusters: %s)", strings.Join(names, ", ")))
				}
				if att, err = prepareAttest(flags.attest, flags.key, flags.files, names[0]); err != nil {
					return err
				}
				inspect = att.inspect
			} else if flags.key != "" {
				return usageErr(errors.New("--key signs evidence: use it with --attest FILE"))
			}
			reps, err := verifyClusters(cmd.Context(), stateDir, names, filter, inspect)
			if err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return err
				}
				return usageErr(err) // an unknown or half-deleted cluster
			}
			if err := verify.WriteReports(s.Out, flags.output, reps, wopts); err != nil {
				return err
			}
			if att != nil {
				if err := att.write(cmd.Context(), stateDir, reps[0]); err != nil {
					return err
				}
				fmt.Fprintf(s.Err, "✓ signed evidence of %s written to %s\n", reps[0].Cluster, flags.attest)
			}
			var bad []string
			for _, r := range reps {
				if r.Failed(sev) {
					bad = append(bad, r.Cluster)
				}
			}
			if len(bad) > 0 {
				if flags.output == "text" {
					return &ExitError{Code: ExitFindings, Err: errors.New("checks failed on " + strings.Join(bad, ", "))}
				}
				return &ExitError{Code: ExitFindings}
			}
			return nil
		},
	}
	flags.verifyOpts.register(cmd)
	cmd.Flags().StringArrayVar(&flags.clusters, "cluster", nil, "cluster to verify (repeatable; default: all)")
	cmd.Flags().BoolVar(&flags.all, "all", false, "verify every cluster in the state directory")
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: "+strings.Join(verify.Formats, ", "))
	cmd.Flags().StringArrayVarP(&flags.files, "filename", "f", nil, "blueprint file or directory of the clusters, where -o sarif locates results and --attest finds the blueprints it binds (repeatable; default: the current directory)")
	cmd.Flags().StringVar(&flags.attest, "attest", "", "also write signed evidence of the run to FILE: an in-toto statement in a DSSE envelope, bound to the blueprint files, spec and cluster CA (one cluster)")
	cmd.Flags().StringVar(&flags.key, "key", "", "with --attest: sign with this local PEM private key (ECDSA P-256 or Ed25519) instead of the environment's Vault Transit key")
	completeClusters(cmd, "cluster")
	completeValues(cmd, "output", verify.Formats...)
	return cmd
}

// sarifBlueprints loads the blueprints of the named clusters from files
// (default: the current directory), where verify's SARIF locates results.
func sarifBlueprints(files, clusters []string) ([]*blueprints.Blueprint, error) {
	if len(files) == 0 {
		files = []string{"."}
	}
	bps, err := blueprints.Load(files...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("-o sarif locates results in the clusters' blueprints, and they have errors:\n%w", err))
	}
	var missing []string
	for _, c := range clusters {
		if !slices.ContainsFunc(bps, func(b *blueprints.Blueprint) bool { return b.Name() == c }) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, usageErr(fmt.Errorf("-o sarif locates results in the clusters' blueprints, and %s has none of %s: pass the blueprint files with -f", strings.Join(files, ", "), strings.Join(missing, ", ")))
	}
	return bps, nil
}
