// Package vaultserver runs the local Vault: when a blueprint has no
// spec.vault.address, secprov runs one Vault server (the toolchain's pinned
// binary) on this machine for all the clusters it manages here, each of
// which gets its own mounts, keys and roles inside it.
//
// It is a local-only convenience: one node, file storage, a listener on
// 127.0.0.1 with TLS from a CA of its own, one unseal key kept next to the
// data (so anyone who can read the state directory owns the Vault — the
// same person who can read the clusters' keys there anyway). Production
// blueprints point spec.vault.address at a real Vault.
//
// The server is a detached process (provision/local/proc), so it outlives
// the secprov process that started it and a later run finds it again.
// Everything lives under one private directory:
//
//	lock         flock: one Ensure/Stop/Destroy at a time, across processes
//	server.json  the port, chosen once
//	vault.hcl    the server configuration
//	vault.pid    pid and start time of the running server
//	vault.log    the server's output (0600)
//	audit.log    Vault's file audit device (0600): every request, secrets HMAC'd
//	init.json    unseal key and root token (0600)
//	root-token   the root token alone (0600), for vault.Access.TokenFile
//	tls/         CA and server certificate and keys (0700, keys 0600)
//	data/        Vault's storage
//	home/        HOME of the Vault process (libraries inside Vault write caches there)
package vaultserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"secprov.dev/secprov/provision/proc"
	"secprov.dev/secprov/vault"
)

// Server is the local Vault under Dir.
type Server struct {
	// Dir is the server's private directory (0700), e.g. DirIn(stateDir).
	Dir string
	// Binary is the vault binary; Ensure needs it, the other methods don't.
	Binary string
	// Log receives progress; nil discards it. Secrets never reach it.
	Log *slog.Logger
}

// DirIn is the local Vault's directory inside secprov's state root.
func DirIn(stateDir string) string { return filepath.Join(stateDir, "vault") }

// Status describes the local Vault without changing anything.
type Status struct {
	Dir     string `json:"dir"`
	Running bool   `json:"running"`
	Pid     int    `json:"pid,omitempty"`
	// Address is set once Ensure has chosen the port, running or not.
	Address string `json:"address,omitempty"`
	// Initialized, Sealed and Version are what the running server reports;
	// they are zero when it does not run.
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version,omitempty"`
	LogFile     string `json:"logFile"`
	// Problem says why the running server could not be asked.
	Problem string `json:"problem,omitempty"`
}

// Timing of starting, probing and stopping the server.
const (
	// startTimeout bounds waiting for a started Vault to answer. Measured:
	// ≈ 0.3 s on an idle machine; the margin is for busy CI machines.
	startTimeout = 60 * time.Second
	// answerTimeout bounds waiting for a Vault that already runs.
	answerTimeout = 10 * time.Second
	probeEvery    = 50 * time.Millisecond
	// stopGrace: Vault seals itself and exits on SIGTERM within a second.
	stopGrace = 15 * time.Second
	// requestTimeout bounds one API request to the local Vault.
	requestTimeout = 30 * time.Second
	// statusTimeout bounds Status's health request.
	statusTimeout = 5 * time.Second
)

// auditPath is the mount path of the file audit device Ensure enables.
const auditPath = "file"

func (s *Server) layout() layout { return layout(s.Dir) }

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s.Log
}

func address(port int) string { return fmt.Sprintf("https://127.0.0.1:%d", port) }

// Access returns root access to the local Vault without starting anything.
// Address is empty until Ensure has chosen the port.
func (s *Server) Access() vault.Access {
	l := s.layout()
	a := vault.Access{CAFile: l.caCert(), TokenFile: l.tokenFile()}
	if st, err := readState(l.stateFile()); err == nil {
		a.Address = address(st.Port)
	}
	return a
}

func (s *Server) check() error {
	if s.Dir == "" || !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("local Vault: directory %q is not an absolute path", s.Dir)
	}
	return nil
}

