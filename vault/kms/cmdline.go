package kms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"secprov.dev/secprov/vault"
)

// Command is the plugin's command line, shared by `secprov kms-plugin`
// and by test binaries that stand in for secprov (MainIfPlugin), so the
// control plane starts both the same way.
type Command struct {
	Socket, VaultAddr, CAFile, TokenFile, Mount, Key string
	Timeout                                          time.Duration
	LogFormat                                        string
}

// Bind registers the flags on fs.
func (c *Command) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.Socket, "socket", "", "unix socket to serve on (its directory must exist, mode 0700)")
	fs.StringVar(&c.VaultAddr, "vault-addr", "", "Vault URL")
	fs.StringVar(&c.CAFile, "vault-cacert", "", "PEM bundle that verifies Vault's certificate")
	fs.StringVar(&c.TokenFile, "token-file", "", "file (0600) holding the plugin's Vault token")
	fs.StringVar(&c.Mount, "transit-mount", "", "the cluster's transit mount")
	fs.StringVar(&c.Key, "transit-key", "", "the cluster's transit key")
	fs.DurationVar(&c.Timeout, "timeout", DefaultTimeout, "limit for each Vault call")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format on stderr: json or text")
}

// Options checks the parsed flags, naming every required flag left empty
// so one run shows them all, and returns the plugin's options logging to w.
func (c *Command) Options(w io.Writer, debug bool) (Options, error) {
	var errs []error
	for _, r := range []struct{ name, val string }{
		{"--socket", c.Socket}, {"--vault-addr", c.VaultAddr}, {"--token-file", c.TokenFile},
		{"--transit-mount", c.Mount}, {"--transit-key", c.Key},
	} {
		if r.val == "" {
			errs = append(errs, fmt.Errorf("kms-plugin: %s is required", r.name))
		}
	}
	// Info by default: a daemon's start, health changes and rotations are
	// what its operator reads.
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	var log *slog.Logger
	switch c.LogFormat {
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	default:
		errs = append(errs, fmt.Errorf("kms-plugin: unknown --log-format %q: use json or text", c.LogFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	o := Options{
		Socket: c.Socket, Mount: c.Mount, Key: c.Key, Timeout: c.Timeout, Log: log,
		Vault: vault.Access{Address: c.VaultAddr, CAFile: c.CAFile, TokenFile: c.TokenFile},
	}
	return o, o.Validate()
}

// MainIfPlugin serves the plugin and exits when this process was started
// as "<binary> kms-plugin …"; otherwise it returns at once. Test binaries
// call it first thing in TestMain, so a cluster they build can run the
// test binary as its KMS plugin, as it runs secprov itself in production.
func MainIfPlugin() {
	if len(os.Args) < 2 || os.Args[1] != "kms-plugin" {
		return
	}
	var c Command
	fs := pflag.NewFlagSet("kms-plugin", pflag.ContinueOnError)
	c.Bind(fs)
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	o, err := c.Options(os.Stderr, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Serve(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "kms-plugin:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
