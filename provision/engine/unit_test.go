package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	fileURN  = "urn:pulumi:dev::secprov::secprov:test:File::a"
	stackURN = "urn:pulumi:dev::secprov::pulumi:pulumi:Stack::secprov-dev"
	provURN  = "urn:pulumi:dev::secprov::pulumi:providers:secprov::default"
)

func step(op apitype.OpType, urn, typ string, dd map[string]apitype.PropertyDiff) apitype.StepEventMetadata {
	return apitype.StepEventMetadata{Op: op, URN: urn, Type: typ, DetailedDiff: dd}
}

func TestCollectorFoldsStepsIntoAPlan(t *testing.T) {
	var got []Event
	c := newCollector(func(s string) string { return s }, func(e Event) { got = append(got, e) })
	t0 := time.Unix(1000, 0)
	replaceDiff := map[string]apitype.PropertyDiff{"path": {Kind: apitype.DiffUpdateReplace, InputDiff: true}}
	bURN := "urn:pulumi:dev::secprov::secprov:test:File::b"
	evs := []apitype.EngineEvent{
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpCreate, stackURN, "pulumi:pulumi:Stack", nil)}},
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpCreate, provURN, "pulumi:providers:secprov", nil)}},
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpCreateReplacement, fileURN, "secprov:test:File", replaceDiff)}},
		{ResOutputsEvent: &apitype.ResOutputsEvent{Metadata: step(apitype.OpCreateReplacement, fileURN, "secprov:test:File", replaceDiff)}},
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpReplace, fileURN, "secprov:test:File", replaceDiff)}},
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpUpdate, bURN, "secprov:test:File",
			map[string]apitype.PropertyDiff{"content": {Kind: apitype.DiffUpdate}, "mode": {Kind: apitype.DiffAdd}})}},
		{DiagnosticEvent: &apitype.DiagnosticEvent{URN: bURN, Severity: "error", Message: "<{%fg 1%}>updating b: disk full<{%reset%}>\n"}},
		{ResOpFailedEvent: &apitype.ResOpFailedEvent{Metadata: step(apitype.OpUpdate, bURN, "secprov:test:File", nil)}},
		{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: step(apitype.OpDeleteReplaced, fileURN, "secprov:test:File", replaceDiff)}},
		{ResOutputsEvent: &apitype.ResOutputsEvent{Metadata: step(apitype.OpDeleteReplaced, fileURN, "secprov:test:File", replaceDiff)}},
		{ResOutputsEvent: &apitype.ResOutputsEvent{Metadata: apitype.StepEventMetadata{Op: apitype.OpSame, URN: stackURN,
			Type: "pulumi:pulumi:Stack", New: &apitype.StepEventStateMetadata{Outputs: map[string]any{"endpoint": "https://x", "token": "[secret]"}}}}},
	}
	for i, ev := range evs {
		c.handle(ev, t0.Add(time.Duration(i)*time.Second))
	}

	plan := c.plan("dev")
	want := []ResourceChange{
		{URN: fileURN, Type: "secprov:test:File", Name: "a", Op: OpReplace,
			Changes: []PropertyChange{{Path: "path", Kind: ChangeUpdate, Replace: true}}},
		{URN: bURN, Type: "secprov:test:File", Name: "b", Op: OpUpdate,
			Changes: []PropertyChange{{Path: "content", Kind: ChangeUpdate}, {Path: "mode", Kind: ChangeAdd}}},
	}
	if !reflect.DeepEqual(plan.Resources, want) {
		t.Errorf("plan =\n%+v\nwant\n%+v", plan.Resources, want)
	}
	if !reflect.DeepEqual(plan.Counts, map[Op]int{OpReplace: 1, OpUpdate: 1}) || !plan.HasChanges() {
		t.Errorf("counts = %v", plan.Counts)
	}

	var steps []string
	for _, e := range got {
		steps = append(steps, fmt.Sprintf("%s %s %s %v %s", e.Kind, e.Name, e.Op, e.Elapsed, e.Message))
	}
	wantSteps := []string{
		"started a create-replacement 0s ",
		"done a create-replacement 1s ",
		"started a replace 0s ",
		"started b update 0s ",
		"diag b  0s updating b: disk full",
		"failed b update 2s updating b: disk full",
		"started a delete-replaced 0s ",
		"done a delete-replaced 1s ",
	}
	if !reflect.DeepEqual(steps, wantSteps) {
		t.Errorf("events =\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(wantSteps, "\n"))
	}
	if d := c.diagnostics(); len(d) != 1 || d[0].Name != "b" || d[0].Message != "updating b: disk full" {
		t.Errorf("diagnostics = %+v", d)
	}
	outs := c.stackOutputs()
	if outs["endpoint"].Value != "https://x" || !outs["token"].Secret || outs["token"].Value != nil {
		t.Errorf("stack outputs = %+v", outs)
	}
}

