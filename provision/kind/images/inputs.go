package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// RecipeVersion is part of every image's inputs. Bump it when a recipe
// changes what it produces from the same inputs (a file moved, a script
// changed), so every cached image is rebuilt once.
const RecipeVersion = "1"

// Repository is where every offline image is tagged. It is no registry:
// the name keeps the images from masquerading as upstream ones, and
// nothing ever pulls from it.
const Repository = "secprov.local"

// LabelInputs is the image label holding the digest of the image's inputs;
// a build is skipped when the tagged image carries the digest it would
// have.
const LabelInputs = "dev.secprov.images.inputs"

// Inputs are everything an image is made from: pinned versions, package
// lists, the sha256 of binaries and files, other images' digests. Names
// are unique; the digest does not depend on the order they were added in.
type Inputs struct {
	items map[string]string
}

// Add records one input. Adding a name twice is a programming error and
// panics, so two inputs can never silently shadow each other.
func (in *Inputs) Add(name, value string) {
	if in.items == nil {
		in.items = map[string]string{}
	}
	if _, dup := in.items[name]; dup {
		panic(fmt.Sprintf("images: input %q added twice", name))
	}
	in.items[name] = value
}

// Digest is the hex sha256 of the inputs in a canonical form (sorted
// name/value pairs as JSON), always including RecipeVersion.
func (in Inputs) Digest() string {
	names := make([]string, 0, len(in.items))
	for n := range in.items {
		names = append(names, n)
	}
	sort.Strings(names)
	pairs := make([][2]string, 0, len(names)+1)
	pairs = append(pairs, [2]string{"\x00recipe", RecipeVersion})
	for _, n := range names {
		pairs = append(pairs, [2]string{n, in.items[n]})
	}
	b, err := json.Marshal(pairs)
	if err != nil { // cannot happen for strings
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Names lists the inputs' names, sorted (for logs and tests).
func (in Inputs) Names() []string {
	names := make([]string, 0, len(in.items))
	for n := range in.items {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// shortDigestLen is how much of an input digest goes into a tag: 48 bits
// tell a user's few builds apart; the label holds the whole digest.
const shortDigestLen = 12

// DigestTag is the tag of an image built from inputs with this digest:
// VERSION-DIGEST12 ("v1.20.2-0123456789ab").
func DigestTag(version, digest string) string {
	if len(digest) > shortDigestLen {
		digest = digest[:shortDigestLen]
	}
	return version + "-" + digest
}

// ParseDigestTag splits a tag made by DigestTag; ok is false for any
// other tag.
func ParseDigestTag(tag string) (version, short string, ok bool) {
	i := strings.LastIndexByte(tag, '-')
	if i <= 0 || len(tag)-i-1 != shortDigestLen {
		return "", "", false
	}
	short = tag[i+1:]
	if _, err := hex.DecodeString(short); err != nil {
		return "", "", false
	}
	return tag[:i], short, true
}

// bytesSHA256 is the hex sha256 of b.
func bytesSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
