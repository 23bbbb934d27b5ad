// Package toolchain finds, downloads or builds the pinned binaries secprov
// drives (kube-apiserver, kube-controller-manager, kube-scheduler, etcd,
// etcdctl, pulumi, vault) and keeps them in the user's cache.
//
// Resolution order for one tool (Manager.Ensure):
//
//  1. PATH: every binary of the tool is on PATH and reports the pinned
//     version. Pulumi is additionally linked into the cache layout so callers
//     always get a Root for the Automation API.
//  2. Cache: <cache>/tools/<name>/<version>/ holds every binary, executable,
//     and the version check passes (or a marker written by secprov says the
//     files are unchanged since they were checked).
//  3. Download of the official release. Each artifact is verified with
//     SHA-256 before anything reaches the cache: against the digest pinned
//     in the tool table when there is one, otherwise against the publisher's
//     checksum file, fetched over HTTPS from the same host. The second mode
//     trusts the publisher's host (and TLS) rather than this source tree;
//     pin digests in Pinned to remove that trust. A mismatch, a corrupt
//     archive or an archive entry escaping its root is a hard error; network
//     failures (no route, DNS, HTTP status) fall through to step 4.
//  4. Build from the Go module proxy with the go command on PATH, in a
//     throw-away wrapper module inside the cache (never the caller's module).
//     The module proxy and checksum database vouch for the sources.
//
// Cache layout, relied on by other packages:
//
//	<cache>/tools/<name>/<version>/<binary>          kubernetes, etcd, vault
//	<cache>/tools/pulumi/<version>/bin/pulumi        (Root for auto.PulumiCommandOptions)
//	<cache>/tools/<name>/<version>/.secprov-tool.json marker: source, digests, time
//	<cache>/tools/<name>/<version>.lock              flock held while installing
//	<cache>/tools/<name>/<version>.build.log         output of the last build
//
// Installs are staged in a temporary directory beside the final one and
// renamed into place while holding the lock, so concurrent secprov processes
// never see or produce a half-written tool.
//
// Environment:
//
//	SECPROV_CACHE               cache root (see provision/paths)
//	SECPROV_TOOLS_MIRROR        mirror root URL: an artifact https://HOST/PATH is
//	                            fetched from MIRROR/HOST/PATH (checksum files too)
//	SECPROV_TOOLS_NO_DOWNLOAD=1 skip step 3 (offline or air-gapped machines)
package toolchain
