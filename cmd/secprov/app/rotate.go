package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
)

func newRotateKeysCommand(s Streams) *cobra.Command {
	var cluster, output string
	cmd := &cobra.Command{
		Use:   "rotate-keys --cluster NAME",
		Short: "Rotate a cluster's at-rest key in Vault and re-encrypt stored data",
		Long: `rotate-keys rotates the cluster's Vault transit key (the KMS v2 key
encrypting data at rest), waits until the API server encrypts with the new
key version (it polls its KMS plugin about once a minute), then rewrites
every stored object of the encrypted resources that is still under an older
version, and reports the counts. Older versions stay available for
decryption, so an interrupted run loses nothing: run it again to finish.

Exit codes: 0 done; 1 a step failed (the message says which); 2 usage
errors or no such cluster.`,
		Example: `  secprov rotate-keys --cluster shop-prod
  secprov rotate-keys --cluster shop-test -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			if cluster == "" {
				return usageErr(fmt.Errorf("--cluster is required (see secprov status)"))
			}
			if err := checkClusterNames([]string{cluster}); err != nil {
				return err
			}
			stateDir, err := paths.StateDir()
			if err != nil {
				return err
			}
			t, err := provision.Target(providers.Registry(), stateDir, cluster)
			if err != nil {
				return usageErr(err)
			}
			if c, ok := t.(interface{ Close() error }); ok {
				defer c.Close()
			}
			started := map[string]time.Time{}
			step := func(name string, done bool, err error) {
				if output != "text" {
					return
				}
				if !done {
					started[name] = time.Now()
					return
				}
				mark := "✓"
				if err != nil {
					mark = "✗"
				}
				fmt.Fprintf(s.Err, "%s %-60s %s\n", mark, name, time.Since(started[name]).Round(10*time.Millisecond))
			}
			res, err := provision.RotateKeys(cmd.Context(), t, step)
			if output == "json" && res != nil {
				if jerr := writeJSON(s.Out, res); jerr != nil {
					return jerr
				}
			} else if res != nil && err == nil {
				fmt.Fprintf(s.Out, "%s: %s -> %s; %d object(s) rewritten, %d under the new key, %d stale (API server switched after %s)\n",
					res.Cluster, res.FromKeyID, res.ToKeyID, res.Rewritten, res.Current, res.Stale, res.Observed)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster whose key to rotate")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json")
	completeClusters(cmd, "cluster")
	completeValues(cmd, "output", "text", "json")
	return cmd
}
