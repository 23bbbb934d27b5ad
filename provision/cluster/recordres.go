package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

// RecordType is the engine resource type of a cluster's private directory
// and its record, the first resource of every cluster's program. The
// token predates other providers; stacks store it, so it stays.
const RecordType = "secprov:local:Cluster"

// RecordInputs are the record resource's inputs: what the record says
// about the cluster in Dir.
type RecordInputs struct {
	Name        string `json:"name" secprov:"replace"`
	Dir         string `json:"dir" secprov:"replace"`
	Environment string `json:"environment"`
	// Provider is the spec.provider.type the record names: later commands
	// reach the cluster through that provider.
	Provider string `json:"provider,omitempty"`
	// Ports the provider chose (the API server's is the one clients use).
	Ports              hardening.Ports `json:"ports"`
	Spec               string          `json:"spec"` // defaulted blueprint spec, JSON
	EncryptionProvider string          `json:"encryptionProvider"`
	Vault              *VaultRecord    `json:"vault,omitempty"`
	// OwnImages are the images secprov runs in the cluster itself.
	OwnImages []string `json:"ownImages,omitempty"`
	// Rendering is how the provider realised the blueprint's objects.
	Rendering hardening.Options `json:"rendering,omitzero"`
}

type recordOut struct {
	Dir          string `json:"dir"`
	APIServerURL string `json:"apiServerURL"`
}

// APIServerHost is where every provider's API server is reached from the
// machine secprov runs on: loopback (local binds it there; kind publishes
// the node's port there).
const APIServerHost = "127.0.0.1"

// APIServerURL is the URL clients on this machine reach an API server
// listening on port of APIServerHost with.
func APIServerURL(port int) string { return fmt.Sprintf("https://%s:%d", APIServerHost, port) }

// CleanupFunc stops and removes what the provider of type typ made for the
// cluster in dir outside the engine's other resources (Provider.Cleanup).
type CleanupFunc func(ctx context.Context, typ, dir string) error

func writeRecordDir(in RecordInputs) (recordOut, error) {
	l := paths.NewLayout(in.Dir)
	for _, d := range []string{l.Dir, l.PKIDir(), l.ConfigDir(), l.LogDir(), l.RunDir()} {
		if err := paths.EnsurePrivateDir(d); err != nil {
			return recordOut{}, fmt.Errorf("cluster directory: %w", err)
		}
	}
	r := &Record{Name: in.Name, Environment: in.Environment, Provider: in.Provider, Ports: in.Ports, Spec: json.RawMessage(in.Spec),
		EncryptionProvider: in.EncryptionProvider, APIServerURL: APIServerURL(in.Ports.APIServer), Kubeconfig: l.AdminKubeconfig(),
		Vault: in.Vault, OwnImages: in.OwnImages, Rendering: in.Rendering, Dir: l.Dir}
	if err := WriteRecord(r, time.Now()); err != nil {
		return recordOut{}, err
	}
	return recordOut{Dir: in.Dir, APIServerURL: r.APIServerURL}, nil
}

// RecordResourceType makes the cluster's private directories and writes
// its record. Deleting it runs cleanup for the record's provider first, so
// nothing an interrupted run left behind outlives the directory, then
// removes the directory.
func RecordResourceType(cleanup CleanupFunc) provider.ResourceType {
	return provider.TypedResourceType[RecordInputs, recordOut]{
		Token:               RecordType,
		DeleteBeforeReplace: true,
		Check: func(_ context.Context, in *RecordInputs) []provider.Failure {
			var f []provider.Failure
			if !filepath.IsAbs(in.Dir) {
				f = append(f, provider.Failure{Property: "dir", Reason: "must be an absolute path"})
			}
			if !json.Valid([]byte(in.Spec)) {
				f = append(f, provider.Failure{Property: "spec", Reason: "must be JSON"})
			}
			return f
		},
		Create: func(_ context.Context, req provider.TypedRequest[RecordInputs, recordOut]) (string, recordOut, error) {
			out, err := writeRecordDir(req.Inputs)
			return req.Inputs.Name, out, err
		},
		Read: func(_ context.Context, req provider.TypedRequest[RecordInputs, recordOut]) (RecordInputs, recordOut, bool, error) {
			if _, err := ReadRecord(req.Inputs.Dir); err != nil {
				return req.Inputs, req.State, false, nil
			}
			return req.Inputs, req.State, true, nil
		},
		Update: func(_ context.Context, req provider.TypedRequest[RecordInputs, recordOut]) (recordOut, error) {
			return writeRecordDir(req.Inputs)
		},
		Delete: func(ctx context.Context, req provider.TypedRequest[RecordInputs, recordOut]) error {
			if cleanup != nil {
				if err := cleanup(ctx, req.Inputs.Provider, req.Inputs.Dir); err != nil {
					return err
				}
			}
			return RemoveAll(req.Inputs.Dir)
		},
	}.ResourceType()
}
