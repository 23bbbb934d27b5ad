package blueprints

import "embed"

// Examples holds the example blueprints (prod.yaml, test.yaml) that
// `secprov init` writes and the README quick start uses.
//
//go:embed examples/*.yaml
var Examples embed.FS
