package app

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/hardening/verify/evidence"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/vault"
)

// attestation is what `verify --attest` gathers beside the report.
type attestation struct {
	file    string
	keyFile string
	files   []evidence.BlueprintFile
	spec    *blueprints.Blueprint
	caDER   []byte
}

// prepareAttest loads the blueprint files that define the cluster, before
// the suite runs, so a missing one is told at once.
func prepareAttest(file, keyFile string, files []string, clusterName string) (*attestation, error) {
	if len(files) == 0 {
		files = []string{"."}
	}
	bps, err := blueprints.Load(files...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--attest binds the evidence to the cluster's blueprints, and they have errors:\n%w", err))
	}
	a := &attestation{file: file, keyFile: keyFile}
	var sources []string
	for _, bp := range bps {
		if bp.Name() == clusterName {
			a.spec = bp
		}
	}
	if a.spec == nil {
		return nil, usageErr(fmt.Errorf("--attest: %s holds no blueprint of cluster %s: pass its blueprint files with -f", strings.Join(files, ", "), clusterName))
	}
	// Every file that holds the cluster's blueprint (a multi-document file
	// may hold others too): what produced this cluster, not its peers.
	for _, bp := range bps {
		if bp.Name() == clusterName && !slices.Contains(sources, bp.Source.File) {
			sources = append(sources, bp.Source.File)
		}
	}
	slices.Sort(sources)
	for _, f := range sources {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		a.files = append(a.files, evidence.BlueprintFile{Name: filepath.Base(f), Data: b})
	}
	return a, nil
}

// inspect takes what the statement needs from the open target: the CA
// the admin kubeconfig trusts the API server with, and the applied spec,
// which must be the blueprint's.
func (a *attestation) inspect(t verify.Target) error {
	info := t.Info()
	want, err := evidence.SpecDigest(a.spec.Spec)
	if err != nil {
		return err
	}
	got, err := evidence.SpecDigest(info.Spec)
	if err != nil {
		return err
	}
	if want != got {
		return usageErr(fmt.Errorf("--attest: the blueprint of %s in %s differs from the spec the cluster was last applied from: run secprov up -f with it first, or pass the blueprints the cluster was made from", info.Name, a.spec.Source.File))
	}
	cfg, err := t.RESTConfig()
	if err != nil {
		return err
	}
	data := cfg.CAData
	if len(data) == 0 && cfg.CAFile != "" {
		if data, err = os.ReadFile(cfg.CAFile); err != nil {
			return fmt.Errorf("--attest: cluster CA: %w", err)
		}
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("--attest: cluster %s: no CA certificate in its admin kubeconfig", info.Name)
	}
	a.caDER = blk.Bytes
	return nil
}

// signer is the local key of --key, else the environment's Vault Transit
// key with the token `up` minted for it.
func (a *attestation) signer(ctx context.Context, rec *cluster.Record) (evidence.Signer, error) {
	if a.keyFile != "" {
		s, err := evidence.LoadPEMSigner(a.keyFile)
		return s, usageErr(err)
	}
	if rec.Vault == nil {
		return nil, usageErr(fmt.Errorf("--attest: cluster %s has no Vault to sign with: pass --key with a local PEM signing key", rec.Name))
	}
	spec, err := rec.DecodeSpec()
	if err != nil {
		return nil, err
	}
	n := vault.NamesFor(rec.Name, spec)
	tokenFile := paths.NewLayout(rec.Dir).EvidenceToken()
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("--attest: cluster %s has no evidence signing token (%s): run secprov up to create the %s signing key, or pass --key", rec.Name, tokenFile, rec.Environment)
	}
	c, err := vault.Access{Address: rec.Vault.Admin.Address, CAFile: rec.Vault.Admin.CAFile, TokenFile: tokenFile}.Client(ctx)
	if err != nil {
		return nil, err
	}
	return &evidence.TransitSigner{Client: c, Mount: n.TransitMount, Key: n.SigningKey}, nil
}

