package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/hardening/verify/evidence"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/paths"
)

type evidenceExportFlags struct {
	format  string
	out     string
	keyFile string
	vault   bool
	apply   bool
}

func newEvidenceExportCommand(s Streams) *cobra.Command {
	flags := &evidenceExportFlags{}
	cmd := &cobra.Command{
		Use:   "export FILE",
		Short: "Export checked evidence as an OpenReports ClusterReport or OSCAL assessment results",
		Long: `export checks an envelope as evidence verify does (signature and key
environment; --key or --vault), then writes the run for the tools auditors
and policy dashboards read, each naming the envelope by its sha256:

  policyreport  an OpenReports ClusterReport (openreports.io/v1alpha1, the
                PolicyReport successor): one result per check; --apply also
                stores it in the cluster the statement names (defining
                ClusterReports there if OpenReports is not installed)
  oscal         NIST OSCAL 1.1 assessment results: a finding and an
                observation per check, the envelope in the back matter

Exit codes: 0 written; 1 the evidence did not hold; 2 usage errors.`,
		Example: `  secprov evidence export shop-prod.dsse.json --vault --format oscal -o shop-prod.oscal.json
  secprov evidence export shop-prod.dsse.json --vault --format policyreport --apply`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (flags.keyFile == "") == !flags.vault {
				return usageErr(errors.New("pass exactly one of --key PEM and --vault: only checked evidence is exported"))
			}
			if flags.apply && flags.format != "policyreport" {
				return usageErr(errors.New("--apply stores a ClusterReport: use it with --format policyreport"))
			}
			env, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr(err)
			}
			keys, err := verificationKeys(cmd.Context(), flags.keyFile)
			if err != nil {
				return err
			}
			v, err := evidence.Verify(cmd.Context(), env, evidence.VerifyOptions{Keys: keys, Now: time.Now()})
			if err != nil {
				return &ExitError{Code: ExitFindings, Err: fmt.Errorf("%s: evidence rejected, nothing exported:\n%w", args[0], err)}
			}
			digest := evidence.EnvelopeDigest(env)
			var data []byte
			switch flags.format {
			case "policyreport":
				rep, err := evidence.ClusterReport(v.Claims, digest)
				if err != nil {
					return err
				}
				if data, err = yaml.Marshal(rep); err != nil {
					return err
				}
				if flags.apply {
					stateDir, err := paths.StateDir()
					if err != nil {
						return err
					}
					rec, err := provision.Record(stateDir, v.Cluster)
					if err != nil {
						return fmt.Errorf("--apply: the statement names cluster %s: %w", v.Cluster, err)
					}
					cfg, err := clientcmd.BuildConfigFromFlags("", rec.Kubeconfig)
					if err != nil {
						return err
					}
					if err := evidence.ApplyClusterReport(cmd.Context(), cfg, rep); err != nil {
						return fmt.Errorf("cluster %s: %w", v.Cluster, err)
					}
					fmt.Fprintf(s.Err, "✓ ClusterReport %s applied to cluster %s\n", rep.Name, v.Cluster)
				}
			case "oscal":
				doc, err := evidence.OSCAL(v.Claims, filepath.Base(args[0]), digest)
				if err != nil {
					return err
				}
				if data, err = json.MarshalIndent(doc, "", "  "); err != nil {
					return err
				}
				if err := evidence.CheckOSCAL(data); err != nil {
					return fmt.Errorf("the OSCAL export is incomplete (a bug): %w", err)
				}
				data = append(data, '\n')
			default:
				return usageErr(fmt.Errorf("--format %q: use policyreport or oscal", flags.format))
			}
			if flags.out == "" || flags.out == "-" {
				_, err = s.Out.Write(data)
				return err
			}
			return atomicfile.Write(flags.out, data, 0o644)
		},
	}
	cmd.Flags().StringVar(&flags.format, "format", "policyreport", "policyreport (OpenReports ClusterReport, YAML) or oscal (assessment results, JSON)")
	cmd.Flags().StringVarP(&flags.out, "output-file", "O", "", "write to this file instead of standard output")
	cmd.Flags().StringVar(&flags.keyFile, "key", "", "PEM file of public keys (secprov evidence keys -o pem)")
	cmd.Flags().BoolVar(&flags.vault, "vault", false, "check with the signing keys of every environment in the state directory's Vaults")
	cmd.Flags().BoolVar(&flags.apply, "apply", false, "with --format policyreport: also apply the ClusterReport to the cluster the statement names")
	return cmd
}
