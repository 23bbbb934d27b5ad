package kms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// keyIDPrefix marks the key IDs this plugin reports, so a key ID read back
// from etcd says which kind of KMS wrote it.
const keyIDPrefix = "vault-transit:"

// KeyID is the key ID the plugin reports for version of the transit key
// mount/key: vault-transit:<mount>/<key>:v<version>. The apiserver stores
// it beside each object and compares it with Status to notice rotations.
func KeyID(mount, key string, version int) string {
	return keyIDPrefix + mount + "/" + key + ":v" + strconv.Itoa(version)
}

// ParseKeyID splits a key ID made by KeyID into its mount, key and version.
func ParseKeyID(id string) (mount, key string, version int, err error) {
	rest, ok := strings.CutPrefix(id, keyIDPrefix)
	if !ok {
		return "", "", 0, fmt.Errorf("key ID %q: want %s<mount>/<key>:v<version>", id, keyIDPrefix)
	}
	// Mounts may nest (a/b/transit) but transit key names hold neither
	// "/" nor ":", so the last separators are the right ones.
	i := strings.LastIndex(rest, ":v")
	if i < 0 {
		return "", "", 0, fmt.Errorf("key ID %q: no :v<version> suffix", id)
	}
	version, err = strconv.Atoi(rest[i+2:])
	if err != nil || version < 1 || strings.HasPrefix(rest[i+2:], "+") {
		return "", "", 0, fmt.Errorf("key ID %q: version %q is not a positive number", id, rest[i+2:])
	}
	path := rest[:i]
	j := strings.LastIndex(path, "/")
	if j <= 0 || j == len(path)-1 {
		return "", "", 0, fmt.Errorf("key ID %q: want <mount>/<key> before the version", id)
	}
	return path[:j], path[j+1:], version, nil
}

// ciphertextVersion reads the key version from a transit ciphertext,
// vault:v<N>:<base64>. Vault encrypts with the latest version and says
// which one in this prefix, so it is the truth about what encrypted.
func ciphertextVersion(ct string) (int, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0, errors.New("not a Vault transit ciphertext (want vault:v<N>:...)")
	}
	n, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, errors.New("not a Vault transit ciphertext (want vault:v<N>:...)")
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 || strings.HasPrefix(n, "+") {
		return 0, errors.New("transit ciphertext has a bad key version")
	}
	return v, nil
}