// write signs the report and writes the envelope; on any failure no file
// is left under the signed name.
func (a *attestation) write(ctx context.Context, stateDir string, rep *verify.Report) error {
	rec, err := provision.Record(stateDir, rep.Cluster)
	if err != nil {
		return err
	}
	s, err := a.signer(ctx, rec)
	if err != nil {
		return err
	}
	in := evidence.Input{Report: rep, Blueprints: a.files, Spec: a.spec.Spec, CACertDER: a.caDER, Time: time.Now().UTC(), Version: Version()}
	if err := evidence.WriteFile(ctx, a.file, s, in); err != nil {
		return fmt.Errorf("--attest: %w; %s was not written", err, a.file)
	}
	return nil
}

func newEvidenceCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Check signed verify evidence and export its keys",
		Long: `evidence works with the signed statements secprov verify --attest writes: an
in-toto Statement (v1, predicate test-result v0.1) in a DSSE envelope that
binds a verify report to the blueprint files, the defaulted spec and the
cluster CA, signed with the environment's key in Vault Transit (or a local
PEM key). Any DSSE verifier checks the signature with the exported public key.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newEvidenceVerifyCommand(s), newEvidenceKeysCommand(s), newEvidenceExportCommand(s))
	return cmd
}

type evidenceVerifyFlags struct {
	blueprints string
	rev        string
	keyFile    string
	vault      bool
}

func newEvidenceVerifyCommand(s Streams) *cobra.Command {
	flags := &evidenceVerifyFlags{}
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a signed verify statement: signature, key environment, blueprints, exceptions",
		Long: `verify checks an envelope written by secprov verify --attest: the signature
(with the public keys of --key, or those of every environment's signing key
in Vault with --vault), that the signing key belongs to the environment the
statement claims, with --blueprints that the blueprint files in DIR are the
ones the statement names byte for byte and default to the same spec, and
that no exception the run relied on has expired since. It prints a summary.

Exit codes: 0 the evidence holds; 1 any check failed (the message names the
subject or signature); 2 usage errors.`,
		Example: `  secprov evidence keys -o pem > keys.pem
  secprov evidence verify shop-prod.dsse.json --key keys.pem --blueprints blueprints/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (flags.keyFile == "") == !flags.vault {
				return usageErr(errors.New("pass exactly one of --key PEM and --vault"))
			}
			env, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr(err)
			}
			keys, err := verificationKeys(cmd.Context(), flags.keyFile)
			if err != nil {
				return err
			}
			if flags.rev != "" && flags.blueprints == "" {
				return usageErr(errors.New("--rev reads the blueprints at a git revision: pass --blueprints DIR too"))
			}
			v, err := evidence.Verify(cmd.Context(), env, evidence.VerifyOptions{Keys: keys, BlueprintsDir: flags.blueprints, BlueprintsRev: flags.rev, Now: time.Now()})
			if v != nil {
				printEvidenceSummary(s, args[0], v)
			}
			if err != nil {
				return &ExitError{Code: ExitFindings, Err: fmt.Errorf("%s: evidence rejected:\n%w", args[0], err)}
			}
			fmt.Fprintf(s.Out, "✓ %s holds\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&flags.blueprints, "blueprints", "", "directory holding the blueprint files the statement names; each must match byte for byte")
	cmd.Flags().StringVar(&flags.rev, "rev", "", "with --blueprints: read them as they are at this git revision (commit, tag, branch) of the repository holding DIR")
	cmd.Flags().StringVar(&flags.keyFile, "key", "", "PEM file of public keys (secprov evidence keys -o pem)")
	cmd.Flags().BoolVar(&flags.vault, "vault", false, "verify with the signing keys of every environment in the state directory's Vaults")
	return cmd
}

func printEvidenceSummary(s Streams, file string, v *evidence.Verified) {
	w := s.Out
	fmt.Fprintf(w, "evidence   %s\n", file)
	fmt.Fprintf(w, "cluster    %s (environment %s, provider %s)\n", v.Cluster, v.Environment, v.Provider)
	fmt.Fprintf(w, "when       %s\n", v.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "result     %s: %d passed, %d warned, %d failed, %d skipped\n", v.Result, len(v.Passed), len(v.Warned), len(v.Failed), v.Report.Summary.Skipped)
	env := v.KeyEnvironment
	if env == "" {
		env = "none stated"
	}
	fmt.Fprintf(w, "signed by  %s (%s; environment %s)\n", v.KeyID, v.KeySource, env)
	fmt.Fprintf(w, "secprov    %s, control catalog sha256:%s\n", v.Version, v.CatalogDigest)
	if v.BlueprintsChecked {
		fmt.Fprintf(w, "blueprints checked on disk: %d file(s)\n", len(v.Blueprints))
	} else {
		fmt.Fprintf(w, "blueprints not checked (pass --blueprints DIR)\n")
	}
	for _, x := range v.Exceptions {
		state := "in force"
		if slices.Contains(v.ExpiredSince, x) {
			state = "EXPIRED since"
		}
		fmt.Fprintf(w, "exception  %s until %s (%s): %s\n", x.Control, x.Expires, state, x.Justification)
	}
}

