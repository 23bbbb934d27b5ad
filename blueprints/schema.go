package blueprints

import _ "embed"

// SchemaID is the $id of the JSON Schema for secprov.dev/v1alpha1
// blueprints. Editors that use yaml-language-server pick the schema up from
// a first line "# yaml-language-server: $schema=" + SchemaID.
const SchemaID = "https://secprov.dev/schemas/v1alpha1/blueprint.json"

// The schema is generated from the Go types, their doc comments and the
// validator's tables by TestSchema, which fails when this file is stale:
// go test ./blueprints -run TestSchema -update rewrites it.
//
//go:embed schema/v1alpha1.json
var schemaV1alpha1 []byte

// JSONSchema returns the JSON Schema (draft-07) of a v1alpha1 Blueprint.
// It is for editors: it catches unknown fields, wrong types, unknown enum
// values and malformed names while typing. The loader stays the authority;
// checks across fields (overlapping CIDRs, duplicates) are only there.
func JSONSchema() []byte {
	return append([]byte(nil), schemaV1alpha1...)
}
