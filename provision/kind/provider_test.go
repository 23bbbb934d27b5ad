package kind

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// TestPreflightWithoutDocker: without an engine, preflight fails with one
// error that says how to get one, before anything is created.
func TestPreflightWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	err := New(Options{}).Preflight(context.Background(), example(t, "test"))
	if err == nil {
		t.Fatal("preflight passed without a Docker engine")
	}
	if msg := err.Error(); !strings.Contains(msg, "kind clusters need") || !strings.Contains(msg, "start it") {
		t.Errorf("preflight error does not say what to do: %v", err)
	}
}

func TestPublicEndpointNeedsItsException(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	bp := example(t, "prod")
	if err := endpointAllowed(bp, now); err != nil {
		t.Errorf("private endpoint refused: %v", err)
	}
	pub := *bp
	pub.Spec.APIServer.Endpoint = v1alpha1.EndpointPublic
	if err := endpointAllowed(&pub, now); err == nil || !strings.Contains(err.Error(), string(blueprints.APIEndpointPrivate)) {
		t.Errorf("public endpoint without exception: %v", err)
	}
	pub.Spec.Exceptions = []v1alpha1.Exception{{Control: string(blueprints.APIEndpointPrivate), Justification: "a shared lab host reached from the team's VPN", Expires: "2027-01-31"}}
	if err := endpointAllowed(&pub, now); err != nil {
		t.Errorf("public endpoint with its exception refused: %v", err)
	}
	if err := endpointAllowed(&pub, now.AddDate(1, 0, 0)); err == nil {
		t.Error("public endpoint with an expired exception allowed")
	}
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]string{
		"kindest/node:v1.37.2":               "kindest/node|v1.37.2",
		"localhost:5000/kind/node:v1":        "localhost:5000/kind/node|v1",
		"secprov.local/kind-node:v1.37.2-ab": "secprov.local/kind-node|v1.37.2-ab",
		"kindest/node":                       "",
		"localhost:5000/node":                "",
		"kindest/node@sha256:abc":            "",
		"kindest/node:":                      "",
	} {
		r, err := ParseRef(in)
		got := ""
		if err == nil {
			got = r.Repository + "|" + r.Tag
		}
		if got != want {
			t.Errorf("ParseRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	fi, err := parseStat("/etc/kubernetes", "41c0 4096 1700000000\n")
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v %v", fi, err)
	}
	fi, err = parseStat("/etc/kubernetes/admin.conf", "81a4 5650 1700000000")
	if err != nil || fi.IsDir() || fi.Mode().Perm() != 0o644 || fi.Size() != 5650 {
		t.Errorf("file: %v %v", fi, err)
	}
}

// The host facts a cluster was created with are kept: the kubelets change
// the host's kernel settings after the first up, and rendering from the
// host again would replace the cluster.
func TestPinnedHostFacts(t *testing.T) {
	dir := t.TempDir()
	now := HostFacts{KernelDefaults: true}
	if got := pinnedHostFacts(dir, now); got != now {
		t.Errorf("no record: %+v, want now %+v", got, now)
	}
	in := clusterIn{Name: "c", Dir: dir, HostFacts: HostFacts{CgroupV1: true}}
	if _, err := prepare(in); err != nil {
		t.Fatal(err)
	}
	if got := pinnedHostFacts(dir, now); got != in.HostFacts {
		t.Errorf("recorded %+v, got %+v", in.HostFacts, got)
	}
	if fi, err := os.Stat(newLayout(dir).HostFactsFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host facts file: %v %v", fi, err)
	}
}