// Ensure makes the local Vault run, initialized and unsealed, and returns
// root access to it. It is idempotent, and safe to call from several
// goroutines or processes at once: they take turns on an flock in Dir.
//
// On the first call it chooses a port, makes a CA and server certificate,
// starts Vault, initializes it (one key share), keeps the unseal key and
// root token in 0600 files and enables a file audit device. Later calls
// start Vault again if it stopped (after a reboot, Stop or a crash), unseal
// it, renew the server certificate within 30 days of its expiry, and
// otherwise change nothing.
func (s *Server) Ensure(ctx context.Context) (vault.Access, error) {
	if err := s.check(); err != nil {
		return vault.Access{}, err
	}
	if s.Binary == "" {
		return vault.Access{}, errors.New("local Vault: no vault binary given (secprov tools install vault)")
	}
	l, log := s.layout(), s.log()
	unlock, _, err := lockDir(ctx, l, true, log)
	if err != nil {
		return vault.Access{}, err
	}
	defer unlock()

	st, err := s.ensurePort(l)
	if err != nil {
		return vault.Access{}, err
	}
	change, err := ensureTLS(l, time.Now())
	if err != nil {
		return vault.Access{}, fmt.Errorf("local Vault TLS in %s: %w", l.tlsDir(), err)
	}
	switch change {
	case tlsCARenewed:
		log.Info("local Vault: made a new CA and server certificate", "ca", l.caCert())
	case tlsServerRenewed:
		log.Info("local Vault: issued a new server certificate", "cert", l.serverCert())
	}
	cfgChanged, err := writeIfChanged(l.configFile(), renderConfig(l, st.Port), 0o600)
	if err != nil {
		return vault.Access{}, fmt.Errorf("local Vault config: %w", err)
	}
	for _, d := range []string{l.dataDir(), l.homeDir()} {
		if err := privateDir(d); err != nil {
			return vault.Access{}, fmt.Errorf("local Vault: %w", err)
		}
	}
	addr := address(st.Port)

	state, err := proc.Status(l.pidFile())
	if err != nil {
		return vault.Access{}, fmt.Errorf("local Vault: %w", err)
	}
	if state == proc.StateRunning && (change != tlsUnchanged || cfgChanged) {
		// Vault reads its certificate and configuration at start; a restart
		// is simple and certain. It comes back sealed and is unsealed below.
		log.Info("local Vault: restarting to apply new configuration or certificate")
		if err := proc.Stop(ctx, l.pidFile(), stopGrace); err != nil {
			return vault.Access{}, fmt.Errorf("local Vault: restart: %w", err)
		}
		state = proc.StateStopped
	}
	if state == proc.StateRunning {
		if err := s.waitAnswer(ctx, l, addr, answerTimeout); err != nil {
			rec, _ := proc.ReadPidFile(l.pidFile())
			return vault.Access{}, fmt.Errorf("local Vault (pid %d) runs but does not answer at %s: %w\nsee %s; `secprov vault stop` and run the command again", rec.Pid, addr, err, l.logFile())
		}
	} else if err := s.start(ctx, l, st.Port); err != nil {
		return vault.Access{}, err
	}

	c, done, err := newClient(l, addr)
	if err != nil {
		return vault.Access{}, err
	}
	defer done()
	h, err := c.Sys().HealthWithContext(ctx)
	if err != nil {
		return vault.Access{}, fmt.Errorf("local Vault at %s: health: %w", addr, err)
	}
	if !h.Initialized {
		if err := s.initialize(ctx, c, l); err != nil {
			return vault.Access{}, err
		}
	}
	key, token, err := readInit(l.initFile())
	if err != nil {
		return vault.Access{}, lostKeyError(l, err)
	}
	if h.Sealed || !h.Initialized {
		if err := s.unseal(ctx, c, l, key); err != nil {
			return vault.Access{}, err
		}
	}
	if err := ensureTokenFile(l, token); err != nil {
		return vault.Access{}, err
	}
	c.SetToken(token.reveal())
	if err := s.ensureAudit(ctx, c, l, token); err != nil {
		return vault.Access{}, err
	}
	return vault.Access{Address: addr, CAFile: l.caCert(), TokenFile: l.tokenFile()}, nil
}

