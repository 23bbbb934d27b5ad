// Package cilium installs Cilium into a kind cluster with Cilium's official
// Helm chart, through the Helm SDK in-process (no helm CLI, no chart
// repository, no network beyond the Go module proxy).
//
// The chart is read from the pinned github.com/cilium/cilium module
// (ChartDir); its values are rendered from the blueprint and what the kind
// provider knows (Values), golden-tested, and rendered into manifests the
// same way for review (Render). Install makes the release converge —
// install, upgrade, or nothing — and waits until the agents, the operator
// and every node are ready, or returns a *NotReadyError naming the failing
// pod with its last log lines and what to do next.
//
// The package knows nothing about kind itself: the provider passes the API
// server's in-node address, the image set, and the capabilities its nodes
// cannot grant (UngrantableCapabilities).
package cilium
