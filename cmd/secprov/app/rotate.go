package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/providers"
	"secprov.dev/secprov/vault"
)

func newRotateKeysCommand(s Streams) *cobra.Command {
	var cluster, output string
	var evidenceKey bool
	cmd := &cobra.Command{
		Use:   "rotate-keys --cluster NAME",
		Short: "Rotate a cluster's at-rest key in Vault and re-encrypt stored data",
		Long: `rotate-keys rotates the cluster's Vault transit key (the KMS v2 key
encrypting data at rest), waits until the API server encrypts with the new
key version (it polls its KMS plugin about once a minute), then rewrites
every stored object of the encrypted resources that is still under an older
version, and reports the counts. Older versions stay available for
decryption, so an interrupted run loses nothing: run it again to finish.

With --evidence-key it rotates the environment's evidence signing key
instead: new evidence is signed with the new version, and evidence signed
before still verifies against the version that signed it.

Exit codes: 0 done; 1 a step failed (the message says which); 2 usage
errors or no such cluster.`,
		Example: `  secprov rotate-keys --cluster shop-prod
  secprov rotate-keys --cluster shop-test -o json
  secprov rotate-keys --cluster shop-prod --evidence-key`,
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
			if evidenceKey {
				return rotateEvidenceKey(cmd, s, stateDir, cluster, output)
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
	cmd.Flags().BoolVar(&evidenceKey, "evidence-key", false, "rotate the environment's evidence signing key (verify --attest) instead of the at-rest key")
	completeClusters(cmd, "cluster")
	completeValues(cmd, "output", "text", "json")
	return cmd
}

// rotateEvidenceKey rotates the signing key of cluster's environment.
func rotateEvidenceKey(cmd *cobra.Command, s Streams, stateDir, cluster, output string) error {
	rec, err := provision.Record(stateDir, cluster)
	if err != nil {
		return usageErr(err)
	}
	if rec.Vault == nil {
		return usageErr(fmt.Errorf("cluster %s has no Vault, so no evidence signing key: sign with --key PEM instead", cluster))
	}
	spec, err := rec.DecodeSpec()
	if err != nil {
		return err
	}
	n := vault.NamesFor(rec.Name, spec)
	c, err := rec.Vault.Admin.Client(cmd.Context())
	if err != nil {
		return err
	}
	k, err := vault.NewSetupWithClient(c, nil).RotateSigningKey(cmd.Context(), n.TransitMount, n.SigningKey)
	if err != nil {
		return fmt.Errorf("rotate evidence key %s/%s: %w", n.TransitMount, n.SigningKey, err)
	}
	if output == "json" {
		return writeJSON(s.Out, map[string]any{"cluster": rec.Name, "environment": rec.Environment, "mount": n.TransitMount, "key": n.SigningKey, "latestVersion": k.LatestVersion})
	}
	fmt.Fprintf(s.Out, "%s: evidence key %s/%s of environment %s now at version %d; evidence signed before verifies against its own version\n",
		rec.Name, n.TransitMount, n.SigningKey, rec.Environment, k.LatestVersion)
	return nil
}