// vaultSigningKeys reads the public keys of the signing key of every
// cluster in the state directory (or only clusterName), each marked with
// its cluster's environment.
func vaultSigningKeys(ctx context.Context, clusterName string) ([]evidence.PublicKey, error) {
	stateDir, err := paths.StateDir()
	if err != nil {
		return nil, err
	}
	names, err := provision.Clusters(stateDir)
	if err != nil {
		return nil, err
	}
	var keys []evidence.PublicKey
	for _, name := range names {
		if clusterName != "" && name != clusterName {
			continue
		}
		rec, err := provision.Record(stateDir, name)
		if err != nil {
			return nil, err
		}
		if rec.Vault == nil {
			continue
		}
		spec, err := rec.DecodeSpec()
		if err != nil {
			return nil, err
		}
		n := vault.NamesFor(rec.Name, spec)
		c, err := rec.Vault.Admin.Client(ctx)
		if err != nil {
			return nil, err
		}
		ks, err := evidence.TransitPublicKeys(ctx, c, n.TransitMount, n.SigningKey, rec.Environment)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return nil, usageErr(fmt.Errorf("no signing keys in %s: no cluster with a Vault (run secprov up, or verify with --key)", stateDir))
	}
	return keys, nil
}

type evidenceKeysFlags struct {
	output      string
	cluster     string
	keyFile     string
	environment string
}

func newEvidenceKeysCommand(s Streams) *cobra.Command {
	flags := &evidenceKeysFlags{}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Export the public keys that verify evidence, as PEM",
		Long: `keys writes the public keys of every environment's evidence signing key
(every version, so evidence signed before a rotation still verifies) as PEM
blocks whose headers name the key ID and environment. With --key and
--environment it exports the public half of a local signing key instead.`,
		Example: `  secprov evidence keys -o pem > keys.pem
  secprov evidence keys --key signing.pem --environment prod > prod.pub.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(flags.output, "pem"); err != nil {
				return err
			}
			var keys []evidence.PublicKey
			if flags.keyFile != "" {
				if flags.environment == "" {
					return usageErr(errors.New("--key needs --environment: the exported key names the environment it signs for"))
				}
				sg, err := evidence.LoadPEMSigner(flags.keyFile)
				if err != nil {
					return usageErr(err)
				}
				keys = []evidence.PublicKey{sg.Public(flags.environment, filepath.Base(flags.keyFile))}
			} else {
				var err error
				if keys, err = vaultSigningKeys(cmd.Context(), flags.cluster); err != nil {
					return err
				}
			}
			out, err := evidence.EncodePublicKeys(keys)
			if err != nil {
				return err
			}
			_, err = s.Out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "pem", "output format: pem")
	cmd.Flags().StringVar(&flags.cluster, "cluster", "", "only this cluster's environment key (default: all)")
	cmd.Flags().StringVar(&flags.keyFile, "key", "", "export the public half of this local PEM signing key")
	cmd.Flags().StringVar(&flags.environment, "environment", "", "environment the --key signs for")
	completeClusters(cmd, "cluster")
	completeValues(cmd, "output", "pem")
	return cmd
}

// verificationKeys are the public keys of keyFile (PEM), or with no file
// those of every environment's signing key in the state directory's
// Vaults.
func verificationKeys(ctx context.Context, keyFile string) ([]evidence.PublicKey, error) {
	if keyFile == "" {
		return vaultSigningKeys(ctx, "")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, usageErr(err)
	}
	keys, err := evidence.ParsePublicKeys(b, keyFile)
	if err != nil {
		return nil, usageErr(err)
	}
	return keys, nil
}
