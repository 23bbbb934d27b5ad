//go:build !windows

package engine

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCommandEnvironment runs a fake pulumi that records its environment
// and umask: every invocation, `pulumi version` included, must skip the
// update check (which phones api.pulumi.com), keep PULUMI_HOME in the
// state dir, run with umask 077 and never inherit passphrases.
func TestCommandEnvironment(t *testing.T) {
	root := t.TempDir()
	dumps := t.TempDir()
	script := "#!/bin/sh\nn=$(ls \"$SECPROV_TEST_ENV_DUMP\" | wc -l)\nenv > \"$SECPROV_TEST_ENV_DUMP/$n\"\numask > \"$SECPROV_TEST_ENV_DUMP/$n.umask\"\necho v3.259.0\n"
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "pulumi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECPROV_TEST_ENV_DUMP", dumps)
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "inherited-passphrase")
	t.Setenv(EnvPassphrase, "inherited-secprov-passphrase")
	t.Setenv("PULUMI_BACKEND_URL", "s3://someone-elses-bucket")

	home := filepath.Join(t.TempDir(), "home")
	c, err := newCommand(context.Background(), root, home, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version().String() != "3.259.0" {
		t.Errorf("version = %s", c.Version())
	}
	if _, _, _, err := c.Run(context.Background(), t.TempDir(), nil, nil, nil, []string{"PULUMI_BACKEND_URL=file:///mine"}, "stack", "ls"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"version", "stack ls"} {
		envb, err := os.ReadFile(filepath.Join(dumps, strconv.Itoa(i*2)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		env := "\n" + string(envb)
		for _, want := range []string{"PULUMI_SKIP_UPDATE_CHECK=true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true", "PULUMI_HOME=" + home} {
			if !strings.Contains(env, "\n"+want+"\n") {
				t.Errorf("%s: environment lacks %s", name, want)
			}
		}
		for _, bad := range []string{"inherited-passphrase", "inherited-secprov-passphrase", "someone-elses-bucket"} {
			if strings.Contains(env, bad) {
				t.Errorf("%s: inherited %s", name, bad)
			}
		}
		umask, _ := os.ReadFile(filepath.Join(dumps, strconv.Itoa(i*2)+".umask"))
		if u := strings.TrimSpace(string(umask)); u != "0077" && u != "077" {
			t.Errorf("%s: umask %q, want 077", name, u)
		}
		if name == "stack ls" && !strings.Contains(env, "\nPULUMI_BACKEND_URL=file:///mine\n") {
			t.Errorf("the workspace's backend did not reach the engine")
		}
	}
}
