package hardening

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/golden"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

func loadExample(t *testing.T, name string) v1alpha1.Blueprint {
	t.Helper()
	bps, err := blueprints.Load(filepath.Join("..", "blueprints", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return bps[0].Blueprint
}

func testControlPlane(t *testing.T) *ControlPlane {
	bp := loadExample(t, "prod.yaml")
	d := "/state/clusters/shop-prod"
	return &ControlPlane{
		Topology: Topology{Host: "127.0.0.1", AdvertiseAddress: "127.0.0.1", NoEndpointReconciler: true},
		Name:     bp.Metadata.Name, Spec: bp.Spec, EncryptionProvider: v1alpha1.EncryptionSecretbox,
		Ports: Ports{APIServer: 6443, EtcdClient: 2379, EtcdPeer: 2380, ControllerManager: 10257, Scheduler: 10259},
		Files: Files{
			CACert: d + "/pki/ca.crt", CAKey: d + "/pki/ca.key", EtcdCACert: d + "/pki/etcd-ca.crt",
			EtcdServerCert: d + "/pki/etcd-server.crt", EtcdServerKey: d + "/pki/etcd-server.key",
			EtcdPeerCert: d + "/pki/etcd-peer.crt", EtcdPeerKey: d + "/pki/etcd-peer.key",
			EtcdSelfClientCert: d + "/pki/etcd-self-client.crt", EtcdSelfClientKey: d + "/pki/etcd-self-client.key",
			APIServerEtcdCert: d + "/pki/apiserver-etcd-client.crt", APIServerEtcdKey: d + "/pki/apiserver-etcd-client.key",
			APIServerCert: d + "/pki/apiserver.crt", APIServerKey: d + "/pki/apiserver.key",
			KubeletClientCert: d + "/pki/apiserver-kubelet-client.crt", KubeletClientKey: d + "/pki/apiserver-kubelet-client.key",
			FrontProxyCACert: d + "/pki/front-proxy-ca.crt", FrontProxyClientCert: d + "/pki/front-proxy-client.crt", FrontProxyClientKey: d + "/pki/front-proxy-client.key",
			ServiceAccountKey: d + "/pki/sa.key", ServiceAccountPub: d + "/pki/sa.pub",
			ControllerManagerKubeconfig: d + "/controller-manager.kubeconfig", SchedulerKubeconfig: d + "/scheduler.kubeconfig",
			EncryptionConfig: d + "/config/encryption.yaml", AuditPolicy: d + "/config/audit-policy.yaml",
			AuditLog: d + "/logs/audit.log", AdmissionConfig: d + "/config/admission.yaml", EtcdDataDir: d + "/etcd",
		},
	}
}

func TestRenderedFlagsGolden(t *testing.T) {
	cp := testControlPlane(t)
	for name, fl := range map[string]Flags{
		"etcd":                    cp.EtcdFlags(),
		"kube-apiserver":          cp.APIServerFlags(),
		"kube-controller-manager": cp.ControllerManagerFlags(),
		"kube-scheduler":          cp.SchedulerFlags(),
	} {
		t.Run(name, func(t *testing.T) {
			golden.Check(t, "prod-"+name+".args", []byte(strings.Join(fl.Args(), "\n")+"\n"))
			for _, f := range fl {
				for _, id := range f.Controls {
					if _, ok := blueprints.ControlByID(id); !ok {
						t.Errorf("flag %s names unknown control %s", f.Name, id)
					}
				}
			}
		})
	}
}

func TestConfigsGolden(t *testing.T) {
	cp := testControlPlane(t)
	key := Secret(bytes.Repeat([]byte{7}, 32))
	enc, err := EncryptionConfig(cp.Spec, v1alpha1.EncryptionSecretbox, []EncryptionKey{{Name: "key-1", Secret: key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "prod-encryption.yaml", enc)
	audit, err := AuditPolicy(cp.Spec)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "prod-audit-policy.yaml", audit)
	adm, err := AdmissionConfig(cp.Spec)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "prod-admission.yaml", adm)

	var buf bytes.Buffer
	objects := func(spec v1alpha1.Spec, opts Options) []byte {
		objs, err := Objects(spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		for _, o := range objs {
			y, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(o.Controls))
			for i, c := range o.Controls {
				ids[i] = string(c)
			}
			fmt.Fprintf(&buf, "# controls: %s\n%s---\n", strings.Join(ids, ","), y)
		}
		return buf.Bytes()
	}
	golden.Check(t, "prod-objects.yaml", objects(cp.Spec, Options{}))
	// Cilium's kinds, with every shape of allow rule.
	spec := cp.Spec
	spec.Network.Allow = append(slices.Clone(spec.Network.Allow),
		v1alpha1.AllowRule{From: v1alpha1.Peer{Namespace: "storefront", PodSelector: map[string]string{"app": "web"}},
			To: v1alpha1.Destination{Namespace: "payments", PodSelector: map[string]string{"app": "api"}, Ports: []int{53}, Protocol: "UDP"}},
		v1alpha1.AllowRule{From: v1alpha1.Peer{CIDR: "192.0.2.0/24"}, To: v1alpha1.Destination{Namespace: "storefront", Ports: []int{443}}},
		v1alpha1.AllowRule{From: v1alpha1.Peer{Namespace: "payments"}, To: v1alpha1.Destination{CIDR: "198.51.100.10/32", Ports: []int{8200}}},
		v1alpha1.AllowRule{From: v1alpha1.Peer{Namespace: "*"}, To: v1alpha1.Destination{Namespace: "storefront", Ports: []int{8080}}})
	golden.Check(t, "prod-objects-cilium.yaml", objects(spec, Options{CiliumPolicies: true}))

	gs, err := Guardrails(cp.Spec, GuardrailInputs{OwnImages: []string{"secprov.local/cilium:v1.20.2-abc"}, Now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	for _, o := range GuardrailObjects(gs) {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&buf, "# controls: %s\n%s---\n", o.Controls[0], y)
	}
	golden.Check(t, "prod-guardrails.yaml", buf.Bytes())
}

func TestEncryptionProviders(t *testing.T) {
	spec := testControlPlane(t).Spec
	key := []EncryptionKey{{Name: "k", Secret: Secret(bytes.Repeat([]byte{1}, 32))}}
	tests := []struct {
		provider string
		keys     []EncryptionKey
		kms      *KMS
		want     string // substring of the config, or of the error
		wantErr  bool
	}{
		{v1alpha1.EncryptionSecretbox, key, nil, "secretbox:", false},
		{v1alpha1.EncryptionAESGCM, key, nil, "aesgcm:", false},
		{v1alpha1.EncryptionAESCBC, key, nil, "aescbc:", false},
		{v1alpha1.EncryptionVaultKMS, nil, &KMS{Name: "vault", Endpoint: "unix:///run/kms.sock"}, "apiVersion: v2", false},
		{v1alpha1.EncryptionVaultKMS, key, &KMS{Name: "vault", Endpoint: "unix:///run/kms.sock"}, "secretbox:", false},
		{v1alpha1.EncryptionSecretbox, nil, nil, "needs at least one key", true},
		{v1alpha1.EncryptionSecretbox, []EncryptionKey{{Name: "short", Secret: Secret("x")}}, nil, "want 32", true},
		{v1alpha1.EncryptionVaultKMS, nil, nil, "KMS plugin endpoint", true},
		{v1alpha1.EncryptionNone, nil, nil, "needs no", true},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.want, func(t *testing.T) {
			got, err := EncryptionConfig(spec, tt.provider, tt.keys, tt.kms)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil || !strings.Contains(string(got), tt.want) || !strings.Contains(string(got), "identity: {}") {
				t.Fatalf("config = %s, err = %v; want %q and identity last", got, err, tt.want)
			}
		})
	}
}

func TestAPIServerFlagsFollowBlueprint(t *testing.T) {
	cp := testControlPlane(t)
	if _, ok := cp.APIServerFlags().Get("encryption-provider-config"); !ok {
		t.Error("encryption flag missing")
	}
	if v, _ := cp.APIServerFlags().Get("bind-address"); v != "127.0.0.1" {
		t.Errorf("private endpoint binds %s", v)
	}
	off := false
	cp.Spec.Audit.Enabled = &off
	cp.EncryptionProvider = v1alpha1.EncryptionNone
	cp.Spec.APIServer.Endpoint = v1alpha1.EndpointPublic
	fl := cp.APIServerFlags()
	for _, name := range []string{"encryption-provider-config", "audit-log-path", "audit-policy-file"} {
		if _, ok := fl.Get(name); ok {
			t.Errorf("%s set although the blueprint turns it off", name)
		}
	}
	if v, _ := fl.Get("bind-address"); v != "0.0.0.0" {
		t.Errorf("public endpoint binds %s", v)
	}
	if got := fl.Without("profiling"); len(got) != len(fl)-1 {
		t.Error("Without did not drop exactly one flag")
	}
	if v, _ := fl.With("profiling", "true").Get("profiling"); v != "true" {
		t.Error("With did not replace")
	}
	if len(fl.ForControl("SP-APISRV-006")) != 5 {
		t.Errorf("SP-APISRV-006 flags = %v", fl.ForControl("SP-APISRV-006"))
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("super-secret-key-material")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "k", s)
	js, _ := json.Marshal(struct{ K Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(js), logs.String()} {
		if strings.Contains(out, "super-secret") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if string(s.Reveal()) != "super-secret-key-material" {
		t.Error("Reveal lost the bytes")
	}
}

func TestAdminSubjects(t *testing.T) {
	got, err := AdminSubjects([]string{"group:ops", "user:alice", "serviceaccount:ci:deployer"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Name != AdminsGroup || got[3].Namespace != "ci" || got[3].Name != "deployer" {
		t.Errorf("subjects = %+v", got)
	}
	if _, err := AdminSubjects([]string{"robot:x"}); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestServiceIP(t *testing.T) {
	ip, err := ServiceIP("10.128.0.0/16")
	if err != nil || ip.String() != "10.128.0.1" {
		t.Errorf("ServiceIP = %v, %v", ip, err)
	}
}

// A cluster moved from secretbox to vault-kms encrypts with KMS v2 and
// keeps its old keys for reading only, in that order.
func TestEncryptionConfigKMSKeepsLegacyKeys(t *testing.T) {
	spec := testControlPlane(t).Spec
	key := []EncryptionKey{{Name: "key-1", Secret: Secret(bytes.Repeat([]byte{7}, 32))}}
	got, err := EncryptionConfig(spec, v1alpha1.EncryptionVaultKMS, key, &KMS{Name: "vault-shop-prod", Endpoint: "unix:///state/run/kms.sock"})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "prod-encryption-kms.yaml", got)
}
