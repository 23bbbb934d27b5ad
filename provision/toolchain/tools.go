package toolchain

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Source says where an installed tool came from.
type Source string

// Sources, in resolution order.
const (
	SourcePath     Source = "path"
	SourceCache    Source = "cache"
	SourceDownload Source = "download"
	SourceBuild    Source = "build"
)

// Tool is one pinned tool: a version and the binaries that make it up, how to
// check them, where its official release lives and how to build it.
type Tool struct {
	Name    string // cache directory name, e.g. "kubernetes"
	Version string // pinned version with a leading "v", e.g. "v1.37.2"
	// Optional tools are installed only when asked for by name.
	Optional bool
	// BinDir is the directory below the install root holding the binaries
	// ("" for the root itself; "bin" for pulumi, whose Automation API runs
	// ROOT/bin/pulumi).
	BinDir   string
	Binaries []Binary
	// Release lists the official release artifacts for a platform, with the
	// publisher's URLs. Nil when the tool has no downloadable release.
	Release func(goos, goarch string) ([]Artifact, error)
	// Digests pins SHA-256 digests (lower-case hex) by artifact URL as
	// returned by Release. An artifact without a pinned digest is verified
	// against the publisher's checksum file instead.
	Digests map[string]string
	// Recipe builds the tool from the Go module proxy. Nil when it cannot be
	// built.
	Recipe *Recipe
}

// Binary is one executable of a tool and the way to ask it for its version.
type Binary struct {
	Name        string
	VersionArgs []string
	// VersionRE finds the version in the combined output of VersionArgs; its
	// first group is compared with the tool's version, ignoring a leading "v".
	VersionRE *regexp.Regexp
	// VersionEnv is added to the environment of the version check, to keep it
	// local and quiet (no update checks).
	VersionEnv []string
}

// ArtifactKind is the container format of a release artifact.
type ArtifactKind int

// Artifact kinds.
const (
	KindBinary ArtifactKind = iota // the file is the binary itself
	KindTarGz                      // gzip-compressed tar archive
	KindZip                        // zip archive
)

func (k ArtifactKind) String() string {
	switch k {
	case KindBinary:
		return "binary"
	case KindTarGz:
		return "tar.gz"
	case KindZip:
		return "zip"
	}
	return fmt.Sprintf("ArtifactKind(%d)", int(k))
}

// Artifact is one file of an official release.
type Artifact struct {
	URL  string
	Kind ArtifactKind
	// Binary is the binary a KindBinary artifact becomes.
	Binary string
	// Prefix is the directory inside an archive that holds the files ("" for
	// the archive root); it is stripped when extracting.
	Prefix string
	// Files are the names below Prefix extracted into the tool's BinDir;
	// empty means every regular file below Prefix.
	Files []string
	// ChecksumURL is the publisher's checksum file. ChecksumName is the
	// artifact's name in a "DIGEST  NAME" list; empty when the file holds
	// only the digest.
	ChecksumURL  string
	ChecksumName string
}

// Recipe builds a tool in a throw-away wrapper module. The same machinery
// (temp dirs, log, lock, rename into place) runs for every recipe, so tests
// can register a small one and exercise it for real.
type Recipe struct {
	// Files are written into the wrapper module directory first (slash
	// paths relative to it → content).
	Files map[string]string
	Steps []Step
}

// Step is one step of a recipe: either a go command or a function.
type Step struct {
	Desc string // shown in progress output and the log
	// Go are the arguments of one go command run in the wrapper module.
	// "{out}" in an argument is replaced with the staging install root.
	Go []string
	// Env is added to the go command's environment. GOFLAGS given here is
	// appended to secprov's own (-buildvcs=false).
	Env []string
	// Func runs instead of Go when set.
	Func func(ctx context.Context, b *Builder) error
}

// Pinned returns the tool table: the versions secprov is tested with.
// Every call returns a fresh copy, so callers may modify it (tests do).
func Pinned() []Tool {
	return []Tool{
		kubernetesTool(),
		etcdTool(),
		pulumiTool(),
		vaultTool(),
	}
}

const (
	kubernetesVersion = "v1.37.2"
	etcdVersion       = "v3.7.3"
	pulumiVersion     = "v3.259.0"
	vaultVersion      = "v1.17.6"
)

func kubernetesTool() Tool {
	// The control plane for local clusters, and the node binaries a kind
	// node image carries, in one go build: they share most packages, so the
	// node binaries add minutes, not a second build.
	bins := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubeadm", "kubectl"}
	t := Tool{
		Name:    "kubernetes",
		Version: kubernetesVersion,
		Digests: map[string]string{},
		Recipe:  kubernetesRecipe(kubernetesVersion, bins),
	}
	for _, b := range bins {
		bin := Binary{
			Name:        b,
			VersionArgs: []string{"--version"},
			VersionRE:   regexp.MustCompile(`Kubernetes\s+(v?[0-9][^\s]*)`),
		}
		switch b {
		case "kubeadm":
			bin.VersionArgs = []string{"version", "-o", "short"}
			bin.VersionRE = regexp.MustCompile(`(?m)^(v[0-9][^\s]*)`)
		case "kubectl":
			bin.VersionArgs = []string{"version", "--client"}
			bin.VersionRE = regexp.MustCompile(`Client Version:\s*(v?[0-9][^\s]*)`)
		}
		t.Binaries = append(t.Binaries, bin)
	}
	t.Release = func(goos, goarch string) ([]Artifact, error) {
		if err := supported(t.Name, goos, goarch, "amd64", "arm64"); err != nil {
			return nil, err
		}
		var arts []Artifact
		for _, b := range bins {
			u := fmt.Sprintf("https://dl.k8s.io/release/%s/bin/%s/%s/%s", t.Version, goos, goarch, b)
			arts = append(arts, Artifact{URL: u, Kind: KindBinary, Binary: b, ChecksumURL: u + ".sha256"})
		}
		return arts, nil
	}
	return t
}

