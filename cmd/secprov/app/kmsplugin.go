package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/vault/kms"
)

func newKMSPluginCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &kms.Command{}
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
			o, err := flags.Options(s.Err, root.verbose > 0)
			if err != nil {
				return usageErr(err)
			}
			if err := kms.Serve(cmd.Context(), o); err != nil {
				return fmt.Errorf("kms-plugin: %w", err)
			}
			return nil
		},
	}
	flags.Bind(cmd.Flags())
	return cmd
}
