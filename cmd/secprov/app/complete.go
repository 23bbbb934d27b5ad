package app

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/paths"
	"secprov.dev/secprov/provision/toolchain"
)

// Shell completion for flag values. Every function here must be cheap and
// must never fail loudly: the shell calls it on each <TAB>, and an error
// would only mean no suggestions.

// severities are the --fail-on values, most severe first.
var severities = []string{"critical", "high", "medium", "low", "info"}

// completeValues completes flag on cmd with a fixed list of values.
func completeValues(cmd *cobra.Command, flag string, values ...string) {
	mustRegister(cmd, flag, func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return withPrefix(values, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// completeClusters completes flag with the clusters in the state directory.
func completeClusters(cmd *cobra.Command, flag string) {
	mustRegister(cmd, flag, func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return withPrefix(stateClusterNames(), toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// completeOnly completes --only, which takes a cluster name or an
// environment: the recorded clusters and their environments.
func completeOnly(cmd *cobra.Command) {
	mustRegister(cmd, "only", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		names := stateClusterNames()
		if stateDir, err := paths.StateDir(); err == nil {
			// A damaged record only costs its environment; its name is
			// in names already.
			if recs, _, err := cluster.Records(stateDir); err == nil {
				for _, r := range recs {
					if r.Environment != "" && !slices.Contains(names, r.Environment) {
						names = append(names, r.Environment)
					}
				}
			}
		}
		return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// completeChecks completes --check with the check IDs, titled.
func completeChecks(cmd *cobra.Command) {
	mustRegister(cmd, "check", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, c := range verify.Checks() {
			id := string(c.ID)
			if !strings.HasPrefix(id, toComplete) {
				continue
			}
			title := c.Title
			if title == "" {
				if ctl, ok := blueprints.ControlByID(c.ID); ok {
					title = ctl.Title
				}
			}
			out = append(out, cobra.CompletionWithDesc(id, title))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// gitRefsTimeout bounds `git for-each-ref` so a slow or huge repository
// never hangs the shell.
const gitRefsTimeout = 2 * time.Second

// completeGitRefs completes flag with the branches and tags of the
// repository in the current directory; outside one, nothing.
func completeGitRefs(cmd *cobra.Command, flag string) {
	mustRegister(cmd, flag, func(c *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(c.Context(), gitRefsTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "git", "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/remotes", "refs/tags").Output()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withPrefix(strings.Fields(string(out)), toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// stateClusterNames lists the clusters in the state directory, or none when it
// cannot be read.
func stateClusterNames() []string {
	stateDir, err := paths.StateDir()
	if err != nil {
		return nil
	}
	names, _ := provision.Clusters(stateDir)
	return names
}

func withPrefix(values []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// completeTools completes the positional tool names of tools install,
// leaving out those already on the line.
func completeTools(cmd *cobra.Command) {
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var names []string
		for _, t := range toolchain.Pinned() {
			if !slices.Contains(args, t.Name) {
				names = append(names, t.Name)
			}
		}
		return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// noFileArgs stops the shell from offering file names as arguments to
// commands that take none: without a ValidArgsFunction cobra falls back to
// file completion. A command refusing a single argument takes none; one
// with subcommands is left alone, its subcommand names are the suggestions.
func noFileArgs(root *cobra.Command) {
	for _, c := range root.Commands() {
		noFileArgs(c)
		if c.ValidArgsFunction == nil && c.Args != nil && !c.HasSubCommands() && c.Args(c, []string{"x"}) != nil {
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
	}
}

// mustRegister registers a completion function; it fails only for a flag
// the command does not define, which is a programming error.
func mustRegister(cmd *cobra.Command, flag string, f cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, f); err != nil {
		panic(err)
	}
}