func TestCollectorRefreshIsOverriddenByTheNextStep(t *testing.T) {
	c := newCollector(func(s string) string { return s }, nil)
	bURN := "urn:pulumi:dev::secprov::secprov:test:File::b"
	dd := map[string]apitype.PropertyDiff{"content": {Kind: apitype.DiffUpdate}}
	for _, m := range []apitype.StepEventMetadata{
		step(apitype.OpRefresh, fileURN, "secprov:test:File", dd),
		step(apitype.OpRefresh, bURN, "secprov:test:File", nil),
		step(apitype.OpUpdate, fileURN, "secprov:test:File", dd),
		step(apitype.OpCreate, bURN, "secprov:test:File", nil),
	} {
		c.handle(apitype.EngineEvent{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: m}}, time.Now())
	}
	plan := c.plan("dev")
	if !reflect.DeepEqual(plan.Counts, map[Op]int{OpUpdate: 1, OpCreate: 1}) {
		t.Errorf("counts = %v, want the steps after the refresh", plan.Counts)
	}
}

func TestErrorExtraction(t *testing.T) {
	e := &Engine{cfg: Config{Passphrase: NewPassphrase("hunter2-passphrase")}}
	autoErr := errors.New("failed to run update: exit status 255\ncode: 255\nstdout: Updating (dev)\n lots of progress\nstderr: error: failed to decrypt: incorrect passphrase hunter2-passphrase\n")
	tests := []struct {
		name      string
		diags     []Diag
		wantParts []string
		notParts  []string
	}{
		{
			name: "resource diagnostics win; generic summary dropped",
			diags: []Diag{
				{URN: fileURN, Type: "secprov:test:File", Name: "a", Message: "creating a: permission denied"},
				{Message: "update failed"},
			},
			wantParts: []string{`up of stack "dev" failed: secprov:test:File "a": creating a: permission denied`, "run up again"},
			notParts:  []string{"update failed", "stdout", "lots of progress"},
		},
		{
			name:      "no events: error lines from stderr, passphrase redacted, hint",
			wantParts: []string{"failed to decrypt: incorrect passphrase [redacted]", EnvPassphrase},
			notParts:  []string{"hunter2", "lots of progress"},
		},
		{
			name: "check failure is reworded once",
			diags: []Diag{{URN: fileURN, Type: "secprov:test:File", Name: "a",
				Message: "secprov:test:File resource 'a': property path value {x} has a problem: must be absolute"}},
			wantParts: []string{`secprov:test:File "a": property path: must be absolute`, "Nothing was changed"},
			notParts:  []string{"resource 'a'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.wrap("up", "dev", autoErr, tt.diags, "")
			msg := err.Error()
			for _, w := range tt.wantParts {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, n := range tt.notParts {
				if strings.Contains(msg, n) {
					t.Errorf("error contains %q:\n%s", n, msg)
				}
			}
			if !errors.Is(err, autoErr) {
				t.Errorf("the underlying error is not reachable with errors.Is")
			}
			if strings.Contains(fmt.Sprintf("%+v", errors.Unwrap(err)), "hunter2") {
				t.Errorf("the unwrapped error shows the passphrase")
			}
		})
	}
}

func TestPassphrase(t *testing.T) {
	t.Run("generated once, private, reused", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		p1, err := ResolvePassphrase(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(p1.Reveal()) != 44 { // base64 of 32 bytes
			t.Errorf("generated passphrase has %d characters, want 44", len(p1.Reveal()))
		}
		fi, err := os.Stat(filepath.Join(dir, PassphraseFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("passphrase file: %v, %v; want mode 0600", fi, err)
		}
		if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
			t.Errorf("state dir mode %v, want 0700", di.Mode().Perm())
		}
		p2, err := ResolvePassphrase(dir, "")
		if err != nil || p2.Reveal() != p1.Reveal() {
			t.Errorf("second resolve = %v, %v; want the stored passphrase", p2, err)
		}
	})
	t.Run("environment wins and nothing is written", func(t *testing.T) {
		dir := t.TempDir()
		p, err := ResolvePassphrase(dir, "from-env")
		if err != nil || p.Reveal() != "from-env" {
			t.Fatalf("got %v, %v", p, err)
		}
		if _, err := os.Stat(filepath.Join(dir, PassphraseFile)); err == nil {
			t.Errorf("a passphrase file was written although the environment set one")
		}
	})
	t.Run("a readable passphrase file is refused", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, PassphraseFile)
		if err := os.WriteFile(path, []byte("p\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ResolvePassphrase(dir, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("err = %v, want a refusal saying how to fix it", err)
		}
	})
	t.Run("never printed", func(t *testing.T) {
		p := NewPassphrase("topsecret")
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "p", p)
		for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s %q", p, p, p, p, p), logs.String(),
			fmt.Sprintf("%v", Config{Passphrase: p})} {
			if strings.Contains(s, "topsecret") {
				t.Errorf("passphrase printed: %s", s)
			}
		}
	})
}

