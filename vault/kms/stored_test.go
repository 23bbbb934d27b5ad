package kms

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// object is an EncryptedObject to encode by hand, the way the apiserver's
// generated code lays it out.
type object struct {
	data    []byte
	keyID   string
	source  []byte
	ann     map[string][]byte
	srcType uint64
	extra   []byte // appended raw, for unknown or broken fields
}

func (o object) encode() []byte {
	var b []byte
	if len(o.data) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, o.data)
	}
	if o.keyID != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, o.keyID)
	}
	if len(o.source) > 0 {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, o.source)
	}
	keys := make([]string, 0, len(o.ann))
	for k := range o.ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendBytes(e, o.ann[k])
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	if o.srcType != 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, o.srcType)
	}
	return append(b, o.extra...)
}

func stored(name string, o object) []byte {
	return append([]byte(StoredPrefix+name+":"), o.encode()...)
}

var good = object{
	data:    make([]byte, 100),
	keyID:   "vault-transit:transit-prod/kms:v2",
	source:  []byte("vault:v2:c2VlZA=="),
	srcType: 1,
}

func TestParseStored(t *testing.T) {
	withAnn := good
	withAnn.ann = map[string][]byte{"version.encryption.secprov.dev": []byte("1"), "alg.example.io": nil}
	unknownField := good
	unknownField.extra = protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7)
	aesKey := good
	aesKey.srcType = 0
	for _, c := range []struct {
		name string
		raw  []byte
		want Stored
	}{
		{"seed", stored("secprov-vault", good), Stored{ProviderName: "secprov-vault", KeyID: good.keyID,
			DEKSourceType: DEKSourceHKDFSHA256Seed, DataLen: 100, DEKSourceLen: len(good.source)}},
		{"annotations", stored("p", withAnn), Stored{ProviderName: "p", KeyID: good.keyID,
			DEKSourceType: DEKSourceHKDFSHA256Seed, DataLen: 100, DEKSourceLen: len(good.source),
			AnnotationKeys: []string{"alg.example.io", "version.encryption.secprov.dev"}}},
		{"unknown field skipped", stored("p", unknownField), Stored{ProviderName: "p", KeyID: good.keyID,
			DEKSourceType: DEKSourceHKDFSHA256Seed, DataLen: 100, DEKSourceLen: len(good.source)}},
		{"AES-GCM key", stored("p", aesKey), Stored{ProviderName: "p", KeyID: good.keyID,
			DEKSourceType: DEKSourceAESGCMKey, DataLen: 100, DEKSourceLen: len(good.source)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStored(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParseStored = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseStoredRejects(t *testing.T) {
	noKeyID, noData, noSource, badType := good, good, good, good
	noKeyID.keyID = ""
	noData.data = nil
	noSource.source = nil
	badType.srcType = 7
	truncated := stored("p", good)
	truncated = truncated[:len(truncated)-3]
	badAnn := good
	badAnn.extra = protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte{0x0a, 0x09, 'x'})
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"plain protobuf", []byte("k8s\x00\n\x0cv1\x12\x06Secret"), "not encrypted: plain Kubernetes protobuf"},
		{"plain JSON", []byte(`{"kind":"Secret"}`), "not encrypted: plain JSON"},
		{"secretbox", []byte("k8s:enc:secretbox:v1:key1:xxxx"), "secretbox, not KMS v2"},
		{"aescbc", []byte("k8s:enc:aescbc:v1:key1:xxxx"), "aescbc, not KMS v2"},
		{"aesgcm", []byte("k8s:enc:aesgcm:v1:key1:xxxx"), "aesgcm, not KMS v2"},
		{"kms v1", []byte("k8s:enc:kms:v1:vault:xxxx"), "KMS v1"},
		{"other", []byte("hello"), "does not start with k8s:enc:kms:v2:"},
		{"no name", []byte("k8s:enc:kms:v2:"), "no provider name"},
		{"empty name", append([]byte("k8s:enc:kms:v2::"), good.encode()...), "no provider name"},
		{"no key ID", stored("p", noKeyID), "provider p: no key ID"},
		{"no data", stored("p", noData), "no encrypted data"},
		{"no DEK source", stored("p", noSource), "no encrypted DEK source"},
		{"unknown DEK source type", stored("p", badType), "unknown DEK source type 7"},
		{"truncated", truncated, "provider p: field"},
		{"bad annotation", stored("p", badAnn), "annotation"},
		{"bad tag", append([]byte("k8s:enc:kms:v2:p:"), 0xff), "bad field tag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseStored(c.raw)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseStored = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDEKSourceTypeString(t *testing.T) {
	for typ, want := range map[DEKSourceType]string{
		DEKSourceAESGCMKey: "AES_GCM_KEY", DEKSourceHKDFSHA256Seed: "HKDF_SHA256_XNONCE_AES_GCM_SEED", 9: "DEKSourceType(9)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("DEKSourceType(%d).String() = %q, want %q", int32(typ), got, want)
		}
	}
}

func FuzzParseStored(f *testing.F) {
	withAnn := good
	withAnn.ann = map[string][]byte{"alg.example.io": []byte("x")}
	for _, seed := range [][]byte{
		stored("secprov", good), stored("p", withAnn), []byte(StoredPrefix), []byte(StoredPrefix + "p:"),
		[]byte("k8s:enc:secretbox:v1:k:"), []byte("k8s\x00"), nil,
	} {
		f.Add(seed)
	}
	for _, file := range []string{"secret-kms-v1.etcd", "secret-kms-v2.etcd"} {
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := ParseStored(raw)
		if err != nil {
			return
		}
		// Whatever parses is what the apiserver would accept to decrypt.
		if s.ProviderName == "" || s.KeyID == "" || s.DataLen == 0 || s.DEKSourceLen == 0 {
			t.Errorf("ParseStored accepted an incomplete object: %+v", s)
		}
		if !slices.IsSorted(s.AnnotationKeys) {
			t.Errorf("annotation keys not sorted: %q", s.AnnotationKeys)
		}
		if strings.Contains(s.ProviderName, ":") {
			t.Errorf("provider name %q holds ':'", s.ProviderName)
		}
	})
}

// The testdata values are raw etcd values of a Secret, written by a real
// kube-apiserver v1.37.2 through this plugin (secprov kms-plugin) before
// and after a rotation of the transit key. The dev Vault that held the key
// is gone, so they are safe to keep.
func TestParseStoredFromARealAPIServer(t *testing.T) {
	for file, keyID := range map[string]string{
		"secret-kms-v1.etcd": KeyID("transit-smoke", "kms", 1),
		"secret-kms-v2.etcd": KeyID("transit-smoke", "kms", 2),
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseStored(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// A 32-byte seed wrapped by transit: vault:vN: + base64(nonce 12 + 32 + tag 16).
		want := Stored{ProviderName: "secprov-vault", KeyID: keyID, DEKSourceType: DEKSourceHKDFSHA256Seed,
			DataLen: s.DataLen, DEKSourceLen: len("vault:v1:") + 80}
		if !reflect.DeepEqual(s, want) || s.DataLen < 100 {
			t.Errorf("%s: ParseStored = %+v, want %+v and some data", file, s, want)
		}
	}
}
