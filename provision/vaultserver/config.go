package vaultserver

import (
	"fmt"
	"strconv"
	"strings"
)

// renderConfig returns the Vault server configuration (HCL) for a local
// Vault whose files live under dir and that listens on 127.0.0.1:port.
// Everything secprov decides about the server is here, in one function, so
// the golden file shows a reviewer the whole of it.
func renderConfig(l layout, port int) []byte {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var b strings.Builder
	b.WriteString(`# Written by secprov: the local Vault used when a blueprint has no
# spec.vault.address. Rewritten (and Vault restarted) when it changes;
# edits are lost.

# One node with its data on the local disk. The file backend has no HA, so
# there is no cluster to join and no cluster port to open.
storage "file" {
  path = ` + hclString(l.dataDir()) + `
}

# Loopback only, TLS only (certificates from secprov's own local CA).
listener "tcp" {
  address         = ` + hclString(addr) + `
  tls_cert_file   = ` + hclString(l.serverCert()) + `
  tls_key_file    = ` + hclString(l.serverKey()) + `
  tls_min_version = "tls12"
}

api_addr           = ` + hclString("https://"+addr) + `
disable_clustering = true

# Vault locks its memory with mlock(2) so that keys are never swapped out;
# that needs CAP_IPC_LOCK (or a large RLIMIT_MEMLOCK), which a process run
# by an ordinary user does not have, and Vault refuses to start without it
# unless told not to try.
disable_mlock = true

ui        = false
log_level = "info"
`)
	return []byte(b.String())
}

// hclString quotes s as an HCL string. HCL's escapes are Go's for the
// characters that can occur in a path.
func hclString(s string) string {
	return strconv.Quote(s)
}
