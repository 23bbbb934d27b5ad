//go:build linux

package engine_test

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// TestS3Backend runs the engine against an S3-compatible server on
// loopback (gofakes3, in memory: the S3 REST protocol the Pulumi engine's
// s3:// backend speaks through the AWS SDK v2) with the exact URL the
// README documents: create, a second state dir sees the stack and its
// secret, no-op up, destroy, remove; no secret in any object in clear.
func TestS3Backend(t *testing.T) {
	root := enginetest.PulumiRoot(t)
	mem := s3mem.New()
	if err := mem.CreateBucket("secprov-state"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(mem).Server())
	t.Cleanup(srv.Close)
	// The engine reads the credentials from the environment, like any AWS
	// SDK client; the server does not check them.
	t.Setenv("AWS_ACCESS_KEY_ID", "secprov-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secprov-test-secret")
	backend := "s3://secprov-state?endpoint=" + srv.URL + "&region=us-east-1&use_path_style=true"
	ctx := context.Background()
	const pass = "s3 backend passphrase"
	const canary = "CANARY-3c9e1d77aa-s3-secret"
	a, _ := pgEngine(t, root, backend, pass)
	b, _ := pgEngine(t, root, backend, pass)

	files := map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f.conf"), Content: "hello\n"}}
	program := func(ctx *pulumi.Context) error {
		if err := fileProgram(files)(ctx); err != nil {
			return err
		}
		ctx.Export("token", pulumi.ToSecret(pulumi.String(canary)))
		return nil
	}
	res, err := a.Up(ctx, "prod", program, engine.Options{})
	if err != nil {
		t.Fatalf("up with state in S3: %v", err)
	}
	if res.Counts[engine.OpCreate] != 1 {
		t.Errorf("counts = %v", res.Counts)
	}
	stacks, err := b.ListStacks(ctx)
	if err != nil || len(stacks) != 1 || stacks[0].Name != "prod" {
		t.Fatalf("second state dir lists %+v, %v; want prod", stacks, err)
	}
	outs, err := b.Outputs(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if o := outs["token"]; o.Value != canary || !o.Secret {
		t.Errorf("token output from the second state dir = %+v", o)
	}
	res, err = b.Up(ctx, "prod", program, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	onlySame(t, res.Counts)

	list, err := mem.ListBucket("secprov-state", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	sawStack := false
	for _, c := range list.Contents {
		obj, err := mem.GetObject("secprov-state", c.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		_, err = io.Copy(&buf, obj.Contents)
		obj.Contents.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.Key, ".pulumi/stacks/") {
			sawStack = strings.Contains(buf.String(), `"ciphertext"`) || sawStack
		}
		for _, secret := range []string{canary, pass} {
			if strings.Contains(buf.String(), secret) {
				t.Errorf("object %s holds a secret in clear", c.Key)
			}
		}
	}
	if !sawStack {
		t.Fatalf("no stack checkpoint with an encrypted secret in the bucket (%d objects); the check proves nothing", len(list.Contents))
	}
	if _, err := a.Destroy(ctx, "prod", engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveStack(ctx, "prod", false); err != nil {
		t.Fatal(err)
	}
	if stacks, err := b.ListStacks(ctx); err != nil || len(stacks) != 0 {
		t.Errorf("after remove: %+v, %v", stacks, err)
	}
}
