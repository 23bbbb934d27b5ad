package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
)

// command runs the Pulumi CLI for the Automation API. It replaces
// auto.NewPulumiCommand to control what the SDK's version leaves to chance:
//
//   - the engine gets umask 077, so every file it writes (state,
//     checkpoints, backups, PULUMI_HOME) is private to the user from the
//     start;
//   - it runs in its own process group, so a Ctrl-C in the terminal reaches
//     only secprov, which cancels the engine once (a second SIGINT would make
//     the engine abandon in-flight operations);
//   - on Linux it is interrupted if secprov dies (SIGKILL, OOM), so it does
//     not keep running an update nobody watches;
//   - inherited variables that would change its behaviour
//     (PULUMI_CONFIG_PASSPHRASE*, PULUMI_BACKEND_URL, SECPROV_PASSPHRASE)
//     are dropped; the workspace sets the ones it means.
type command struct {
	path    string
	version semver.Version
	log     *slog.Logger
	// env is set for every invocation, `pulumi version` included: each
	// one otherwise starts an update check against api.pulumi.com.
	env []string
}

// safeEnv is the environment every engine invocation gets: no update
// check, no plugin download, no stray plugin from PATH, and a PULUMI_HOME
// inside secprov's state instead of ~/.pulumi.
func safeEnv(home string) []string {
	return []string{
		"PULUMI_HOME=" + home,
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"PULUMI_IGNORE_AMBIENT_PLUGINS=true",
		"PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true",
		"PULUMI_SKIP_CONFIRMATIONS=true",
	}
}

var _ auto.PulumiCommand = (*command)(nil)

// newCommand finds bin/pulumi under root and asks it for its version,
// unless the caller already knows it (the toolchain checked it).
func newCommand(ctx context.Context, root, home, known string, log *slog.Logger) (*command, error) {
	path := filepath.Join(root, "bin", "pulumi")
	if runtime.GOOS == "windows" {
		path += ".exe"
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("pulumi engine not found at %s: run `secprov tools install` (or point the toolchain at an existing Pulumi v3 install): %w", path, err)
	}
	c := &command{path: path, log: log, env: safeEnv(home)}
	out := known
	if out == "" {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var stderr string
		var err error
		out, stderr, _, err = c.Run(ctx, "", nil, nil, nil, nil, "version")
		if err != nil {
			return nil, fmt.Errorf("running %s version: %w: %s", path, err, strings.TrimSpace(stderr))
		}
	}
	v, err := semver.ParseTolerant(strings.TrimSpace(out))
	if err != nil {
		return nil, fmt.Errorf("%s reports version %q, which is not semver: is it a Pulumi v3 CLI?", path, strings.TrimSpace(out))
	}
	if v.Major != 3 {
		return nil, fmt.Errorf("%s is Pulumi %s; secprov needs Pulumi v3", path, v)
	}
	c.version = v
	return c, nil
}

func (c *command) Version() semver.Version { return c.version }

// dropInherited lists variables from secprov's own environment that must
// not reach the engine or the provider it starts.
var dropInherited = []string{
	"PULUMI_CONFIG_PASSPHRASE=",
	"PULUMI_CONFIG_PASSPHRASE_FILE=",
	"PULUMI_BACKEND_URL=",
	EnvPassphrase + "=",
}

func (c *command) Run(ctx context.Context, workdir string, stdin io.Reader,
	additionalOutput, additionalErrorOutput []io.Writer, additionalEnv []string, args ...string,
) (string, string, int, error) {
	if !containsArg(args, "--non-interactive") {
		args = append([]string{"--non-interactive"}, args...)
	}
	cmd := umaskCommand(ctx, c.path, args)
	cmd.Dir = workdir
	env := make([]string, 0, len(os.Environ())+len(additionalEnv)+2)
	for _, e := range os.Environ() {
		drop := false
		for _, d := range dropInherited {
			if strings.HasPrefix(e, d) {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, e)
		}
	}
	env = append(env, c.env...)
	env = append(env, additionalEnv...)
	env = append(env, "PULUMI_AUTOMATION_API=true")
	cmd.Env = env

	var stdout, stderr bytes.Buffer
	cmd.Stdout = io.MultiWriter(append(additionalOutput, &stdout)...)
	cmd.Stderr = io.MultiWriter(append(additionalErrorOutput, &stderr)...)
	cmd.Stdin = stdin
	detach(cmd)
	// Cancellation: one SIGINT lets the engine stop gracefully (it asks
	// providers to cancel, waits for them and writes the state); SIGKILL
	// only if it has not finished a minute later.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute

	start := time.Now()
	if answer, ok := localAnswer(ctx, args); ok {
		c.log.Debug("pulumi command answered locally", "command", commandName(args))
		return answer, "", 0, nil
	}
	err := cmd.Run()
	c.log.Debug("pulumi command finished", "command", commandName(args), "elapsed", time.Since(start).Round(time.Millisecond), "error", err)
	code := -2
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code, err
}

type localAnswersKey struct{}

// withLocalAnswers makes Run answer the given subcommands ("stack
// history") itself with the given stdout, without starting the engine.
// The SDK runs bookkeeping commands around every operation that secprov
// doesn't need — after `up`: `stack output` twice and `stack history`,
// ≈0.8 s of a 2 s no-op update — and offers no option to skip them.
func withLocalAnswers(ctx context.Context, answers map[string]string) context.Context {
	return context.WithValue(ctx, localAnswersKey{}, answers)
}

func localAnswer(ctx context.Context, args []string) (string, bool) {
	answers, _ := ctx.Value(localAnswersKey{}).(map[string]string)
	a, ok := answers[commandName(args)]
	return a, ok
}

// commandName is the subcommand part of args, for logs (never flag values,
// which may name files).
func commandName(args []string) string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if (a == "stack" || a == "config") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			return a + " " + args[i+1]
		}
		return a
	}
	return ""
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == "--" {
			return false
		}
		if x == a {
			return true
		}
	}
	return false
}
