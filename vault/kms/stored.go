package kms

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// StoredPrefix starts every etcd value the apiserver wrote through a KMS
// v2 provider; the provider's name and a colon follow.
const StoredPrefix = "k8s:enc:kms:v2:"

// DEKSourceType says how the apiserver turns the plaintext of the
// encrypted DEK source into the key that encrypted the data.
type DEKSourceType int32

// The DEK source types of the apiserver's EncryptedObject.
const (
	DEKSourceAESGCMKey      DEKSourceType = 0 // the source is the AES-GCM DEK itself
	DEKSourceHKDFSHA256Seed DEKSourceType = 1 // the source is a seed; HKDF-SHA256 derives the DEK (the default since 1.29)
)

func (t DEKSourceType) String() string {
	switch t {
	case DEKSourceAESGCMKey:
		return "AES_GCM_KEY"
	case DEKSourceHKDFSHA256Seed:
		return "HKDF_SHA256_XNONCE_AES_GCM_SEED"
	}
	return "DEKSourceType(" + strconv.Itoa(int(t)) + ")"
}

// Stored describes one etcd value written through a KMS v2 provider. It
// holds sizes and names, never key material.
type Stored struct {
	ProviderName   string        // the provider's name in the EncryptionConfiguration
	KeyID          string        // the plugin's key ID at write time
	DEKSourceType  DEKSourceType // how the DEK derives from its source
	DataLen        int           // bytes of encrypted object data
	DEKSourceLen   int           // bytes of the plugin's ciphertext of the DEK source
	AnnotationKeys []string      // sorted keys of the plugin's annotations
}

// Prefixes of the apiserver's other storage transformers, to say what a
// value is instead of only what it is not.
var otherPrefixes = []struct{ prefix, what string }{
	{"k8s:enc:kms:v1:", "KMS v1 (deprecated), not KMS v2"},
	{"k8s:enc:aescbc:v1:", "aescbc, not KMS v2"},
	{"k8s:enc:aesgcm:v1:", "aesgcm, not KMS v2"},
	{"k8s:enc:secretbox:v1:", "secretbox, not KMS v2"},
	{"k8s\x00", "not encrypted: plain Kubernetes protobuf"},
	{"{", "not encrypted: plain JSON"},
}

// Field numbers of the apiserver's EncryptedObject message.
const (
	fieldEncryptedData          = 1
	fieldKeyID                  = 2
	fieldEncryptedDEKSource     = 3
	fieldAnnotations            = 4
	fieldEncryptedDEKSourceType = 5
)

// ParseStored decodes a raw etcd value the apiserver wrote with a KMS v2
// provider, and checks it the way the apiserver does before decrypting.
func ParseStored(raw []byte) (Stored, error) {
	rest, ok := bytes.CutPrefix(raw, []byte(StoredPrefix))
	if !ok {
		for _, o := range otherPrefixes {
			if bytes.HasPrefix(raw, []byte(o.prefix)) {
				return Stored{}, fmt.Errorf("stored value is %s", o.what)
			}
		}
		if len(raw) == 0 {
			return Stored{}, errors.New("stored value is empty")
		}
		return Stored{}, fmt.Errorf("stored value does not start with %s", StoredPrefix)
	}
	name, msg, ok := bytes.Cut(rest, []byte(":"))
	if !ok || len(name) == 0 {
		return Stored{}, fmt.Errorf("stored value: no provider name after %s", StoredPrefix)
	}
	s := Stored{ProviderName: string(name)}
	var haveSource bool
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return Stored{}, fmt.Errorf("stored value from provider %s: bad field tag: %w", s.ProviderName, protowire.ParseError(n))
		}
		msg = msg[n:]
		var err error
		switch {
		case num == fieldEncryptedData && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(msg)
			s.DataLen = len(b)
		case num == fieldKeyID && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(msg)
			s.KeyID = string(b)
		case num == fieldEncryptedDEKSource && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(msg)
			s.DEKSourceLen, haveSource = len(b), true
		case num == fieldAnnotations && typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(msg)
			if n >= 0 {
				var key string
				key, err = annotationKey(b)
				s.AnnotationKeys = append(s.AnnotationKeys, key)
			}
		case num == fieldEncryptedDEKSourceType && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(msg)
			s.DEKSourceType = DEKSourceType(int32(v))
		default:
			// Unknown fields are skipped, as protobuf readers do, so a
			// newer apiserver's additions do not break older checks.
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return Stored{}, fmt.Errorf("stored value from provider %s: field %d: %w", s.ProviderName, num, protowire.ParseError(n))
		}
		if err != nil {
			return Stored{}, fmt.Errorf("stored value from provider %s: %w", s.ProviderName, err)
		}
		msg = msg[n:]
	}
	switch {
	case s.DataLen == 0:
		return Stored{}, fmt.Errorf("stored value from provider %s: no encrypted data", s.ProviderName)
	case s.KeyID == "":
		return Stored{}, fmt.Errorf("stored value from provider %s: no key ID", s.ProviderName)
	case !haveSource || s.DEKSourceLen == 0:
		return Stored{}, fmt.Errorf("stored value from provider %s: no encrypted DEK source", s.ProviderName)
	case s.DEKSourceType != DEKSourceAESGCMKey && s.DEKSourceType != DEKSourceHKDFSHA256Seed:
		return Stored{}, fmt.Errorf("stored value from provider %s: unknown DEK source type %d", s.ProviderName, int32(s.DEKSourceType))
	}
	slices.Sort(s.AnnotationKeys)
	return s, nil
}

// annotationKey reads the key of one map<string, bytes> entry (field 1 of
// the entry message; the value is field 2).
func annotationKey(entry []byte) (string, error) {
	var key string
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return "", fmt.Errorf("annotation: %w", protowire.ParseError(n))
		}
		entry = entry[n:]
		if num == 1 && typ == protowire.BytesType {
			var b []byte
			b, n = protowire.ConsumeBytes(entry)
			key = string(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, entry)
		}
		if n < 0 {
			return "", fmt.Errorf("annotation: %w", protowire.ParseError(n))
		}
		entry = entry[n:]
	}
	return key, nil
}
