# Written by secprov: the local Vault used when a blueprint has no
# spec.vault.address. Rewritten (and Vault restarted) when it changes;
# edits are lost.

# One node with its data on the local disk. The file backend has no HA, so
# there is no cluster to join and no cluster port to open.
storage "file" {
  path = "/home/user/.local/state/secprov/vault/data"
}

# Loopback only, TLS only (certificates from secprov's own local CA).
listener "tcp" {
  address         = "127.0.0.1:18200"
  tls_cert_file   = "/home/user/.local/state/secprov/vault/tls/server.crt"
  tls_key_file    = "/home/user/.local/state/secprov/vault/tls/server.key"
  tls_min_version = "tls12"
}

api_addr           = "https://127.0.0.1:18200"
disable_clustering = true

# Vault locks its memory with mlock(2) so that keys are never swapped out;
# that needs CAP_IPC_LOCK (or a large RLIMIT_MEMLOCK), which a process run
# by an ordinary user does not have, and Vault refuses to start without it
# unless told not to try.
disable_mlock = true

ui        = false
log_level = "info"
