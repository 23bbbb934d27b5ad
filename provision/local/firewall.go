package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine/provider"
)

// FirewallType is the nftables table that narrows a public endpoint to
// spec.apiServer.allowedCIDRs (SP-API-002). It is a resource of the stack
// like the processes, so `down` (and an up that makes the endpoint private
// or drops allowedCIDRs) removes it.
const FirewallType = "secprov:local:Firewall"

// firewallIn are the table's inputs; the script is derived from them.
type firewallIn struct {
	Table   string   `json:"table" secprov:"replace"`
	Port    int      `json:"port"`
	Allowed []string `json:"allowed"`
}

type firewallOut struct {
	Table string `json:"table"`
}

func (in firewallIn) firewall() (*hardening.APIFirewall, error) {
	f := &hardening.APIFirewall{Table: in.Table, Port: in.Port}
	for _, c := range in.Allowed {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("allowed CIDR %q: %w", c, err)
		}
		f.Allowed = append(f.Allowed, p)
	}
	return f, nil
}

func firewallInputs(f *hardening.APIFirewall) firewallIn {
	in := firewallIn{Table: f.Table, Port: f.Port, Allowed: []string{}}
	for _, p := range f.Allowed {
		in.Allowed = append(in.Allowed, p.String())
	}
	return in
}

// NFTBinary is the nftables command line tool (Debian: nftables).
const NFTBinary = "nft"

// FirewallPreflight says what is missing for a cluster with a firewall:
// nft on PATH and the rights to load rules.
func FirewallPreflight() error {
	if _, err := exec.LookPath(NFTBinary); err != nil {
		return fmt.Errorf("spec.apiServer.allowedCIDRs on a public endpoint is enforced with nftables, and %s is not on PATH: install it (apt-get install nftables), or use endpoint: private", NFTBinary)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("spec.apiServer.allowedCIDRs on a public endpoint is enforced with an nftables table, which only root (CAP_NET_ADMIN) may load: run secprov up as root, or use endpoint: private")
	}
	return nil
}

// NFTApply loads an nft script in one transaction.
func NFTApply(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, NFTBinary, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NFTListTable returns `nft -j list table inet NAME`; found is false when
// the table does not exist.
func NFTListTable(ctx context.Context, table string) (data []byte, found bool, err error) {
	cmd := exec.CommandContext(ctx, NFTBinary, "-j", "list", "table", hardening.FirewallFamily, table)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return nil, false, nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrNotFound) {
			return nil, false, fmt.Errorf("nft list table %s %s: %w: %s", hardening.FirewallFamily, table, err, strings.TrimSpace(stderr.String()))
		}
		return nil, false, err
	}
	return stdout.Bytes(), true, nil
}

// firewallDrifted reports whether the live table differs from what in
// renders (gone, or changed by hand), so `up` reloads it.
func firewallDrifted(ctx context.Context, in firewallIn) bool {
	f, err := in.firewall()
	if err != nil {
		return true
	}
	data, found, err := NFTListTable(ctx, in.Table)
	if err != nil || !found {
		return true
	}
	st, err := hardening.ParseFirewall(data, in.Port)
	return err != nil || len(f.Judge(st)) > 0
}

func applyFirewall(ctx context.Context, in firewallIn) (firewallOut, error) {
	f, err := in.firewall()
	if err != nil {
		return firewallOut{}, err
	}
	if err := FirewallPreflight(); err != nil {
		return firewallOut{}, err
	}
	return firewallOut{Table: in.Table}, NFTApply(ctx, f.Script())
}

func firewallResourceType() provider.TypedResourceType[firewallIn, firewallOut] {
	return provider.TypedResourceType[firewallIn, firewallOut]{
		Token: FirewallType,
		Create: func(ctx context.Context, req provider.TypedRequest[firewallIn, firewallOut]) (string, firewallOut, error) {
			out, err := applyFirewall(ctx, req.Inputs)
			return req.Inputs.Table, out, err
		},
		// A table deleted or edited by hand while the inputs stayed the
		// same: report a change, so `up` puts the rules back.
		Diff: func(ctx context.Context, req provider.TypedRequest[firewallIn, firewallOut], d provider.Diff) (provider.Diff, error) {
			if len(d.Changes) == 0 && firewallDrifted(ctx, req.Inputs) {
				d.Changes = append(d.Changes, provider.Change{Path: "allowed", Kind: provider.Update})
			}
			return d, nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[firewallIn, firewallOut]) (firewallOut, error) {
			return applyFirewall(ctx, req.Inputs)
		},
		Delete: func(ctx context.Context, req provider.TypedRequest[firewallIn, firewallOut]) error {
			if _, err := exec.LookPath(NFTBinary); err != nil {
				return nil // nothing can have loaded the table here
			}
			return NFTApply(ctx, hardening.DeleteFirewallScript(req.Inputs.Table))
		},
	}
}
