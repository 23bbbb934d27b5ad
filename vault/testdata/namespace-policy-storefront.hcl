# secprov: workloads in namespace storefront of cluster shop-prod.
# Read-only access to their KV paths; nothing else.

path "kv-shop-prod/data/storefront*" {
  capabilities = ["read"]
}

path "kv-shop-prod/metadata/storefront*" {
  capabilities = ["read", "list"]
}
