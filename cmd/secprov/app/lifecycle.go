package app

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
)

type planFlags struct {
	blueprintFlags
	stateFlags
	output string
}

func newPlanCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &planFlags{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what up would create, change or delete, per cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, "text", "json"); err != nil {
				return err
			}
			bps, err := flags.load()
			if err != nil {
				return err
			}
			types, err := providerTypes(bps)
			if err != nil {
				return usageErr(err)
			}
			if err := flags.checkSecretsProvider(); err != nil {
				return err
			}
			e, err := openEnv(cmd.Context(), s, root, &flags.stateFlags, types...)
			if err != nil {
				return err
			}
			if err := e.prov.Check(cmd.Context(), bps); err != nil {
				return usageErr(err)
			}
			results := e.prov.Plan(cmd.Context(), bps, nil)
			var errs []error
			type planJSON struct {
				Cluster   string                  `json:"cluster"`
				Resources []engine.ResourceChange `json:"resources"`
				Counts    map[string]int          `json:"counts"`
				Error     string                  `json:"error,omitempty"`
			}
			var out []planJSON
			for _, r := range results {
				pj := planJSON{Cluster: r.Cluster, Resources: []engine.ResourceChange{}}
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", r.Cluster, r.Err))
					pj.Error = r.Err.Error()
				}
				if r.Plan != nil {
					pj.Resources = r.Plan.Resources
					pj.Counts = countsOf(r.Plan.Counts)
				}
				out = append(out, pj)
				if flags.output == "text" {
					printPlan(s, r)
				}
			}
			if flags.output == "json" {
				if err := writeJSON(s.Out, out); err != nil {
					return err
				}
			}
			if len(errs) > 0 {
				return &ExitError{Code: 1, Err: errors.Join(errs...)}
			}
			return nil
		},
	}
	flags.blueprintFlags.register(cmd)
	flags.stateFlags.register(cmd)
	flags.stateFlags.registerSecrets(cmd)
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	return cmd
}

var planMark = map[engine.Op]string{engine.OpCreate: "+", engine.OpUpdate: "~", engine.OpReplace: "+-", engine.OpDelete: "-", engine.OpSame: " "}

func printPlan(s Streams, r provision.ClusterResult) {
	fmt.Fprintf(s.Out, "Cluster %s:\n", r.Cluster)
	if r.Err != nil {
		fmt.Fprintf(s.Out, "  ✗ %v\n", r.Err)
		return
	}
	if !r.Plan.HasChanges() {
		fmt.Fprintln(s.Out, "  no changes")
		return
	}
	for _, rc := range r.Plan.Resources {
		if rc.Op == engine.OpSame {
			continue
		}
		mark := planMark[rc.Op]
		if mark == "" {
			mark = "?"
		}
		fmt.Fprintf(s.Out, "  %-2s %-8s %s\n", mark, rc.Op, resourceLabel(rc.Type, rc.Name))
		for _, c := range rc.Changes {
			extra := ""
			if c.Replace {
				extra = " (forces replacement)"
			}
			fmt.Fprintf(s.Out, "       %s %s%s\n", c.Kind, c.Path, extra)
		}
	}
	fmt.Fprintf(s.Out, "  %s\n", describeCounts(countsOf(r.Plan.Counts)))
}

type downFlags struct {
	stateFlags
	clusters []string
	all      bool
}

func newDownCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &downFlags{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Delete clusters: stop their processes and remove their state, keys and files",
		Long: `down deletes the named clusters: it stops their processes and removes their
state, keys and files.

Every name must be a cluster secprov knows (see secprov status): a name that
is not a cluster name, or one with neither a directory nor state, stops the
command before anything is deleted or any tool is obtained.

Exit codes: 0 deleted; 1 a deletion failed (run down again to retry);
2 usage errors or no such cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stateDir, err := paths.StateDir()
			if err != nil {
				return err
			}
			if err := checkClusterNames(flags.clusters); err != nil {
				return err
			}
			names := flags.clusters
			if flags.all {
				if names, err = provision.Clusters(stateDir); err != nil {
					return err
				}
			}
			if len(names) == 0 {
				if flags.all {
					fmt.Fprintln(s.Err, "no clusters")
					return nil
				}
				return usageErr(errors.New("name the cluster to delete with --cluster NAME (see secprov status), or use --all"))
			}
			// Refuse a typo before the toolchain is obtained (a download
			// or a long build) and before any cluster is touched.
			if err := checkClustersKnown(stateDir, flags.backendURL(), names); err != nil {
				return err
			}
			e, err := openEnv(cmd.Context(), s, root, &flags.stateFlags)
			if err != nil {
				return err
			}
			printer := newStepPrinter(s.Err, names, root.verbose > 0)
			var errs []error
			unknown := 0
			for _, r := range e.prov.Down(cmd.Context(), names, printer.event) {
				if errors.Is(r.Err, provision.ErrUnknownCluster) {
					unknown++
					errs = append(errs, r.Err)
					continue
				}
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", r.Cluster, r.Err))
					fmt.Fprintf(s.Err, "✗ %s: %v\n", r.Cluster, r.Err)
					continue
				}
				fmt.Fprintf(s.Err, "✓ %s deleted\n", r.Cluster)
			}
			if unknown == len(errs) && unknown > 0 {
				return usageErr(errors.Join(errs...))
			}
			if len(errs) > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%w\nrun secprov down again to retry", errors.Join(errs...))}
			}
			return nil
		},
	}
	flags.stateFlags.register(cmd)
	cmd.Flags().StringArrayVar(&flags.clusters, "cluster", nil, "cluster to delete (repeatable)")
	completeClusters(cmd, "cluster")
	cmd.Flags().BoolVar(&flags.all, "all", false, "delete every cluster")
	return cmd
}

type statusFlags struct {
	output string
	stateFlags
}

func newStatusCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the clusters secprov manages and whether their components run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, "text", "json"); err != nil {
				return err
			}
			stateDir, err := paths.StateDir()
			if err != nil {
				return err
			}
			sts, err := provision.Status(cmd.Context(), providers.Registry(), stateDir)
			if err != nil {
				return err
			}
			// A shared backend may hold clusters made from elsewhere.
			if flags.backendURL() != "" {
				e, err := openEnv(cmd.Context(), s, root, &flags.stateFlags)
				if err != nil {
					return err
				}
				more, err := provision.BackendStatus(cmd.Context(), e.eng, stateDir)
				if err != nil {
					return err
				}
				sts = append(sts, more...)
			}
			if flags.output == "json" {
				return writeJSON(s.Out, map[string]any{"stateDir": stateDir, "clusters": sts})
			}
			if len(sts) == 0 {
				fmt.Fprintf(s.Out, "no clusters in %s\n", stateDir)
				return nil
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tENV\tPROVIDER\tSTATE SECRETS\tAPI SERVER\tCOMPONENTS")
			for _, c := range sts {
				var comps []string
				for _, cp := range c.Components {
					mark := "✓"
					if !cp.Running {
						mark = "✗"
					}
					comps = append(comps, mark+" "+cp.Name)
				}
				if c.Problem != "" && len(comps) == 0 {
					comps = []string{"✗ " + c.Problem}
				}
				secrets := c.StateSecrets
				if secrets == "" {
					secrets = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Environment, c.Provider, secrets, c.APIServerURL, strings.Join(comps, "  "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	flags.stateFlags.register(cmd)
	return cmd
}

type kubeconfigFlags struct {
	cluster string
	path    bool
}

func newKubeconfigCommand(s Streams) *cobra.Command {
	flags := &kubeconfigFlags{}
	cmd := &cobra.Command{
		Use:   "kubeconfig --cluster NAME",
		Short: "Print a cluster's admin kubeconfig (secprov:admin, bound to cluster-admin through RBAC)",
		Example: `  secprov kubeconfig --cluster shop-prod > prod.kubeconfig
  export KUBECONFIG=$(secprov kubeconfig --cluster shop-test --path)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.cluster == "" {
				return usageErr(errors.New("--cluster is required (see secprov status)"))
			}
			if err := checkClusterNames([]string{flags.cluster}); err != nil {
				return err
			}
			stateDir, err := paths.StateDir()
			if err != nil {
				return err
			}
			rec, err := provision.Record(stateDir, flags.cluster)
			if err != nil {
				return usageErr(err)
			}
			if flags.path {
				_, err := fmt.Fprintln(s.Out, rec.Kubeconfig)
				return err
			}
			data, err := os.ReadFile(rec.Kubeconfig)
			if err != nil {
				return fmt.Errorf("%w; run secprov up to write it again", err)
			}
			_, err = s.Out.Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&flags.cluster, "cluster", "", "cluster name")
	completeClusters(cmd, "cluster")
	cmd.Flags().BoolVar(&flags.path, "path", false, "print the file's path instead of its content")
	return cmd
}
