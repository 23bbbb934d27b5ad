package images

import (
	"strings"
	"testing"
)

func inputsOfPairs(pairs ...string) Inputs {
	var in Inputs
	for i := 0; i+1 < len(pairs); i += 2 {
		in.Add(pairs[i], pairs[i+1])
	}
	return in
}

func TestInputsDigest(t *testing.T) {
	base := inputsOfPairs("debian.suite", "bookworm", "bin.sha256:kubelet", "aa", "version", "v1.37.2")
	tests := []struct {
		name string
		in   Inputs
		same bool
	}{
		{"same inputs added in another order", inputsOfPairs("version", "v1.37.2", "debian.suite", "bookworm", "bin.sha256:kubelet", "aa"), true},
		{"a value changes", inputsOfPairs("debian.suite", "bookworm", "bin.sha256:kubelet", "ab", "version", "v1.37.2"), false},
		{"a name changes", inputsOfPairs("debian.suite", "bookworm", "bin.sha256:kubeadm", "aa", "version", "v1.37.2"), false},
		{"an input is added", inputsOfPairs("debian.suite", "bookworm", "bin.sha256:kubelet", "aa", "version", "v1.37.2", "x", ""), false},
		{"an input is dropped", inputsOfPairs("debian.suite", "bookworm", "version", "v1.37.2"), false},
		// Name/value boundaries must not be ambiguous.
		{"value moved into the name", inputsOfPairs("debian.suite", "bookworm", "bin.sha256:kubelet", "aa", "versionv1.37.2", ""), false},
	}
	want := base.Digest()
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("digest %q is not hex sha256", want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Digest()
			if (got == want) != tt.same {
				t.Errorf("digest equal = %v, want %v", got == want, tt.same)
			}
		})
	}
}

func TestInputsDigestStable(t *testing.T) {
	// A digest must not change between secprov builds unless RecipeVersion
	// does: it names images users already have.
	in := inputsOfPairs("image", "pause", "version", "3.10.2")
	if RecipeVersion != "1" {
		t.Skip("RecipeVersion changed: update the expected digest")
	}
	const want = "51f57268e9af31b593842bde349637bdab209e2ac82cc679ccb957b3c5a89f03"
	if got := in.Digest(); got != want {
		t.Errorf("digest = %s, want %s (if the canonical form changed on purpose, bump RecipeVersion)", got, want)
	}
}

func TestInputsAddTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("adding an input twice did not panic")
		}
	}()
	inputsOfPairs("a", "1", "a", "2")
}

func TestDigestTag(t *testing.T) {
	const d = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		version, digest, want string
	}{
		{"v1.37.2", d, "v1.37.2-0123456789ab"},
		{"v1.20.2", "abc", "v1.20.2-abc"},
	}
	for _, tt := range tests {
		if got := DigestTag(tt.version, tt.digest); got != tt.want {
			t.Errorf("DigestTag(%q, %q) = %q, want %q", tt.version, tt.digest, got, tt.want)
		}
	}
}

func TestParseDigestTag(t *testing.T) {
	tests := []struct {
		tag, version, short string
		ok                  bool
	}{
		{"v1.37.2-0123456789ab", "v1.37.2", "0123456789ab", true},
		{"3.7.0-0-0123456789ab", "3.7.0-0", "0123456789ab", true},
		{"v1.37.2", "", "", false},
		{"3.7.0-0", "", "", false},
		{"v1.37.2-0123456789az", "", "", false},
		{"-0123456789ab", "", "", false},
		{"v1.37.2-0123456789abc", "", "", false},
	}
	for _, tt := range tests {
		v, s, ok := ParseDigestTag(tt.tag)
		if v != tt.version || s != tt.short || ok != tt.ok {
			t.Errorf("ParseDigestTag(%q) = %q, %q, %v; want %q, %q, %v", tt.tag, v, s, ok, tt.version, tt.short, tt.ok)
		}
		if ok {
			if back := DigestTag(v, s); back != tt.tag {
				t.Errorf("DigestTag(ParseDigestTag(%q)) = %q", tt.tag, back)
			}
		}
	}
}
