package app

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision/paths"
)

func newStateCommand(s Streams, root *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect and repair the clusters' state backend",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStateUnlockCommand(s, root))
	return cmd
}

type stateUnlockFlags struct {
	cluster string
	force   bool
	stateFlags
}

func newStateUnlockCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &stateUnlockFlags{}
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Clear a cluster's state lock left by a run that died",
		Long: `Clear the lock a run that died (killed, crashed, machine lost) left on a
cluster's state, which makes every later up, down or plan of it fail with
"locked by another run".

The lock names the host, pid and user of the run that took it. unlock
refuses while that run is still alive on this host. It also clears the
operations the interrupted run left pending, so the next up redoes them. A run on another host
cannot be checked from here: make sure it is over, then add --force.
Reads the lock records of file:// and postgres:// backends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.cluster == "" {
				return usageErr(errors.New("--cluster is required (see secprov status)"))
			}
			if err := checkClusterNames([]string{flags.cluster}); err != nil {
				return err
			}
			if _, err := paths.StateDir(); err != nil {
				return err
			}
			e, err := openEnv(cmd.Context(), s, root, &flags.stateFlags)
			if err != nil {
				return err
			}
			rep, err := e.eng.Unlock(cmd.Context(), flags.cluster, flags.force)
			if rep != nil {
				for _, l := range rep.Removed {
					fmt.Fprintf(s.Out, "✓ removed the lock of %s held by %s\n", flags.cluster, l)
				}
				for _, op := range rep.Pending {
					fmt.Fprintf(s.Out, "✓ cleared the interrupted run's pending %s of %s; the next up redoes it\n", op.Type, op.URN)
				}
			}
			if err != nil {
				return err
			}
			if len(rep.Removed) == 0 {
				fmt.Fprintf(s.Out, "cluster %s is not locked\n", flags.cluster)
			} else {
				fmt.Fprintf(s.Out, "Run `secprov up` for %s to finish the interrupted work.\n", flags.cluster)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&flags.cluster, "cluster", "", "cluster whose lock to clear")
	completeClusters(cmd, "cluster")
	cmd.Flags().BoolVar(&flags.force, "force", false, "also remove a lock taken on another host (secprov cannot see whether that run is over)")
	flags.stateFlags.register(cmd)
	return cmd
}