func TestRedactingWriter(t *testing.T) {
	var out bytes.Buffer
	w := &redactingWriter{w: &out, redact: func(s string) string { return strings.ReplaceAll(s, "secret", "[redacted]") }}
	for _, chunk := range []string{"a sec", "ret in a line\nand a ", "partial secr", "et"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	if got, want := out.String(), "a [redacted] in a line\nand a partial [redacted]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFileBackendDir(t *testing.T) {
	home, _ := os.UserHomeDir()
	cwd, _ := os.Getwd()
	tests := []struct {
		url, dir string
		ok       bool
	}{
		{"file:///var/lib/secprov/state", "/var/lib/secprov/state", true},
		{"file://~/state", filepath.Join(home, "state"), true},
		{"file://./state", filepath.Join(cwd, "state"), true},
		{"s3://bucket/prefix", "", false},
		{"https://api.pulumi.com", "", false},
	}
	for _, tt := range tests {
		dir, ok := fileBackendDir(tt.url)
		if dir != tt.dir || ok != tt.ok {
			t.Errorf("fileBackendDir(%q) = %q, %v; want %q, %v", tt.url, dir, ok, tt.dir, tt.ok)
		}
	}
	if got := redactURL("https://user:pw@example.com/x"); strings.Contains(got, "pw") {
		t.Errorf("redactURL kept the password: %s", got)
	}
}

func TestStackAbsentWithoutPulumi(t *testing.T) {
	state := t.TempDir()
	other := t.TempDir()
	for _, dir := range []string{defaultBackendDir(state), other} {
		stacks := filepath.Join(dir, ".pulumi", "stacks", ProjectName)
		if err := os.MkdirAll(stacks, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stacks, "shop-prod.json"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, ".pulumi", "stacks", ProjectName, "shop-test.json.gz"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		backend, stack string
		absent         bool
	}{
		{"", "shop-prod", false},
		{"", "shop-test", true},
		{"", "../../x", true}, // cannot be a stack name at all
		{fileURL(other), "shop-test", false},
		{fileURL(other), "nosuch", true},
		{"s3://bucket/prefix", "nosuch", false}, // cannot tell
	} {
		if got := StackAbsent(state, tt.backend, tt.stack); got != tt.absent {
			t.Errorf("StackAbsent(%q, %q) = %v, want %v", tt.backend, tt.stack, got, tt.absent)
		}
	}
}

func TestCommandNameAndLocalAnswers(t *testing.T) {
	tests := map[string][]string{
		"up":            {"--non-interactive", "up", "--yes", "--event-log", "tcp://localhost:1", "--stack", "dev"},
		"stack output":  {"--non-interactive", "stack", "output", "--json", "--stack", "dev"},
		"stack history": {"stack", "history", "--json"},
		"stack select":  {"stack", "select", "--stack", "dev"},
	}
	for want, args := range tests {
		if got := commandName(args); got != want {
			t.Errorf("commandName(%q) = %q, want %q", args, got, want)
		}
	}
	ctx := withLocalAnswers(context.Background(), map[string]string{"stack history": "[]"})
	if a, ok := localAnswer(ctx, tests["stack history"]); !ok || a != "[]" {
		t.Errorf("stack history not answered locally")
	}
	if _, ok := localAnswer(ctx, tests["up"]); ok {
		t.Errorf("up answered locally")
	}
}

// mocks records registrations for the inline program helper's tests.
type mocks struct {
	mu     sync.Mutex
	inputs map[string]resource.PropertyMap
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inputs[args.Name] = args.Inputs
	outs := resource.PropertyMap{
		"endpoint": resource.NewStringProperty("https://" + args.Name),
		"key":      resource.MakeSecret(resource.NewStringProperty("k")),
	}
	return args.Name + "-id", outs, nil
}

func (m *mocks) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func TestResourceHelper(t *testing.T) {
	type embedded struct {
		Shared string `json:"shared"`
	}
	type inputs struct {
		embedded
		Path     string             `json:"path"`
		Port     int                `json:"port,omitempty"`
		Labels   map[string]string  `json:"labels,omitempty"`
		Upstream pulumi.StringInput `json:"upstream,omitempty"`
		Skipped  string             `json:"-"`
	}
	m := &mocks{inputs: map[string]resource.PropertyMap{}}
	var endpoint, key string
	var keySecret bool
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		a, err := Resource(ctx, "secprov:test:File", "a", inputs{embedded: embedded{"s"}, Path: "/a", Labels: map[string]string{"x": "y"}})
		if err != nil {
			return err
		}
		_, err = Resource(ctx, "secprov:test:File", "b", inputs{Path: "/b", Upstream: a.String("endpoint"), Skipped: "no"}, DependsOn(a))
		if err != nil {
			return err
		}
		if _, err := Resource(ctx, "aws:s3:Bucket", "c", nil); err == nil {
			return errors.New("a non-secprov token was accepted")
		}
		if _, err := Resource(ctx, "secprov:test:File", "d", 42); err == nil {
			return errors.New("inputs of type int were accepted")
		}
		a.String("endpoint").ApplyT(func(s string) string { endpoint = s; return s })
		a.Output("key").ApplyT(func(v any) any { key, _ = v.(string); return v })
		keySecret = pulumi.IsSecret(a.Output("key"))
		return nil
	}, pulumi.WithMocks("secprov", "dev", m))
	if err != nil {
		t.Fatal(err)
	}
	wantA := resource.NewPropertyMapFromMap(map[string]any{"shared": "s", "path": "/a", "labels": map[string]any{"x": "y"}})
	if !m.inputs["a"].DeepEquals(wantA) {
		t.Errorf("inputs of a = %v, want %v", m.inputs["a"], wantA)
	}
	wantB := resource.NewPropertyMapFromMap(map[string]any{"shared": "", "path": "/b", "upstream": "https://a"})
	if !m.inputs["b"].DeepEquals(wantB) {
		t.Errorf("inputs of b = %v, want %v", m.inputs["b"], wantB)
	}
	if endpoint != "https://a" || key != "k" {
		t.Errorf("outputs: endpoint %q key %q", endpoint, key)
	}
	if !keySecret {
		t.Errorf("a secret output lost its secretness in the program")
	}
}

