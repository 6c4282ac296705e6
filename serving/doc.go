// Package serving is the HTTP face of lambdalake (DESIGN §4): health,
// readiness and metrics today; the query endpoint that merges batch and
// speed at the boundary B, and the Events API, as they land. It holds no
// state of its own, so it scales by replicas.
package serving