// ensurePort reads the recorded port, or chooses and records one.
func (s *Server) ensurePort(l layout) (serverState, error) {
	st, err := readState(l.stateFile())
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return serverState{}, fmt.Errorf("local Vault: %w", err)
	}
	port, err := proc.FreePort()
	if err != nil {
		return serverState{}, fmt.Errorf("local Vault: %w", err)
	}
	st = serverState{Port: port}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := writeFile(l.stateFile(), append(data, '\n'), 0o600); err != nil {
		return serverState{}, fmt.Errorf("local Vault: record port: %w", err)
	}
	s.log().Debug("local Vault: chose port", "port", port, "file", l.stateFile())
	return st, nil
}

// vaultEnv is the Vault process's whole environment: nothing of secprov's
// (which may hold a Pulumi passphrase or a VAULT_TOKEN) is passed on, and
// no VAULT_* variable can change the configuration behind its back. HOME is
// a directory of its own because libraries linked into Vault write there
// (measured: the Snowflake database plugin's OCSP cache in ~/.cache).
func vaultEnv(l layout) []string {
	return []string{"HOME=" + l.homeDir(), "PATH=/usr/bin:/bin"}
}

// start starts Vault and waits until it answers sys/health over TLS.
func (s *Server) start(ctx context.Context, l layout, port int) error {
	addr := address(port)
	// Checked before starting, so a port taken by someone else is named
	// plainly instead of as a line in Vault's log.
	if err := waitPortFree(ctx, port); err != nil {
		return fmt.Errorf("local Vault: port %d (recorded in %s) is in use by another process: stop that process (ss -ltnp 'sport = :%d' shows it), or remove %s so secprov chooses a new port (clusters set up against %s then need secprov up again): %w",
			port, l.stateFile(), port, l.stateFile(), addr, err)
	}

	began := time.Now()
	p, err := proc.Start(proc.Spec{
		Name:    "vault",
		Path:    s.Binary,
		Args:    []string{"server", "-config=" + l.configFile()},
		Env:     vaultEnv(l),
		Dir:     l.dir(),
		LogFile: l.logFile(),
		PidFile: l.pidFile(),
	})
	if err != nil {
		return fmt.Errorf("local Vault: %w", err)
	}
	s.log().Info("local Vault: started", "pid", p.Pid, "address", addr, "log", l.logFile())
	if err := s.waitAnswer(ctx, l, addr, startTimeout); err != nil {
		if errors.Is(err, proc.ErrExited) {
			return fmt.Errorf("local Vault exited while starting: %w\nfix the cause shown above (whole log: %s) and run the command again; if its data is damaged beyond repair, `secprov vault reset --yes` starts over with an empty Vault", err, l.logFile())
		}
		// Not left running half-started: the next run starts it afresh.
		_ = proc.Stop(context.WithoutCancel(ctx), l.pidFile(), stopGrace)
		tail, _ := proc.Tail(l.logFile(), 20)
		return fmt.Errorf("local Vault (pid %d) did not answer at %s: %w; stopped it. Last lines of %s:\n%s", p.Pid, addr, err, l.logFile(), tail)
	}
	s.log().Debug("local Vault: answers", "elapsed", time.Since(began).Round(time.Millisecond))
	return nil
}

// portFreeWait is how long start waits for the port to become free. A
// Vault killed a moment ago holds its listener until its last thread has
// exited, which comes after its pid already reads as a zombie (measured:
// "address already in use" right after kill -9).
const portFreeWait = 3 * time.Second

// waitPortFree polls until port on 127.0.0.1 can be bound, up to
// portFreeWait.
func waitPortFree(ctx context.Context, port int) error {
	deadline := time.Now().Add(portFreeWait)
	for {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return ln.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(probeEvery):
		}
	}
}

