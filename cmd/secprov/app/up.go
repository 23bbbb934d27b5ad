package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
)

type upFlags struct {
	blueprintFlags
	stateFlags
	verifyOpts
	output   string
	noVerify bool
}

func newUpCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create or update every cluster in the blueprints, then verify them",
		Long: `up creates or updates one separate, hardened cluster per blueprint (prod and
test concurrently) and then runs the verify check suite against each.
It is idempotent: a second up reports no changes; a component that died is
restarted with its data; an interrupted up converges when run again.
Blueprint errors stop it before anything is created.`,
		Example: `  secprov up -f blueprints/examples
  secprov up -f blueprints/ --only prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, "text", "json"); err != nil {
				return err
			}
			bps, err := flags.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			types, err := providerTypes(bps)
			if err != nil {
				return usageErr(fmt.Errorf("nothing was changed: %w", err))
			}
			if err := flags.checkSecretsProvider(); err != nil {
				return err
			}
			e, err := openEnv(ctx, s, root, &flags.stateFlags, types...)
			if err != nil {
				return err
			}
			if err := e.prov.Check(ctx, bps); err != nil {
				return usageErr(fmt.Errorf("nothing was changed: %w", err))
			}
			names := clusterNames(bps)
			for cluster, notes := range e.prov.Notes(bps) {
				for _, n := range notes {
					fmt.Fprintf(s.Err, "note: %s: %s\n", cluster, n)
				}
			}
			fmt.Fprintf(s.Err, "Bringing up %s\n", joinNames(names))
			printer := newStepPrinter(s.Err, names, root.verbose > 0)
			results := e.prov.Up(ctx, bps, printer.event)

			summary := upSummary{Clusters: []clusterSummary{}}
			var failed []error
			for _, r := range results {
				cs := clusterSummary{Name: r.Cluster, Kubeconfig: kubeconfigPath(e.stateDir, r.Cluster)}
				if r.Result != nil {
					cs.Changes = countsOf(r.Result.Counts)
				}
				if r.Err != nil {
					cs.Error = r.Err.Error()
					failed = append(failed, fmt.Errorf("%s: %w", r.Cluster, r.Err))
					fmt.Fprintf(s.Err, "✗ %s failed: %v\n", r.Cluster, r.Err)
					fmt.Fprintf(s.Err, "  nothing is lost: fix the cause and run secprov up again to continue, or secprov down --cluster %s to remove it\n", r.Cluster)
				} else {
					fmt.Fprintf(s.Err, "✓ %s ready (%s)\n", r.Cluster, describeCounts(cs.Changes))
				}
				summary.Clusters = append(summary.Clusters, cs)
			}
			var verifyFailed bool
			if !flags.noVerify {
				ok := okClusters(results)
				reps, vErr := runVerify(ctx, s, e.stateDir, ok, flags.verifyOpts, flags.output == "json")
				if vErr != nil {
					return vErr
				}
				for i := range summary.Clusters {
					for _, rep := range reps {
						if rep.Cluster == summary.Clusters[i].Name {
							summary.Clusters[i].Verify = rep
						}
					}
				}
				verifyFailed = verifyFails(reps, flags.verifyOpts)
			}
			summary.Seconds = time.Since(start).Seconds()
			if flags.output == "json" {
				if err := writeJSON(s.Out, summary); err != nil {
					return err
				}
			} else if len(failed) == 0 {
				fmt.Fprintf(s.Out, "\n%d cluster(s) up in %.1fs. Use them with:\n", len(results), summary.Seconds)
				for _, c := range summary.Clusters {
					fmt.Fprintf(s.Out, "  export KUBECONFIG=%s   # %s\n", c.Kubeconfig, c.Name)
				}
			}
			if len(failed) > 0 {
				return &ExitError{Code: 1, Err: errors.Join(failed...)}
			}
			if verifyFailed {
				return &ExitError{Code: ExitFindings}
			}
			return nil
		},
	}
	flags.blueprintFlags.register(cmd)
	flags.stateFlags.register(cmd)
	flags.stateFlags.registerSecrets(cmd)
	flags.verifyOpts.register(cmd)
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json (progress always goes to stderr)")
	completeValues(cmd, "output", "text", "json")
	cmd.Flags().BoolVar(&flags.noVerify, "no-verify", false, "skip the check suite after up")
	return cmd
}

type upSummary struct {
	Clusters []clusterSummary `json:"clusters"`
	Seconds  float64          `json:"seconds"`
}

type clusterSummary struct {
	Name       string         `json:"name"`
	Changes    map[string]int `json:"changes,omitempty"`
	Error      string         `json:"error,omitempty"`
	Kubeconfig string         `json:"kubeconfig"`
	Verify     any            `json:"verify,omitempty"`
}

func clusterNames(bps []*blueprints.Blueprint) []string {
	out := make([]string, len(bps))
	for i, bp := range bps {
		out[i] = bp.Name()
	}
	return out
}

func okClusters(results []provision.ClusterResult) []string {
	var out []string
	for _, r := range results {
		if r.Err == nil {
			out = append(out, r.Cluster)
		}
	}
	return out
}

func kubeconfigPath(stateDir, cluster string) string {
	dir, err := paths.ClusterDir(stateDir, cluster)
	if err != nil {
		return "" // blueprint names are cluster names; loading checked them
	}
	return filepath.Join(dir, "admin.kubeconfig")
}

func countsOf(m map[engine.Op]int) map[string]int {
	out := map[string]int{}
	for op, n := range m {
		if n > 0 {
			out[string(op)] = n
		}
	}
	return out
}

func describeCounts(c map[string]int) string {
	if len(c) == 0 {
		return "no resources"
	}
	var ops []string
	for op := range c {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	s := ""
	for i, op := range ops {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", c[op], op)
	}
	return s
}

func joinNames(names []string) string {
	switch len(names) {
	case 1:
		return names[0]
	case 2:
		return names[0] + " and " + names[1]
	}
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return usageErr(fmt.Errorf("unknown output format %q: use %v", got, allowed))
}
