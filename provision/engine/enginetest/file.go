package enginetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"secprov.dev/secprov/provision/engine/provider"
)

// FileToken is the type token of the test resource type.
const FileToken = "secprov:test:File"

// EnvBlockCreate, when set in the engine's environment, makes File's Create
// write that path as a marker and then block until cancelled: tests use it
// to kill an `up` in the middle of a Create.
const EnvBlockCreate = "SECPROV_TEST_BLOCK_CREATE"

// FileInputs are secprov:test:File's inputs.
type FileInputs struct {
	// Path is where the file lives; changing it replaces the resource
	// (new file written, old one deleted).
	Path string `json:"path" secprov:"replace"`
	// Content changes in place.
	Content string `json:"content"`
	// Mode is the permission bits (default 0600).
	Mode int `json:"mode,omitempty"`
	// FailCreate makes Create write the file and then fail, to exercise
	// "created but failed to initialise".
	FailCreate bool `json:"failCreate,omitempty"`
}

// FileOutputs are secprov:test:File's outputs.
type FileOutputs struct {
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// Written is when the content was last written (RFC 3339).
	Written string `json:"written"`
	// SecretsInEnv lists secret variables the provider process could see
	// (it must see none).
	SecretsInEnv []string `json:"secretsInEnv,omitempty"`
}

// FileResourceType writes a file with given content and mode.
func FileResourceType() provider.ResourceType {
	return provider.TypedResourceType[FileInputs, FileOutputs]{
		Token: FileToken,
		Check: func(_ context.Context, in *FileInputs) []provider.Failure {
			var f []provider.Failure
			if !filepath.IsAbs(in.Path) {
				f = append(f, provider.Failure{Property: "path", Reason: fmt.Sprintf("%q must be an absolute path", in.Path)})
			}
			if in.Mode == 0 {
				in.Mode = 0o600
			}
			if in.Mode < 0 || in.Mode > 0o777 {
				f = append(f, provider.Failure{Property: "mode", Reason: fmt.Sprintf("%o is not a permission mode (0-0777)", in.Mode)})
			}
			return f
		},
		Create: func(ctx context.Context, req provider.TypedRequest[FileInputs, FileOutputs]) (string, FileOutputs, error) {
			if marker := os.Getenv(EnvBlockCreate); marker != "" {
				if err := os.WriteFile(marker, []byte(req.Inputs.Path), 0o600); err != nil {
					return "", FileOutputs{}, err
				}
				<-ctx.Done()
				return "", FileOutputs{}, ctx.Err()
			}
			out, err := writeFile(req.Inputs)
			if err != nil {
				return "", FileOutputs{}, err
			}
			req.Log.Info("wrote file", "path", req.Inputs.Path, "size", out.Size)
			if req.Inputs.FailCreate {
				return req.Inputs.Path, out, errors.New("failCreate is set: the file was written, then Create failed on purpose")
			}
			return req.Inputs.Path, out, nil
		},
		Read: func(_ context.Context, req provider.TypedRequest[FileInputs, FileOutputs]) (FileInputs, FileOutputs, bool, error) {
			b, err := os.ReadFile(req.ID)
			if errors.Is(err, fs.ErrNotExist) {
				return FileInputs{}, FileOutputs{}, false, nil
			}
			if err != nil {
				return FileInputs{}, FileOutputs{}, false, err
			}
			fi, err := os.Stat(req.ID)
			if err != nil {
				return FileInputs{}, FileOutputs{}, false, err
			}
			in := req.Inputs
			in.Content = string(b)
			in.Mode = int(fi.Mode().Perm())
			out := req.State
			out.Size = len(b)
			out.SHA256 = digest(b)
			return in, out, true, nil
		},
		Update: func(_ context.Context, req provider.TypedRequest[FileInputs, FileOutputs]) (FileOutputs, error) {
			return writeFile(req.Inputs)
		},
		Delete: func(_ context.Context, req provider.TypedRequest[FileInputs, FileOutputs]) error {
			if err := os.Remove(req.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
	}.ResourceType()
}

// Registry serves FileResourceType.
func Registry() *provider.Registry {
	r, err := provider.NewRegistry(FileResourceType())
	if err != nil {
		panic(err) // the test resource type is static; this is a programming error
	}
	return r
}

// writeFile writes atomically (temp file + rename), so a Create killed
// midway leaves either nothing or the whole file, and a rerun overwrites.
func writeFile(in FileInputs) (FileOutputs, error) {
	tmp, err := os.CreateTemp(filepath.Dir(in.Path), ".secprov-*")
	if err != nil {
		return FileOutputs{}, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(in.Content); err != nil {
		tmp.Close()
		return FileOutputs{}, err
	}
	if err := tmp.Chmod(fs.FileMode(in.Mode)); err != nil {
		tmp.Close()
		return FileOutputs{}, err
	}
	if err := tmp.Close(); err != nil {
		return FileOutputs{}, err
	}
	if err := os.Rename(tmp.Name(), in.Path); err != nil {
		return FileOutputs{}, err
	}
	var leaked []string
	for _, v := range []string{"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "SECPROV_PASSPHRASE"} {
		if _, ok := os.LookupEnv(v); ok {
			leaked = append(leaked, v)
		}
	}
	return FileOutputs{Size: len(in.Content), SHA256: digest([]byte(in.Content)),
		Written: time.Now().UTC().Format(time.RFC3339Nano), SecretsInEnv: leaked}, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