// waitAnswer waits until Vault answers sys/health over TLS verified with
// its CA — initialized or not, sealed or not — failing fast if its process
// dies.
func (s *Server) waitAnswer(ctx context.Context, l layout, addr string, limit time.Duration) error {
	tlsCfg, err := clientTLS(l)
	if err != nil {
		return err
	}
	// The query makes every state answer 200: readiness here means "the
	// server runs and speaks TLS"; init and unseal come next.
	probe := proc.HTTPSReady(addr+"/v1/sys/health?uninitcode=200&sealedcode=200&standbyok=true", tlsCfg)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return proc.WaitReady(ctx, probe, probeEvery, l.pidFile())
}

// newClient returns an unauthenticated client for the local Vault that
// trusts only its CA and ignores VAULT_* variables and proxies. Call done
// when finished: it closes the kept-alive connections, which a long-lived
// caller would otherwise collect, one set per call.
func newClient(l layout, addr string) (c *api.Client, done func(), err error) {
	tlsCfg, err := clientTLS(l)
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: tlsCfg}
	cfg := &api.Config{
		Address:    addr,
		HttpClient: &http.Client{Transport: tr},
		MaxRetries: 0,
		Timeout:    requestTimeout,
	}
	c, err = api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("local Vault client: %w", err)
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, tr.CloseIdleConnections, nil
}

// initialize runs sys/init with a single key share and keeps the result.
func (s *Server) initialize(ctx context.Context, c *api.Client, l layout) error {
	// A leftover init.json belongs to earlier data that is gone; it is kept
	// aside rather than overwritten, in case someone wants it back.
	if _, err := os.Stat(l.initFile()); err == nil {
		old := l.initFile() + ".old-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(l.initFile(), old); err != nil {
			return fmt.Errorf("local Vault: set aside the stale %s: %w", l.initFile(), err)
		}
		s.log().Warn("local Vault: data was not initialized but init.json existed; kept it aside", "file", old)
	}
	resp, err := c.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("local Vault: initialize: %w", err)
	}
	if len(resp.KeysB64) != 1 || resp.RootToken == "" {
		return errors.New("local Vault: initialize: the answer has no unseal key or root token")
	}
	key, token := secret(resp.KeysB64[0]), secret(resp.RootToken)
	data, err := json.MarshalIndent(initData{UnsealKeysB64: []string{key.reveal()}, RootToken: token.reveal()}, "", "  ")
	if err != nil {
		return fmt.Errorf("local Vault: encode init.json: %w", err)
	}
	if err := writeFile(l.initFile(), append(data, '\n'), 0o600); err != nil {
		// The only copy of the key is in this process: the data cannot be
		// unsealed after it ends.
		return fmt.Errorf("local Vault was initialized, but its unseal key could not be saved: %w\nthe new Vault cannot be unsealed later; fix the cause, then `secprov vault reset --yes` and run the command again", scrubErr(err, key, token))
	}
	if err := ensureTokenFile(l, token); err != nil {
		return err
	}
	s.log().Info("local Vault: initialized (one unseal key)", "keys", l.initFile())
	return nil
}

// lostKeyError explains that an initialized Vault cannot be unsealed.
func lostKeyError(l layout, why error) error {
	what := fmt.Sprintf("is unreadable (%v)", why)
	if errors.Is(why, os.ErrNotExist) {
		what = "is missing"
	}
	return fmt.Errorf("local Vault in %s is initialized, but its unseal key file %s %s: its data cannot be unsealed.\n"+
		"If you have a copy of that init.json, put it back (mode 0600) and run the command again. "+
		"Otherwise start over with an empty local Vault — every key and secret in it is lost, and clusters that use it need secprov up again: secprov vault reset --yes",
		l.dir(), l.initFile(), what)
}

