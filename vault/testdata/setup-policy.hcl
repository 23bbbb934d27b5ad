# secprov setup policy for cluster shop-prod.
# Lets secprov create, check and remove this cluster's Vault objects; nothing else.

# the transit mount: enable, check its type, disable on down
path "sys/mounts/transit-shop-prod" {
  capabilities = ["read", "update", "delete"]
}

# the KMS key: create, check, delete on down
path "transit-shop-prod/keys/kms-shop-prod" {
  capabilities = ["read", "update", "delete"]
}

# allow the key's deletion right before down deletes it
path "transit-shop-prod/keys/kms-shop-prod/config" {
  capabilities = ["update"]
}

# secprov rotate-keys: add a new key version
path "transit-shop-prod/keys/kms-shop-prod/rotate" {
  capabilities = ["update"]
}

# down disables the transit mount only when no other key is left in it
path "transit-shop-prod/keys" {
  capabilities = ["list"]
}

# the KV v2 mount of workload secrets: enable, check, disable on down
path "sys/mounts/kv-shop-prod" {
  capabilities = ["read", "update", "delete"]
}

# wait until a new KV v2 mount has finished upgrading
path "kv-shop-prod/config" {
  capabilities = ["read"]
}

# the Kubernetes auth mount (Vault requires sudo for sys/auth)
path "sys/auth/kubernetes-shop-prod" {
  capabilities = ["read", "update", "delete", "sudo"]
}

# its API server address, CA and token reviewer JWT
path "auth/kubernetes-shop-prod/config" {
  capabilities = ["read", "update"]
}

# one login role per namespace (this mount belongs to the cluster)
path "auth/kubernetes-shop-prod/role/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# the KMS plugin's policy
path "sys/policies/acl/secprov-shop-prod-kms" {
  capabilities = ["read", "update", "delete"]
}

# the read-only policy of namespace payments
path "sys/policies/acl/secprov-shop-prod-ns-payments" {
  capabilities = ["read", "update", "delete"]
}

# the read-only policy of namespace storefront
path "sys/policies/acl/secprov-shop-prod-ns-storefront" {
  capabilities = ["read", "update", "delete"]
}

# the token role that mints the KMS plugin's periodic orphan token
path "auth/token/roles/secprov-shop-prod-kms" {
  capabilities = ["create", "read", "update", "delete"]
}

# mint the KMS plugin's token from that role
path "auth/token/create/secprov-shop-prod-kms" {
  capabilities = ["update"]
}

# check that the KMS token is still valid (by accessor: secprov keeps no token)
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# revoke the KMS token on down or when it is replaced
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
