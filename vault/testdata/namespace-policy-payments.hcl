# secprov: workloads in namespace payments of cluster shop-prod.
# Read-only access to their KV paths; nothing else.

path "kv-shop-prod/data/payments/*" {
  capabilities = ["read"]
}

path "kv-shop-prod/metadata/payments/*" {
  capabilities = ["read", "list"]
}

path "kv-shop-prod/data/shared/config" {
  capabilities = ["read"]
}

path "kv-shop-prod/metadata/shared/config" {
  capabilities = ["read", "list"]
}