func TestCheckBackendURL(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"", ""},
		{"file:///var/lib/secprov", ""},
		{"postgres://u:pw@db.example.com:5432/secprov?sslmode=require", ""},
		{"postgresql://db.example.com/secprov", ""},
		{"s3://bucket?region=eu-west-1", ""},
		{"gs://bucket", ""},
		{"azblob://container", ""},
		{"https://api.pulumi.com", ""},
		{"postgress://u:topsecret@db/x", `scheme "postgress" is not a Pulumi backend`},
		{"s4://bucket", `scheme "s4"`},
		{"/var/lib/secprov", `scheme ""`},
		{"postgres:///secprov", "names no host or bucket"},
		{"s3://", "names no host or bucket"},
	} {
		err := CheckBackendURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error containing %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "topsecret"):
			t.Errorf("the error shows the URL's password: %v", err)
		}
	}
}

// The backend URL's password never reaches an error, however the engine
// quotes the URL.
func TestBackendPasswordRedacted(t *testing.T) {
	const url = "postgres://secprov:s3cr3t-pw%21@127.0.0.1:1/db?sslmode=disable"
	e := &Engine{cfg: Config{Backend: url, Passphrase: NewPassphrase("a-passphrase")}}
	autoErr := errors.New(`failed: exit status 255` + "\nstderr: error: unable to open state database \"" + url + "\": failed to ping PostgreSQL: dial tcp 127.0.0.1:1: connect: connection refused (password s3cr3t-pw!)\n")
	msg := e.wrap("listing stacks", "", autoErr, nil, "").Error()
	for _, leak := range []string{"s3cr3t", "%21"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error shows the password (%q):\n%s", leak, msg)
		}
	}
	for _, want := range []string{"postgres://secprov:REDACTED@127.0.0.1:1/db", "cannot be reached", "Nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.HasPrefix(msg, "listing stacks of stack") {
		t.Errorf("error names an empty stack:\n%s", msg)
	}
}
