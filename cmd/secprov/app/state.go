package app

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
)

func newStateCommand(s Streams, root *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect and repair the clusters' state backend",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStateUnlockCommand(s, root))
	cmd.AddCommand(newStateRekeyCommand(s, root))
	return cmd
}

type stateRekeyFlags struct {
	cluster string
	to      string
	output  string
	stateFlags
}

func newStateRekeyCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &stateRekeyFlags{}
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Move a cluster's state secrets between a passphrase and Vault Transit",
		Long: `Re-encrypt the secrets in a cluster's state with another secrets provider:
--to vault makes (or reuses) a Transit key for the cluster in its Vault
and a token that can only encrypt and decrypt with it; --to passphrase
goes back to SECPROV_PASSPHRASE (or the generated passphrase file);
--to hashivault://KEY?engine=MOUNT uses a key you manage (with VAULT_ADDR
and VAULT_TOKEN).

The engine decrypts every secret with the current provider and writes the
state once, encrypted with the new one: an error leaves it as it was.
Set spec.state.secretsProvider to match, or the next up refuses the
mismatch. Moving away from vault keeps the Vault key: the backend's
history and backups of the state were encrypted with it; down removes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.cluster == "" || flags.to == "" {
				return usageErr(errors.New("--cluster and --to are required (see secprov status)"))
			}
			if err := checkOutput(flags.output, "text", "json"); err != nil {
				return err
			}
			flags.secretsProvider = flags.to
			if err := flags.checkSecretsProvider(); err != nil {
				return err
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
				return &ExitError{Code: 2, Err: err}
			}
			spec, err := rec.DecodeSpec()
			if err != nil {
				return err
			}
			e, err := openEnv(cmd.Context(), s, root, &flags.stateFlags)
			if err != nil {
				return err
			}
			from, err := e.eng.StateProvider(cmd.Context(), flags.cluster)
			if err != nil {
				return err
			}
			to, err := e.prov.StateSecretsFor(cmd.Context(), flags.cluster, spec, flags.to)
			if err != nil {
				return err
			}
			if err := e.eng.Rekey(cmd.Context(), flags.cluster, to); err != nil {
				return err
			}
			after, err := e.eng.StateProvider(cmd.Context(), flags.cluster)
			if err != nil {
				return err
			}
			if flags.output == "json" {
				return writeJSON(s.Out, map[string]string{"cluster": flags.cluster, "from": from, "to": after})
			}
			fmt.Fprintf(s.Out, "✓ the state secrets of %s were encrypted with %s and now with %s\n", flags.cluster, engine.DescribeProvider(from), engine.DescribeProvider(after))
			return nil
		},
	}
	cmd.Flags().StringVar(&flags.cluster, "cluster", "", "cluster whose state to re-encrypt")
	completeClusters(cmd, "cluster")
	cmd.Flags().StringVar(&flags.to, "to", "", "new secrets provider: vault, passphrase or hashivault://KEY?engine=MOUNT")
	completeValues(cmd, "to", "vault", "passphrase")
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	flags.stateFlags.register(cmd)
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
