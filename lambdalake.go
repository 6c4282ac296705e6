// Package lambdalake is the module root. It carries only the example
// configuration, embedded so that `lambdalake dev` and the tests run on the
// same file a user reads. The system itself lives in the packages speed,
// batch, serving, lake, schemas and jobs; see DESIGN.md for the flow.
package lambdalake

import _ "embed"

// ExampleConfig is lambdalake.yaml as shipped.
//
//go:embed lambdalake.yaml
var ExampleConfig []byte
