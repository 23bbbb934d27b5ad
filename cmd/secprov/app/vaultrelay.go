package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/vault/relay"
)

func newVaultRelayCommand(s Streams, root *rootFlags) *cobra.Command {
	var listen, to string
	var allow []string
	cmd := &cobra.Command{
		Use:   "vault-relay --listen ADDR:PORT --allow CIDR --to 127.0.0.1:PORT",
		Short: "Relay a kind cluster's pods to the local Vault",
		Long: `vault-relay is run by secprov for each kind cluster that uses the local
Vault; not for humans.

It listens on the cluster's Docker network gateway (where the cluster's pods
reach this machine), accepts connections only from the CIDRs given with
--allow (the cluster's own Docker network), and passes the bytes through to
Vault's loopback listener unchanged: TLS runs end to end between the
workload and Vault. Connections from any other address are closed at once
and logged. Logs go to stderr; SIGTERM stops it cleanly.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var prefixes []netip.Prefix
			for _, a := range allow {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return usageErr(fmt.Errorf("--allow %q: not a CIDR: %w", a, err))
				}
				prefixes = append(prefixes, p.Masked())
			}
			if listen == "" || to == "" || len(prefixes) == 0 {
				return usageErr(fmt.Errorf("--listen, --to and at least one --allow are required"))
			}
			level := slog.LevelInfo
			if root.verbose > 0 {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: level}))
			o := relay.Options{Listen: listen, Allow: prefixes, To: to, Log: log}
			o.Ready = func(a net.Addr) {
				log.Info("relaying to Vault", "listen", a.String(), "allow", allow, "to", to)
			}
			if err := relay.Serve(cmd.Context(), o); err != nil {
				return fmt.Errorf("vault-relay: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to accept on: the cluster network's gateway and a port")
	cmd.Flags().StringSliceVar(&allow, "allow", nil, "source CIDR allowed to connect (repeatable): the cluster's Docker network")
	cmd.Flags().StringVar(&to, "to", "", "Vault's loopback listener, host:port")
	return cmd
}