func (s *Server) unseal(ctx context.Context, c *api.Client, l layout, key secret) error {
	resp, err := c.Sys().UnsealWithContext(ctx, key.reveal())
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return fmt.Errorf("local Vault in %s: the unseal key in %s does not open its data (%w).\n"+
				"If that init.json was replaced, put the right one back and run the command again. "+
				"Otherwise start over with an empty local Vault — every key and secret in it is lost, and clusters that use it need secprov up again: secprov vault reset --yes",
				l.dir(), l.initFile(), scrubErr(err, key))
		}
		return fmt.Errorf("local Vault: unseal: %w", scrubErr(err, key))
	}
	if resp.Sealed {
		return fmt.Errorf("local Vault: still sealed after unsealing with the key in %s (threshold %d, progress %d)", l.initFile(), resp.T, resp.Progress)
	}
	s.log().Info("local Vault: unsealed")
	return nil
}

// ensureTokenFile writes root-token when it is missing or differs from the
// token in init.json.
func ensureTokenFile(l layout, token secret) error {
	want := []byte(token.reveal() + "\n")
	if cur, err := os.ReadFile(l.tokenFile()); err == nil && string(cur) == string(want) {
		return nil
	}
	if err := writeFile(l.tokenFile(), want, 0o600); err != nil {
		return fmt.Errorf("local Vault: %w", scrubErr(err, token))
	}
	return nil
}

// ensureAudit enables the file audit device writing to audit.log unless it
// is enabled. Checked on every Ensure rather than only after init, so an
// Ensure interrupted between init and this step is completed by the next.
func (s *Server) ensureAudit(ctx context.Context, c *api.Client, l layout, token secret) error {
	devs, err := c.Sys().ListAuditWithContext(ctx)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return fmt.Errorf("local Vault: the root token in %s is refused (revoked?); without it secprov cannot manage the local Vault: `secprov vault reset --yes` starts over with an empty one", l.initFile())
		}
		return fmt.Errorf("local Vault: list audit devices: %w", scrubErr(err, token))
	}
	for _, d := range devs {
		if d.Type == "file" && d.Options["file_path"] == l.auditLog() {
			return nil
		}
	}
	err = c.Sys().EnableAuditWithOptionsWithContext(ctx, auditPath, &api.EnableAuditOptions{
		Type:        "file",
		Description: "secprov: every request to the local Vault (secret values HMAC'd)",
		Options:     map[string]string{"file_path": l.auditLog(), "mode": "0600"},
	})
	if err != nil {
		return fmt.Errorf("local Vault: enable the file audit device (%s): %w", l.auditLog(), scrubErr(err, token))
	}
	s.log().Info("local Vault: audit device enabled", "file", l.auditLog())
	return nil
}

// writeIfChanged writes data to path unless it already holds exactly that,
// and says whether it wrote.
func writeIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data) {
		return false, os.Chmod(path, perm)
	}
	return true, writeFile(path, data, perm)
}

// Status reports the local Vault's state without starting or changing it.
// The error is for an unreadable pid file; a server that runs but does not
// answer is reported in Status.Problem.
func (s *Server) Status(ctx context.Context) (Status, error) {
	if err := s.check(); err != nil {
		return Status{}, err
	}
	l := s.layout()
	st := Status{Dir: l.dir(), LogFile: l.logFile()}
	ps, err := readState(l.stateFile())
	if err == nil {
		st.Address = address(ps.Port)
	}
	state, err := proc.Status(l.pidFile())
	if err != nil {
		return st, fmt.Errorf("local Vault: %w", err)
	}
	if state != proc.StateRunning {
		return st, nil
	}
	st.Running = true
	if rec, err := proc.ReadPidFile(l.pidFile()); err == nil {
		st.Pid = rec.Pid
	}
	if st.Address == "" {
		st.Problem = fmt.Sprintf("%s is missing: the address is unknown", l.stateFile())
		return st, nil
	}
	c, done, err := newClient(l, st.Address)
	if err != nil {
		st.Problem = err.Error()
		return st, nil
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	h, err := c.Sys().HealthWithContext(ctx)
	if err != nil {
		st.Problem = fmt.Sprintf("does not answer: %v", err)
		return st, nil
	}
	st.Initialized, st.Sealed, st.Version = h.Initialized, h.Sealed, h.Version
	return st, nil
}

// Stop stops the local Vault: SIGTERM (Vault seals itself and exits), then
// SIGKILL after a grace period. Its data and keys stay; Ensure starts and
// unseals it again. Stopping a stopped Vault is not an error.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	l := s.layout()
	unlock, ok, err := lockDir(ctx, l, false, s.log())
	if err != nil || !ok {
		return err
	}
	defer unlock()
	return s.stopLocked(ctx, l)
}

