package app

import (
	"github.com/spf13/cobra"

	"secprov.dev/secprov/blueprints"
)

func newSchemaCommand(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of a blueprint, for editors",
		Long: `schema prints the JSON Schema (draft-07) of a secprov.dev/v1alpha1
Blueprint. Editors that use yaml-language-server (VS Code's YAML extension,
Neovim, Helix, …) read it from the first line of a blueprint:

  # yaml-language-server: $schema=` + blueprints.SchemaID + `

and then complete fields and flag unknown fields, wrong types and bad values
while you type. Save the output to use the schema offline. The schema checks
single fields only; secprov review and up still validate the whole blueprint.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := s.Out.Write(blueprints.JSONSchema())
			return err
		},
	}
}
