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
	"secprov.dev/secprov/internal/atomicfile"
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
	cmd.Flags().BoolVar(&flags.force, "force", false, "overwrite existing files (a symbolic link is replaced itself, never written through)")
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
	// Check every target first so a refusal writes nothing. Lstat, not
	// Stat: a link (even a dangling one) is something that exists, and
	// init never writes through it to wherever it points.
	type target struct {
		path    string
		replace bool
	}
	var targets []target
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			targets = append(targets, target{path: p})
			continue
		case err != nil:
			return err
		}
		if err := replaceable(p, fi, force); err != nil {
			return usageErr(err)
		}
		targets = append(targets, target{path: p, replace: true})
	}
	for i, e := range entries {
		data, err := fs.ReadFile(blueprints.Examples, path.Join("examples", e.Name()))
		if err != nil {
			return err
		}
		text := []byte(strings.ReplaceAll(string(data), "shop-", name+"-"))
		t := targets[i]
		if t.replace {
			// The rename replaces the directory entry itself: a link is
			// swapped for a regular file, its target is left alone.
			err = atomicfile.Write(t.path, text, 0o644)
		} else {
			err = createNew(t.path, text)
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", t.path, err)
		}
		fmt.Fprintf(s.Out, "wrote %s\n", t.path)
	}
	fmt.Fprintf(s.Out, "next: secprov review %s && secprov up -f %s\n", dir, dir)
	return nil
}

// replaceable says why init must not replace the existing p, if it must
// not: without --force nothing is replaced; with it, only regular files
// and links (the link, not what it points to). A directory, FIFO, socket
// or device is never something init wrote.
func replaceable(p string, fi fs.FileInfo, force bool) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		if force {
			return nil
		}
		to, _ := os.Readlink(p)
		return fmt.Errorf("%s is a symbolic link (to %s); init does not write through links: remove it, choose another directory, or use --force to replace the link itself", p, quoteArg(to))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file (%s); init will not replace it: remove it or choose another directory", p, fi.Mode().Type())
	}
	if !force {
		return fmt.Errorf("%s already exists; use --force to overwrite it or choose another directory", p)
	}
	return nil
}

// createNew writes a file that must not exist yet. O_EXCL fails on any
// existing entry, a dangling link included, so a link planted after the
// check is not followed either; O_NOFOLLOW says the same where it exists.
func createNew(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
	}
	return err
}
