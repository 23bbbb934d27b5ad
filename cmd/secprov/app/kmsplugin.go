package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/vault"
	"secprov.dev/secprov/vault/kms"
)

type kmsPluginFlags struct {
	socket    string
	vaultAddr string
	caFile    string
	tokenFile string
	mount     string
	key       string
	timeout   time.Duration
	logFormat string
}

func newKMSPluginCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &kmsPluginFlags{}
	cmd := &cobra.Command{
		Use:   "kms-plugin --socket PATH --vault-addr URL --token-file FILE --transit-mount M --transit-key K",
		Short: "Serve the Kubernetes KMS v2 plugin backed by Vault Transit",
		Long: `kms-plugin is run by secprov beside the control plane; not for humans.

It serves the Kubernetes KMS v2 gRPC API on a unix socket for the
kube-apiserver's EncryptionConfiguration (kms: apiVersion v2, endpoint
unix://PATH), wrapping the apiserver's data keys with the cluster's Vault
transit key. The socket's directory must exist with mode 0700; the socket is
created 0600. The token file (0600) holds the plugin's own token, which may
only encrypt and decrypt with that key and read it; the plugin renews it and
re-reads the file when Vault refuses it. Logs go to stderr; SIGTERM stops it
cleanly.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := kms.Options{
				Socket:  flags.socket,
				Vault:   vault.Access{Address: flags.vaultAddr, CAFile: flags.caFile, TokenFile: flags.tokenFile},
				Mount:   flags.mount,
				Key:     flags.key,
				Timeout: flags.timeout,
			}
			log, err := flags.logger(s.Err, root.verbose)
			if err != nil {
				return usageErr(err)
			}
			o.Log = log
			if err := flags.missing(); err != nil {
				return usageErr(err)
			}
			if err := o.Validate(); err != nil {
				return usageErr(err)
			}
			if err := kms.Serve(cmd.Context(), o); err != nil {
				return fmt.Errorf("kms-plugin: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.socket, "socket", "", "unix socket to serve on (its directory must exist, mode 0700)")
	f.StringVar(&flags.vaultAddr, "vault-addr", "", "Vault URL")
	f.StringVar(&flags.caFile, "vault-cacert", "", "PEM bundle that verifies Vault's certificate")
	f.StringVar(&flags.tokenFile, "token-file", "", "file (0600) holding the plugin's Vault token")
	f.StringVar(&flags.mount, "transit-mount", "", "the cluster's transit mount")
	f.StringVar(&flags.key, "transit-key", "", "the cluster's transit key")
	f.DurationVar(&flags.timeout, "timeout", kms.DefaultTimeout, "limit for each Vault call")
	f.StringVar(&flags.logFormat, "log-format", "json", "log format on stderr: json or text")
	return cmd
}

// missing names every required flag left empty, so one run shows them all.
func (f *kmsPluginFlags) missing() error {
	var errs []error
	for _, r := range []struct{ name, val string }{
		{"--socket", f.socket}, {"--vault-addr", f.vaultAddr}, {"--token-file", f.tokenFile},
		{"--transit-mount", f.mount}, {"--transit-key", f.key},
	} {
		if r.val == "" {
			errs = append(errs, fmt.Errorf("kms-plugin: %s is required", r.name))
		}
	}
	return errors.Join(errs...)
}

// logger logs at info by default: a daemon's start, health changes and
// rotations are what its operator reads. -v adds debug.
func (f *kmsPluginFlags) logger(w io.Writer, verbose int) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose > 0 {
		opts.Level = slog.LevelDebug
	}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("kms-plugin: unknown --log-format %q: use json or text", f.logFormat)
}
