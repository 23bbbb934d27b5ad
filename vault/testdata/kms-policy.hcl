# secprov: KMS v2 plugin of cluster shop-prod.
# Encrypt and decrypt with one transit key; nothing else.

path "transit-shop-prod/encrypt/kms-shop-prod" {
  capabilities = ["update"]
}

path "transit-shop-prod/decrypt/kms-shop-prod" {
  capabilities = ["update"]
}

path "transit-shop-prod/keys/kms-shop-prod" {
  capabilities = ["read"]
}