func (s *Server) stopLocked(ctx context.Context, l layout) error {
	running := proc.Alive(l.pidFile())
	rec, _ := proc.ReadPidFile(l.pidFile())
	if err := proc.Stop(ctx, l.pidFile(), stopGrace); err != nil {
		return fmt.Errorf("local Vault: %w", err)
	}
	if running {
		s.log().Info("local Vault: stopped", "pid", rec.Pid)
	}
	return nil
}

// Destroy stops the local Vault and removes its directory: every key,
// secret, token and log in it. It refuses a directory that holds files the
// local Vault did not create.
func (s *Server) Destroy(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	l := s.layout()
	if err := checkOurs(l); err != nil {
		return err
	}
	unlock, ok, err := lockDir(ctx, l, false, s.log())
	if err != nil || !ok {
		return err
	}
	defer unlock()
	if err := s.stopLocked(ctx, l); err != nil {
		return fmt.Errorf("%w; nothing was removed", err)
	}
	if err := os.RemoveAll(l.dir()); err != nil {
		return fmt.Errorf("local Vault: remove %s: %w", l.dir(), err)
	}
	s.log().Info("local Vault: removed", "dir", l.dir())
	return nil
}

// checkOurs fails when dir holds anything Ensure does not create (its own
// temporary files aside).
func checkOurs(l layout) error {
	entries, err := os.ReadDir(l.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local Vault: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if slices.Contains(ours, n) || strings.HasPrefix(n, "init.json.old-") || (strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")) {
			continue
		}
		return fmt.Errorf("local Vault: %s holds %s, which the local Vault did not create; not removing the directory (is it the right one?)", l.dir(), n)
	}
	return nil
}

// lockDir takes the exclusive flock on l's lock file, polling so ctx can
// cancel the wait. With create it makes the directory first; without, a
// missing directory means there is nothing to lock (ok false).
//
// The lock file is re-checked after locking: Destroy removes the directory
// while holding the lock, and a waiter that then gets the lock on the
// removed file must not go on as if it held the live one.
func lockDir(ctx context.Context, l layout, create bool, log *slog.Logger) (unlock func(), ok bool, err error) {
	waited := false
	for {
		if create {
			if err := privateDir(l.dir()); err != nil {
				return nil, false, fmt.Errorf("local Vault directory: %w", err)
			}
		}
		f, err := os.OpenFile(l.lockFile(), os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, os.ErrNotExist) && !create {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("local Vault lock: %w", err)
		}
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				_ = f.Close()
				return nil, false, fmt.Errorf("local Vault: lock %s: %w", l.lockFile(), err)
			}
			if !waited {
				waited = true
				log.Info("local Vault: waiting for another secprov process to finish with it", "lock", l.lockFile())
			}
			select {
			case <-ctx.Done():
				_ = f.Close()
				return nil, false, fmt.Errorf("local Vault: waiting for the lock %s: %w", l.lockFile(), ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		held, herr := f.Stat()
		cur, cerr := os.Stat(l.lockFile())
		if herr == nil && cerr == nil && os.SameFile(held, cur) {
			return func() { _ = f.Close() }, true, nil // closing releases the flock
		}
		_ = f.Close()
		if !create && errors.Is(cerr, os.ErrNotExist) {
			return nil, false, nil
		}
	}
}
