package kms

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"
)

// StatusResult is a plugin's answer to Status.
type StatusResult struct {
	Version string // KMS API version, "v2"
	Healthz string // "ok", or what is wrong
	KeyID   string // the current write key
}

// Healthy reports whether the plugin said it is ready for the apiserver.
func (r StatusResult) Healthy() bool { return r.Healthz == healthy && r.Version == APIVersion }

// probeTimeout bounds a Probe whose ctx has no deadline.
const probeTimeout = 10 * time.Second

// Probe asks the plugin on socket for its status, as the apiserver does.
// The error is nil only when the plugin answered and is healthy; when it
// answered unhealthy, the result is filled and the error carries Healthz.
func Probe(ctx context.Context, socket string) (StatusResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	abs, err := filepath.Abs(socket)
	if err != nil {
		return StatusResult{}, fmt.Errorf("kms plugin %s: %w", socket, err)
	}
	conn, err := grpc.NewClient("unix://"+abs, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return StatusResult{}, fmt.Errorf("kms plugin %s: %w", socket, err)
	}
	defer conn.Close()
	resp, err := kmsapi.NewKeyManagementServiceClient(conn).Status(ctx, &kmsapi.StatusRequest{})
	if err != nil {
		return StatusResult{}, fmt.Errorf("kms plugin %s: status: %w", socket, err)
	}
	r := StatusResult{Version: resp.Version, Healthz: resp.Healthz, KeyID: resp.KeyId}
	switch {
	case r.Version != APIVersion:
		return r, fmt.Errorf("kms plugin %s: speaks KMS API %q, want %s", socket, r.Version, APIVersion)
	case r.Healthz != healthy:
		return r, fmt.Errorf("kms plugin %s: unhealthy: %s", socket, r.Healthz)
	case r.KeyID == "":
		return r, fmt.Errorf("kms plugin %s: reports no key ID", socket)
	}
	return r, nil
}