func etcdTool() Tool {
	t := Tool{
		Name:    "etcd",
		Version: etcdVersion,
		Binaries: []Binary{
			{Name: "etcd", VersionArgs: []string{"--version"}, VersionRE: regexp.MustCompile(`etcd Version:\s*(v?[0-9][^\s]*)`)},
			{Name: "etcdctl", VersionArgs: []string{"version"}, VersionRE: regexp.MustCompile(`etcdctl version:\s*(v?[0-9][^\s]*)`)},
		},
		Digests: map[string]string{},
		Recipe:  etcdRecipe(etcdVersion),
	}
	t.Release = func(goos, goarch string) ([]Artifact, error) {
		if err := supported(t.Name, goos, goarch, "amd64", "arm64"); err != nil {
			return nil, err
		}
		base := fmt.Sprintf("https://github.com/etcd-io/etcd/releases/download/%s/", t.Version)
		dir := fmt.Sprintf("etcd-%s-%s-%s", t.Version, goos, goarch)
		return []Artifact{{
			URL:          base + dir + ".tar.gz",
			Kind:         KindTarGz,
			Prefix:       dir,
			Files:        []string{"etcd", "etcdctl"},
			ChecksumURL:  base + "SHA256SUMS",
			ChecksumName: dir + ".tar.gz",
		}}, nil
	}
	return t
}

func pulumiTool() Tool {
	t := Tool{
		Name:    "pulumi",
		Version: pulumiVersion,
		BinDir:  "bin",
		Binaries: []Binary{{
			Name:        "pulumi",
			VersionArgs: []string{"version"},
			// pulumi prints the bare version on a line of its own; warnings
			// (update notices) may surround it.
			VersionRE:  regexp.MustCompile(`(?m)^\s*(v[0-9]+\.[0-9]+\.[0-9]+[^\s]*)\s*$`),
			VersionEnv: []string{"PULUMI_SKIP_UPDATE_CHECK=true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"},
		}},
		Digests: map[string]string{},
		Recipe:  pulumiRecipe(pulumiVersion),
	}
	t.Release = func(goos, goarch string) ([]Artifact, error) {
		if err := supported(t.Name, goos, goarch, "amd64", "arm64"); err != nil {
			return nil, err
		}
		arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[goarch]
		bare := strings.TrimPrefix(t.Version, "v")
		name := fmt.Sprintf("pulumi-%s-%s-%s.tar.gz", t.Version, goos, arch)
		return []Artifact{{
			URL:  "https://get.pulumi.com/releases/sdk/" + name,
			Kind: KindTarGz,
			// The archive also carries language hosts and plugins; keep them
			// all beside pulumi, as the official installer does.
			Prefix:       "pulumi",
			ChecksumURL:  fmt.Sprintf("https://get.pulumi.com/releases/sdk/pulumi-%s-checksums.txt", bare),
			ChecksumName: name,
		}}, nil
	}
	return t
}

func vaultTool() Tool {
	t := Tool{
		Name:    "vault",
		Version: vaultVersion,
		// Required: the default blueprints encrypt with vault-kms and get
		// workload secrets from Vault, so up needs the local Vault.
		Binaries: []Binary{{
			Name:        "vault",
			VersionArgs: []string{"version"},
			VersionRE:   regexp.MustCompile(`Vault\s+(v?[0-9][^\s]*)`),
		}},
		Digests: map[string]string{},
		Recipe:  vaultRecipe(vaultVersion),
	}
	t.Release = func(goos, goarch string) ([]Artifact, error) {
		if err := supported(t.Name, goos, goarch, "amd64", "arm64"); err != nil {
			return nil, err
		}
		bare := strings.TrimPrefix(t.Version, "v")
		base := fmt.Sprintf("https://releases.hashicorp.com/vault/%s/", bare)
		name := fmt.Sprintf("vault_%s_%s_%s.zip", bare, goos, goarch)
		return []Artifact{{
			URL:          base + name,
			Kind:         KindZip,
			Files:        []string{"vault"},
			ChecksumURL:  base + fmt.Sprintf("vault_%s_SHA256SUMS", bare),
			ChecksumName: name,
		}}, nil
	}
	return t
}

// supported reports whether secprov knows the official release of tool for
// goos/goarch (only Linux is a target; the others lack one of the tools).
func supported(tool, goos, goarch string, arches ...string) error {
	if goos == "linux" {
		for _, a := range arches {
			if a == goarch {
				return nil
			}
		}
	}
	return fmt.Errorf("%s has no official release for %s/%s that secprov knows of", tool, goos, goarch)
}

// sameVersion compares two versions ignoring a leading "v".
func sameVersion(a, b string) bool {
	return strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}

func toolNames(tools map[string]Tool) string {
	names := make([]string, 0, len(tools))
	for n := range tools {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
