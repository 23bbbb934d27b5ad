package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/internal/atomicfile"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

// ConfigType is the engine resource type of the files the API server
// reads: EncryptionConfiguration (and its key store), audit policy and
// admission configuration. The token predates other providers; stacks
// store it, so it stays.
const ConfigType = "secprov:local:Config"

// ConfigInputs are the config resource's inputs: what hardening rendered
// for the cluster in Dir.
type ConfigInputs struct {
	Dir                string   `json:"dir" secprov:"replace"`
	EncryptionProvider string   `json:"encryptionProvider"`
	EncryptedResources []string `json:"encryptedResources"`
	AuditPolicy        string   `json:"auditPolicy"`     // rendered YAML, empty when audit is off
	AdmissionConfig    string   `json:"admissionConfig"` // rendered YAML
	// KMSName and KMSSocket name the KMS v2 plugin for vault-kms.
	KMSName   string `json:"kmsName,omitempty"`
	KMSSocket string `json:"kmsSocket,omitempty"`
}

type configOut struct {
	// Hash of every rendered file: the API server restarts when it
	// changes. A file restored after it drifted adds a restore stamp, so
	// the API server also restarts to read it again.
	Hash string `json:"hash"`
	// KeyNames are the names (never the bytes) of the data-encryption keys.
	KeyNames []string `json:"keyNames"`
}

type storedKey struct {
	Name   string `json:"name"`
	Secret []byte `json:"secret"`
}

// readKeys returns the cluster's local encryption keys; with create, the
// first one is made when there is none. They live only in a 0600 file in
// the cluster directory, never in state or logs.
func readKeys(l paths.Layout, create bool) ([]hardening.EncryptionKey, error) {
	var stored []storedKey
	data, err := os.ReadFile(l.EncryptionKeys())
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &stored); err != nil {
			return nil, fmt.Errorf("%s is damaged; restore it from a backup, or run `secprov down` and `up` to start over (stored secrets will be lost)", l.EncryptionKeys())
		}
	case errors.Is(err, fs.ErrNotExist) && create:
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		stored = []storedKey{{Name: "key-" + strconv.FormatInt(time.Now().Unix(), 10), Secret: secret}}
		data, err := json.Marshal(stored)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(l.EncryptionKeys(), data, 0o600); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	keys := make([]hardening.EncryptionKey, len(stored))
	for i, k := range stored {
		keys[i] = hardening.EncryptionKey{Name: k.Name, Secret: hardening.Secret(k.Secret)}
	}
	return keys, nil
}

// renderedFile is one file of the config resource and its content.
type renderedFile struct {
	path string
	data []byte
}

// renderConfig renders every file of in, in a fixed order. Without
// create it only reads the key store (for comparing with what is on
// disk), and reports a missing one as an error.
func renderConfig(in ConfigInputs, create bool) ([]renderedFile, []string, error) {
	l := paths.NewLayout(in.Dir)
	var (
		files    []renderedFile
		keyNames []string
	)
	if in.EncryptionProvider != v1alpha1.EncryptionNone {
		var keys []hardening.EncryptionKey
		var kms *hardening.KMS
		var err error
		if in.EncryptionProvider == v1alpha1.EncryptionVaultKMS {
			// Local keys only if an earlier provider left some: they
			// decrypt old data, KMS v2 encrypts.
			if _, serr := os.Stat(l.EncryptionKeys()); serr == nil {
				keys, err = readKeys(l, false)
			}
			kms = &hardening.KMS{Name: in.KMSName, Endpoint: "unix://" + in.KMSSocket}
		} else {
			keys, err = readKeys(l, create)
		}
		if err != nil {
			return nil, nil, err
		}
		spec := v1alpha1.Spec{EncryptionAtRest: v1alpha1.EncryptionAtRest{Provider: in.EncryptionProvider, Resources: in.EncryptedResources}}
		enc, err := hardening.EncryptionConfig(spec, in.EncryptionProvider, keys, kms)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, renderedFile{l.EncryptionConfig(), enc})
		for _, k := range keys {
			keyNames = append(keyNames, k.Name)
		}
	}
	if in.AuditPolicy != "" {
		files = append(files, renderedFile{l.AuditPolicy(), []byte(in.AuditPolicy)})
	}
	files = append(files, renderedFile{l.AdmissionConfig(), []byte(in.AdmissionConfig)})
	return files, keyNames, nil
}

