package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
)

type initFlags struct {
	name  string
	force bool
}

var projectName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$`)

func newInitCommand(s Streams) *cobra.Command {
	flags := &initFlags{}
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write starter prod.yaml and test.yaml blueprints with secure defaults",
		Long: `init writes two commented blueprints, prod.yaml and test.yaml, into DIR
(default: the current directory). They describe two separate clusters with
every secure default spelled out, and review clean.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if !projectName.MatchString(flags.name) {
				return usageErr(fmt.Errorf("--name %q must be a short DNS label (lowercase letters, digits, '-'; at most 42 characters)", flags.name))
			}
			return writeStarterBlueprints(s, dir, flags.name, flags.force)
		},
	}
	cmd.Flags().StringVar(&flags.name, "name", "shop", "project name; clusters are called NAME-prod and NAME-test")
	cmd.Flags().BoolVar(&flags.force, "force", false, "overwrite existing files")
	return cmd
}

func writeStarterBlueprints(s Streams, dir, name string, force bool) error {
	entries, err := fs.ReadDir(blueprints.Examples, "examples")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	// Check every target first so a refusal writes nothing.
	var targets []string
	for _, e := range entries {
		target := filepath.Join(dir, e.Name())
		if _, err := os.Stat(target); err == nil && !force {
			return usageErr(fmt.Errorf("%s already exists; use --force to overwrite it or choose another directory", target))
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		targets = append(targets, target)
	}
	for i, e := range entries {
		data, err := fs.ReadFile(blueprints.Examples, path.Join("examples", e.Name()))
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(data), "shop-", name+"-")
		if err := os.WriteFile(targets[i], []byte(text), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", targets[i], err)
		}
		fmt.Fprintf(s.Out, "wrote %s\n", targets[i])
	}
	fmt.Fprintf(s.Out, "next: secprov review %s && secprov up -f %s\n", dir, dir)
	return nil
}
