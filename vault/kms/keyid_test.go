package kms

import (
	"strings"
	"testing"
)

func TestKeyIDRoundTrip(t *testing.T) {
	for _, c := range []struct {
		mount, key string
		version    int
		want       string
	}{
		{"transit-prod", "kms", 1, "vault-transit:transit-prod/kms:v1"},
		{"transit-test", "secprov-test", 12, "vault-transit:transit-test/secprov-test:v12"},
		{"teams/a/transit", "k.v-2_x", 3, "vault-transit:teams/a/transit/k.v-2_x:v3"},
	} {
		id := KeyID(c.mount, c.key, c.version)
		if id != c.want {
			t.Errorf("KeyID(%q, %q, %d) = %q, want %q", c.mount, c.key, c.version, id, c.want)
		}
		m, k, v, err := ParseKeyID(id)
		if err != nil || m != c.mount || k != c.key || v != c.version {
			t.Errorf("ParseKeyID(%q) = %q, %q, %d, %v; want %q, %q, %d", id, m, k, v, err, c.mount, c.key, c.version)
		}
	}
}

func TestParseKeyIDRejects(t *testing.T) {
	for _, c := range []struct{ id, why string }{
		{"", "want vault-transit:"},
		{"aws-kms:arn:1", "want vault-transit:"},
		{"vault-transit:transit/kms", "no :v<version>"},
		{"vault-transit:transit/kms:v0", "not a positive number"},
		{"vault-transit:transit/kms:v-1", "not a positive number"},
		{"vault-transit:transit/kms:v+1", "not a positive number"},
		{"vault-transit:transit/kms:vx", "not a positive number"},
		{"vault-transit:kms:v1", "<mount>/<key>"},
		{"vault-transit:/kms:v1", "<mount>/<key>"},
		{"vault-transit:transit/:v1", "<mount>/<key>"},
	} {
		_, _, _, err := ParseKeyID(c.id)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ParseKeyID(%q) = %v, want an error saying %q", c.id, err, c.why)
		}
	}
}

func TestCiphertextVersion(t *testing.T) {
	for _, c := range []struct {
		ct   string
		want int // 0: an error
	}{
		{"vault:v1:abc=", 1},
		{"vault:v27:abc=", 27},
		{"vault:v0:abc", 0},
		{"vault:v+2:abc", 0},
		{"vault:vx:abc", 0},
		{"vault:v1", 0},
		{"vaultv1:abc", 0},
		{"", 0},
	} {
		v, err := ciphertextVersion(c.ct)
		if v != c.want || (err == nil) != (c.want > 0) {
			t.Errorf("ciphertextVersion(%q) = %d, %v; want %d", c.ct, v, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "abc") {
			t.Errorf("ciphertextVersion(%q) error quotes the ciphertext: %v", c.ct, err)
		}
	}
}
