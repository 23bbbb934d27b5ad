package kms

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	kmsapi "k8s.io/kms/apis/v2"
	"k8s.io/kms/pkg/service"

	"secprov.dev/secprov/vault"
)

// DefaultTimeout bounds each Vault call and gRPC connection when Options
// leaves Timeout zero; it matches the timeout secprov writes into the
// apiserver's EncryptionConfiguration.
const DefaultTimeout = 3 * time.Second

// MaxSocketPath is the longest unix socket path Linux accepts: sun_path
// holds 108 bytes including the terminating NUL.
const MaxSocketPath = 107

// Options configure the plugin.
type Options struct {
	// Socket is the unix socket to serve on. Its directory must exist and
	// be private to the plugin's user (mode 0700).
	Socket string
	// Vault is the Vault to use; TokenFile (required) holds the plugin's
	// own narrow token.
	Vault vault.Access
	// Mount and Key name the cluster's transit key (vault.Names.TransitMount
	// and TransitKey).
	Mount, Key string
	// Timeout bounds each Vault call; zero means DefaultTimeout.
	Timeout time.Duration
	// Log receives start, health, rotation and renewal events; nil
	// discards them. It never receives tokens, plaintext or ciphertext.
	Log *slog.Logger
}

// Validate reports every problem with o at once, without touching Vault
// or the file system.
func (o Options) Validate() error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	return errors.Join(o.checkSocket(), o.checkVault())
}

func (o Options) withDefaults() (Options, error) {
	if o.Timeout < 0 {
		return o, fmt.Errorf("kms plugin: timeout %s is negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Mount = strings.Trim(o.Mount, "/")
	return o, nil
}

func (o Options) checkSocket() error {
	switch {
	case o.Socket == "":
		return errors.New("kms plugin: no socket path")
	case len(o.Socket) > MaxSocketPath:
		return fmt.Errorf("kms plugin: socket path %s is %d bytes, but unix sockets allow at most %d: use a shorter directory", o.Socket, len(o.Socket), MaxSocketPath)
	}
	return nil
}

func (o Options) checkVault() error {
	var errs []error
	if o.Vault.Address == "" {
		errs = append(errs, errors.New("kms plugin: no Vault address"))
	}
	if o.Vault.TokenFile == "" {
		// The plugin always runs with its own narrow token, never the
		// operator's VAULT_TOKEN or AppRole.
		errs = append(errs, errors.New("kms plugin: no Vault token file (the plugin's own token, 0600)"))
	}
	if o.Mount == "" {
		errs = append(errs, errors.New("kms plugin: no transit mount"))
	}
	if o.Key == "" || strings.ContainsAny(o.Key, "/: \t\n") {
		errs = append(errs, fmt.Errorf("kms plugin: transit key name %q is empty or holds '/', ':' or spaces", o.Key))
	}
	return errors.Join(errs...)
}

// shutdownGrace is how long in-flight calls may finish after ctx ends
// before their connections are cut.
const shutdownGrace = 5 * time.Second

// Serve runs the plugin on o.Socket until ctx ends, renewing its Vault
// token meanwhile. It returns nil after a clean shutdown. A Vault that is
// unreachable at start is not an error: Status reports it until Vault
// answers.
func Serve(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	o, _ = o.withDefaults()
	p, err := New(ctx, o)
	if err != nil {
		return err
	}
	ln, err := listen(o.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)

	// NewGRPCService supplies the protocol mapping; the server and
	// listener are ours so the socket is created private (its own
	// ListenAndServe leaves the mode to the umask).
	gs := grpc.NewServer(grpc.ConnectionTimeout(o.Timeout))
	kmsapi.RegisterKeyManagementServiceServer(gs, service.NewGRPCService(o.Socket, o.Timeout, p))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() { defer close(renewed); p.tok.keepAlive(ctx) }()

	st, _ := p.Status(ctx)
	o.Log.Info("KMS plugin serving", "socket", o.Socket, "vault", o.Vault.Address, "mount", o.Mount, "key", o.Key, "keyID", st.KeyID, "healthy", st.Healthz == healthy)

	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	select {
	case err = <-served:
		gs.Stop()
		err = fmt.Errorf("kms plugin: serving %s: %w", o.Socket, err)
	case <-ctx.Done():
		stopGracefully(gs, shutdownGrace)
		<-served
		o.Log.Info("KMS plugin stopped", "socket", o.Socket)
	}
	cancel()
	<-renewed
	return err
}

// listen creates the socket, mode 0600, in a private directory, replacing
// a stale socket a crashed plugin left behind but never a live one or a
// file that is not a socket.
func listen(socket string) (net.Listener, error) {
	dir := filepath.Dir(socket)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("kms plugin: socket directory: %w (create it with mode 0700)", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("kms plugin: socket directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("kms plugin: socket directory %s has mode %04o: it must be private to the plugin's user (chmod 700)", dir, fi.Mode().Perm())
	}
	if fi, err := os.Lstat(socket); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("kms plugin: %s exists and is not a socket: remove it or choose another path", socket)
		}
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("kms plugin: %s is in use by a running plugin: stop it first", socket)
		}
		if err := os.Remove(socket); err != nil {
			return nil, fmt.Errorf("kms plugin: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("kms plugin: listen: %w", err)
	}
	// The directory is private, so nobody else can reach the socket in
	// the moment before this chmod.
	if err := os.Chmod(socket, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kms plugin: chmod socket: %w", err)
	}
	return ln, nil
}

// stopGracefully lets in-flight calls finish for up to grace, then cuts
// the connections that are left.
func stopGracefully(gs *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		gs.Stop()
		<-done
	}
}
