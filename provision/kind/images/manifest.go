package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// ManifestSchema is the version of the manifest file's format.
const ManifestSchema = 1

// Manifest records the last offline build: the set it produced and, for
// each image, what it is made of. `secprov images list` prints it.
type Manifest struct {
	Schema  int       `json:"schema"`
	BuiltAt time.Time `json:"builtAt"`
	Set     Set       `json:"set"`
	Images  []Image   `json:"images"`
}

// Image is one built image.
type Image struct {
	// Name is the image's role: "node", "cilium-agent", "kube-apiserver"…
	Name string `json:"name"`
	// Ref is the tag that names the image by its inputs.
	Ref Ref `json:"ref"`
	// Aliases are further tags of the same image, such as the one kubeadm
	// asks for inside the node.
	Aliases []Ref `json:"aliases,omitempty"`
	// ID is the Docker image ID.
	ID string `json:"id"`
	// Inputs is the digest of the image's inputs (the LabelInputs label).
	Inputs string `json:"inputs"`
	// Size is the image's size in bytes as Docker reports it.
	Size int64 `json:"size"`
	// Preloaded lists the images (by Name) imported into this one's
	// containerd.
	Preloaded []string `json:"preloaded,omitempty"`
	// Components is the image's short SBOM.
	Components []Component `json:"components"`
}

// Component is one SBOM entry: a package, module, binary or file set.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source says where it came from: "debian bookworm", "go module
	// github.com/cilium/cilium", "toolchain cache", "module sigs.k8s.io/kind".
	Source string `json:"source"`
	// SHA256 is the hex digest of the binary or file, when it is one.
	SHA256 string `json:"sha256,omitempty"`
}

// Image returns the image with the given name.
func (m *Manifest) Image(name string) (Image, bool) {
	for _, im := range m.Images {
		if im.Name == name {
			return im, true
		}
	}
	return Image{}, false
}

// Validate checks that the manifest is complete: every image named, tagged
// and digested, and every ref of the set among the images.
func (m *Manifest) Validate() error {
	var errs []error
	if m.Schema != ManifestSchema {
		errs = append(errs, fmt.Errorf("schema %d, this secprov reads %d", m.Schema, ManifestSchema))
	}
	seen := map[string]bool{}
	tags := map[string]bool{}
	for i, im := range m.Images {
		switch {
		case im.Name == "":
			errs = append(errs, fmt.Errorf("images[%d]: no name", i))
		case seen[im.Name]:
			errs = append(errs, fmt.Errorf("images[%d]: %q listed twice", i, im.Name))
		}
		seen[im.Name] = true
		if im.Ref.Repository == "" || im.Ref.Tag == "" {
			errs = append(errs, fmt.Errorf("images[%d] (%s): no ref", i, im.Name))
		}
		if im.Inputs == "" {
			errs = append(errs, fmt.Errorf("images[%d] (%s): no input digest", i, im.Name))
		}
		tags[im.Ref.String()] = true
		for _, a := range im.Aliases {
			tags[a.String()] = true
		}
	}
	for _, r := range []struct {
		field string
		ref   Ref
	}{
		{"node", m.Set.Node}, {"ciliumAgent", m.Set.CiliumAgent}, {"ciliumOperator", m.Set.CiliumOperator},
		{"etcd", m.Set.Etcd}, {"coreDNS", m.Set.CoreDNS}, {"pause", m.Set.Pause}, {"probe", m.Set.Probe},
	} {
		if r.ref.Repository == "" {
			errs = append(errs, fmt.Errorf("set.%s is empty", r.field))
			continue
		}
		if !tags[r.ref.String()] {
			errs = append(errs, fmt.Errorf("set.%s %s is not among the images", r.field, r.ref))
		}
	}
	if !m.Set.Offline {
		errs = append(errs, errors.New("set.offline is false"))
	}
	return errors.Join(errs...)
}

// sortImages orders images by name, for stable output.
func (m *Manifest) sortImages() {
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Name < m.Images[j].Name })
}

// ErrNoManifest is wrapped by ReadManifest when no build has finished.
var ErrNoManifest = errors.New("no offline images have been built: run `secprov images build`")

// ReadManifest reads and validates the manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s does not exist)", ErrNoManifest, path)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w; run `secprov images build` to rewrite it", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s is incomplete: %w; run `secprov images build`", path, err)
	}
	return &m, nil
}

// WriteManifest validates m and writes it atomically (the file names no
// secret, so it is world-readable like the rest of the cache).
func WriteManifest(path string, m *Manifest) error {
	m.sortImages()
	if err := m.Validate(); err != nil {
		return fmt.Errorf("refusing to write an incomplete manifest: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".manifest-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