func hashFiles(files []renderedFile) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.path + "\n"))
		h.Write(f.data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// WriteConfig renders and writes every file of in (0600).
func WriteConfig(in ConfigInputs) (configOut, error) {
	l := paths.NewLayout(in.Dir)
	if err := paths.EnsurePrivateDir(l.ConfigDir()); err != nil {
		return configOut{}, err
	}
	files, keyNames, err := renderConfig(in, true)
	if err != nil {
		return configOut{}, err
	}
	for _, f := range files {
		if err := atomicfile.Write(f.path, f.data, 0o600); err != nil {
			return configOut{}, err
		}
	}
	if in.EncryptionProvider == v1alpha1.EncryptionNone {
		if err := os.Remove(l.EncryptionConfig()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return configOut{}, err
		}
	}
	return configOut{Hash: hashFiles(files), KeyNames: keyNames}, nil
}

// driftedFiles compares the files on disk with their render and returns
// the ones that differ (missing, changed, or readable by others), each
// relative to the cluster directory.
func driftedFiles(in ConfigInputs) ([]string, error) {
	l := paths.NewLayout(in.Dir)
	files, _, err := renderConfig(in, false)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{rel(l, l.EncryptionKeys()) + " (missing)"}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		got, err := os.ReadFile(f.path)
		switch {
		case err != nil:
			out = append(out, rel(l, f.path)+" (missing)")
		case !bytes.Equal(got, f.data):
			out = append(out, rel(l, f.path)+" (differs from its render)")
		case Exposed(f.path):
			out = append(out, rel(l, f.path)+" (readable by others)")
		}
	}
	if in.EncryptionProvider == v1alpha1.EncryptionNone {
		if _, err := os.Stat(l.EncryptionConfig()); err == nil {
			out = append(out, rel(l, l.EncryptionConfig())+" (should not exist)")
		}
	}
	if Exposed(l.ConfigDir()) && !slices.ContainsFunc(out, func(s string) bool { return strings.HasSuffix(s, "(readable by others)") }) {
		out = append(out, rel(l, l.ConfigDir())+" (readable by others)")
	}
	return out, nil
}

func rel(l paths.Layout, p string) string {
	if r, err := filepath.Rel(l.Dir, p); err == nil {
		return r
	}
	return p
}

// ConfigResourceType writes the rendered files. Every plan and up compares
// them with their render: a file changed, removed or exposed out of band
// shows as a change naming the file, and up restores it and restarts the
// API server so that it runs with the rendered file again.
func ConfigResourceType() provider.ResourceType {
	return provider.TypedResourceType[ConfigInputs, configOut]{
		Token: ConfigType,
		Create: func(_ context.Context, req provider.TypedRequest[ConfigInputs, configOut]) (string, configOut, error) {
			out, err := WriteConfig(req.Inputs)
			return "config", out, err
		},
		Read: func(_ context.Context, req provider.TypedRequest[ConfigInputs, configOut]) (ConfigInputs, configOut, bool, error) {
			_, err := os.Stat(paths.NewLayout(req.Inputs.Dir).ConfigDir())
			return req.Inputs, req.State, err == nil, nil
		},
		Diff: func(_ context.Context, req provider.TypedRequest[ConfigInputs, configOut], d provider.Diff) (provider.Diff, error) {
			drifted, err := driftedFiles(req.Inputs)
			if err != nil {
				return d, err
			}
			for _, f := range drifted {
				d.Changes = append(d.Changes, provider.Change{Path: "file " + f, Kind: provider.Update})
			}
			return d, nil
		},
		Update: func(_ context.Context, req provider.TypedRequest[ConfigInputs, configOut]) (configOut, error) {
			drifted, err := driftedFiles(req.Inputs)
			if err != nil {
				return configOut{}, err
			}
			out, err := WriteConfig(req.Inputs)
			if err == nil && len(drifted) > 0 && out.Hash == req.State.Hash {
				// Same render, restored files: the API server may have
				// read the drifted ones (a restart since), so it restarts.
				out.Hash += ";restored=" + time.Now().UTC().Format(time.RFC3339Nano)
			}
			return out, err
		},
		Delete: func(_ context.Context, req provider.TypedRequest[ConfigInputs, configOut]) error {
			return RemoveAll(paths.NewLayout(req.Inputs.Dir).ConfigDir())
		},
	}.ResourceType()
}

// Exposed reports whether a file, or anything below a directory, may be
// read by anyone but its owner. Certificates, public keys and JSON
// metadata are public and exempt.
func Exposed(paths ...string) bool {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			// Certificates are public; everything else here is not.
			if !fi.IsDir() && (strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, ".pub") || strings.HasSuffix(p, ".json")) {
				continue
			}
			return true
		}
		if fi.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if Exposed(filepath.Join(p, e.Name())) {
					return true
				}
			}
		}
	}
	return false
}

// RemoveAll removes dir; one already gone is not an error.
func RemoveAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
