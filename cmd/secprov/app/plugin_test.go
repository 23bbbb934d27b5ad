package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/providers"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/engine/provider"
)

func TestMain(m *testing.M) {
	// Started by the engine as the provider: go through Main exactly as
	// the secprov binary does.
	if filepath.Base(os.Args[0]) == provider.PluginName {
		err := Main(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr,
			WithProviderRegistry(func() (*provider.Registry, error) { return enginetest.Registry(), nil }))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envRunMain) == "1" {
		// What cmd/secprov/main.go does, for the tests that send the
		// process signals.
		os.Exit(Exec(append([]string{"secprov"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestMainServesTheProviderToTheEngine(t *testing.T) {
	e, _ := enginetest.NewEngine(t, nil)
	path := filepath.Join(t.TempDir(), "f")
	prog := func(ctx *pulumi.Context) error {
		_, err := engine.Resource(ctx, enginetest.FileToken, "f", enginetest.FileInputs{Path: path, Content: "via app.Main"})
		return err
	}
	if _, err := e.Up(context.Background(), "app", prog, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "via app.Main" {
		t.Fatalf("file = %q, %v", b, err)
	}
}

func TestDefaultRegistryServesEveryResourceType(t *testing.T) {
	reg, err := provision.PluginRegistry(providers.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"secprov:local:Cluster", "secprov:local:Pki", "secprov:local:Config", "secprov:local:Process", "secprov:local:Bootstrap"} {
		if _, ok := reg.ResourceType(token); !ok {
			t.Errorf("default registry lacks %s", token)
		}
	}
}
