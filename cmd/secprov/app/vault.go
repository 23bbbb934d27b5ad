package app

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/vaultserver"
)

func newVaultCommand(s Streams, root *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Inspect, stop or reset the local Vault (used when a blueprint has no spec.vault.address)",
		Long: `When a blueprint has no spec.vault.address, secprov runs one Vault server on
this machine for all the clusters it manages here, under <state dir>/vault:
loopback only, TLS from a CA of its own, its unseal key and root token in 0600
files next to its data. It is a local convenience; production blueprints name
a real Vault. secprov up starts and unseals it as needed.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newVaultStatusCommand(s), newVaultStopCommand(s, root), newVaultResetCommand(s, root))
	return cmd
}

// localVault is the local Vault of the current state dir. None of the
// vault subcommands starts it, so none needs the vault binary: asking the
// toolchain for it could mean a long build just to print a status.
func localVault(s Streams, root *rootFlags) (*vaultserver.Server, error) {
	stateDir, err := paths.StateDir()
	if err != nil {
		return nil, err
	}
	v := &vaultserver.Server{Dir: vaultserver.DirIn(stateDir)}
	if root != nil {
		v.Log = root.logger(s.Err)
	}
	return v, nil
}

type vaultStatusFlags struct {
	output string
}

func newVaultStatusCommand(s Streams) *cobra.Command {
	flags := &vaultStatusFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the local Vault runs, is initialized and unsealed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, "text", "json"); err != nil {
				return err
			}
			v, err := localVault(s, nil)
			if err != nil {
				return err
			}
			st, err := v.Status(cmd.Context())
			if err != nil {
				return err
			}
			if flags.output == "json" {
				return writeJSON(s.Out, st)
			}
			return printVaultStatus(s, st)
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	return cmd
}

func printVaultStatus(s Streams, st vaultserver.Status) error {
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	var state string
	switch {
	case !st.Running:
		state = "✗ not running (secprov up starts it when a blueprint has no spec.vault.address)"
	case st.Problem != "":
		state = fmt.Sprintf("✗ running (pid %d) but %s", st.Pid, st.Problem)
	default:
		parts := []string{fmt.Sprintf("running (pid %d)", st.Pid)}
		if st.Initialized {
			parts = append(parts, "initialized")
		} else {
			parts = append(parts, "not initialized")
		}
		if st.Sealed {
			parts = append(parts, "sealed")
		} else {
			parts = append(parts, "unsealed")
		}
		mark := "✓"
		if st.Sealed || !st.Initialized {
			mark = "✗"
		}
		state = mark + " " + strings.Join(parts, ", ")
		if st.Version != "" {
			state += ", v" + st.Version
		}
	}
	fmt.Fprintf(tw, "local Vault\t%s\n", state)
	if st.Address != "" {
		fmt.Fprintf(tw, "address\t%s\n", st.Address)
	}
	fmt.Fprintf(tw, "directory\t%s\n", st.Dir)
	fmt.Fprintf(tw, "log\t%s\n", st.LogFile)
	return tw.Flush()
}

func newVaultStopCommand(s Streams, root *rootFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the local Vault; its data and keys are kept, and secprov up starts it again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := localVault(s, root)
			if err != nil {
				return err
			}
			st, err := v.Status(cmd.Context())
			if err != nil {
				return err
			}
			if !st.Running {
				fmt.Fprintln(s.Err, "local Vault is not running")
				return nil
			}
			if err := v.Stop(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "✓ local Vault stopped (pid %d); its data stays in %s\n", st.Pid, v.Dir)
			return nil
		},
	}
}

type vaultResetFlags struct {
	yes bool
}

func newVaultResetCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &vaultResetFlags{}
	cmd := &cobra.Command{
		Use:   "reset --yes",
		Short: "Stop the local Vault and delete it with all its data, keys and tokens",
		Long: `Stop the local Vault and delete its directory: every transit key, KV secret,
policy and role in it, its unseal key and root token. Clusters that use it can
no longer decrypt what they encrypted with it; run secprov up again for them
afterwards (or secprov down first). Use it when the local Vault cannot be
unsealed any more (its init.json is lost) or to start over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := localVault(s, root)
			if err != nil {
				return err
			}
			if !flags.yes {
				return usageErr(fmt.Errorf("reset deletes the local Vault in %s with every key and secret in it; run again with --yes to confirm", v.Dir))
			}
			if _, err := os.Stat(v.Dir); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(s.Err, "no local Vault in %s\n", v.Dir)
				return nil
			}
			if err := v.Destroy(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "✓ local Vault deleted (%s)\n", v.Dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&flags.yes, "yes", false, "confirm that the local Vault and all its data are to be deleted")
	return cmd
}
