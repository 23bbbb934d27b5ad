package app

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X secprov.dev/secprov/cmd/secprov/app.version=vX.Y.Z".
var version = ""

// Version reports secprov's version: the ldflags value, else the module
// version, else the VCS revision, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel+" + s.Value[:12]
		}
	}
	return "devel"
}

type versionFlags struct {
	output string
}

func newVersionCommand(s Streams) *cobra.Command {
	flags := &versionFlags{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print secprov's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]string{
				"version":  Version(),
				"go":       runtime.Version(),
				"platform": runtime.GOOS + "/" + runtime.GOARCH,
			}
			switch flags.output {
			case "json":
				return writeJSON(s.Out, info)
			case "text", "":
				_, err := fmt.Fprintf(s.Out, "secprov %s %s %s\n", info["version"], info["go"], info["platform"])
				return err
			default:
				return usageErr(fmt.Errorf("unknown output format %q: use text or json", flags.output))
			}
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	return cmd
}
