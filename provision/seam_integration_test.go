package provision_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/cluster"
	"secprov.dev/secprov/provision/engine/enginetest"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/local"
	"secprov.dev/secprov/provision/local/localtest"
)

// mirror is a second provider for this test only. It realises clusters
// with the local provider's processes under another type (kind, which
// this build does not register) and opens them with fewer capabilities:
// no raw etcd and no component endpoints, as a provider whose control
// plane runs out of the host's reach would. If provision or cmd went
// around cluster.Provider anywhere, a cluster of this provider would be
// handled as local there and the test would see it.
type mirror struct{ cluster.Provider }

func (mirror) Type() string { return v1alpha1.ProviderKind }

// ResourceTypes: the local provider's, already served by the plugin.
func (mirror) ResourceTypes() []provider.ResourceType { return nil }

func (m mirror) Open(rec *cluster.Record, peers cluster.Peers) (verify.Target, error) {
	t, err := m.Provider.Open(rec, peers)
	if err != nil {
		return nil, err
	}
	return &narrowed{Target: t}, nil
}

// withheld are the capabilities the mirror's targets do not offer.
var withheld = []verify.Capability{verify.RawEtcd, verify.ComponentEndpoints}

type narrowed struct{ verify.Target }

func (n *narrowed) Capabilities() []verify.Capability {
	return slices.DeleteFunc(n.Target.Capabilities(), func(c verify.Capability) bool { return slices.Contains(withheld, c) })
}

func (n *narrowed) Close() error {
	if c, ok := n.Target.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// TestSecondProviderThroughTheSeam: plan, up, status, verify (with the
// runner skipping what the provider cannot offer, naming it) and down all
// reach a cluster through the provider its record names.
func TestSecondProviderThroughTheSeam(t *testing.T) {
	bins := localtest.Toolchain(t)
	eng, stateDir := enginetest.NewEngine(t, nil)
	reg := cluster.NewRegistry(local.New(), mirror{local.New()})
	p := provision.New(provision.Config{StateDir: stateDir, Engine: eng, Providers: reg, Binaries: bins})

	raw, err := os.ReadFile("../blueprints/examples/test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(raw), "    type: local ", "    type: kind  ", 1)
	// kind refuses vault-kms at load; noVault below drops it anyway.
	data = strings.Replace(data, "    provider: vault-kms ", "    provider: secretbox ", 1)
	loaded, err := blueprints.LoadBytes("mirror.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	bps := noVault(loaded)
	if got := changes(t, p, bps); len(got) == 0 {
		t.Fatal("plan of a new cluster shows no changes")
	}
	mustUp(t, p, bps)
	name := bps[0].Name()
	down := false
	t.Cleanup(func() {
		if !down {
			downAll(t, p, bps)
		}
	})

	sts, err := provision.Status(t.Context(), reg, stateDir)
	if err != nil || len(sts) != 1 {
		t.Fatalf("status: %v, %+v", err, sts)
	}
	if st := sts[0]; st.Provider != v1alpha1.ProviderKind || !st.Healthy || len(st.Components) < 4 {
		t.Errorf("status = %+v; want the kind provider's cluster, healthy, with its components", st)
	}

	target, err := provision.Target(reg, stateDir, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := target.(*narrowed); !ok {
		t.Fatalf("verify opened the cluster as %T; the record names the mirror provider", target)
	}
	defer target.(*narrowed).Close()
	rep := verify.Run(t.Context(), target, verify.Checks(), verify.Options{})
	byID := map[blueprints.ControlID]verify.Result{}
	for _, r := range rep.Results {
		byID[r.ID] = r
	}
	capSkips := 0
	for _, c := range verify.Checks() {
		r := byID[c.ID]
		if slices.ContainsFunc(c.Needs, func(n verify.Capability) bool { return slices.Contains(withheld, n) }) {
			capSkips++
			if r.Status != verify.StatusSkip || !strings.Contains(r.Reason, "provider kind") {
				t.Errorf("%s needs a capability the mirror withholds: got %s %q, want a skip naming provider kind", c.ID, r.Status, r.Reason)
			}
			continue
		}
		switch {
		case r.Status == verify.StatusError,
			// Vault is off in this blueprint: SP-VAULT-001 reports that.
			r.Status == verify.StatusFail && r.ID != blueprints.VaultSecrets:
			t.Errorf("%s %s: %s", r.ID, r.Status, r.Reason)
		}
	}
	if capSkips == 0 || rep.Summary.Passed == 0 {
		t.Errorf("summary %+v, %d checks need a withheld capability: want both non-zero", rep.Summary, capSkips)
	}

	downAll(t, p, bps)
	down = true
	if names, _ := provision.Clusters(stateDir); len(names) != 0 {
		t.Errorf("clusters left after down: %v", names)
	}
}
