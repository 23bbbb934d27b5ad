package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, args)
	if err != nil && err.Error() != "" {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "blueprints", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writeFiles writes name→content into a new temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q does not occur exactly once", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestReviewExamplesClean(t *testing.T) {
	for _, format := range []string{"text", "json", "sarif", "markdown"} {
		out, stderr, code := run(t, "review", "-o", format, filepath.Join("..", "..", "..", "blueprints", "examples"))
		if code != 0 {
			t.Fatalf("-o %s: exit %d; stdout:\n%s\nstderr:\n%s", format, code, out, stderr)
		}
		if format == "json" && !strings.Contains(out, `"summary": {`+"\n"+`    "blueprints": 2,`+"\n"+`    "findings": 0,`) {
			t.Errorf("json summary: %s", out)
		}
	}
}

func TestReviewDefaultPathIsCurrentDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{"prod.yaml": readExample(t, "prod.yaml"), "test.yml": readExample(t, "test.yaml")})
	t.Chdir(dir)
	out, _, code := run(t, "review")
	if code != 0 || !strings.Contains(out, "2 blueprints reviewed: 0 findings") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestReviewExitCodes(t *testing.T) {
	prod, test := readExample(t, "prod.yaml"), readExample(t, "test.yaml")
	weak := replace(t, test, "endpoint: private ", "endpoint: public ")                               // high
	lowOnly := replace(t, test, "enforce: restricted\n", "enforce: restricted\n    warn: baseline\n") // low
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		want  string
	}{
		{"clean", map[string]string{"prod.yaml": prod, "test.yaml": test}, nil, 0, "0 findings"},
		{"high finding", map[string]string{"prod.yaml": prod, "test.yaml": weak}, nil, 1, "HIGH SP-API-001 spec.apiServer.endpoint"},
		{"fail-on critical", map[string]string{"prod.yaml": prod, "test.yaml": weak}, []string{"--fail-on", "critical"}, 0, "0 at or above critical"},
		{"fail-on none", map[string]string{"prod.yaml": prod, "test.yaml": weak}, []string{"--fail-on", "none"}, 0, "1 finding"},
		{"low below default threshold", map[string]string{"prod.yaml": prod, "test.yaml": lowOnly}, nil, 0, "LOW SP-PSS-003"},
		{"fail-on low", map[string]string{"prod.yaml": prod, "test.yaml": lowOnly}, []string{"--fail-on", "low"}, 1, "1 at or above low"},
		{"verbose remediation", map[string]string{"prod.yaml": prod, "test.yaml": weak}, []string{"-v"}, 1, "    remediation: Set spec.apiServer.endpoint: private"},
		{"load error with findings", map[string]string{"prod.yaml": prod, "test.yaml": weak, "bad.yaml": "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata: {name: x}\nspec: {environment: dev, foo: 1}\n"},
			nil, 2, "HIGH SP-API-001"},
		{"bad output format", map[string]string{"prod.yaml": prod}, []string{"-o", "xml"}, 2, `unknown output format "xml"`},
		{"bad fail-on", map[string]string{"prod.yaml": prod}, []string{"--fail-on", "urgent"}, 2, `unknown severity "urgent"`},
		{"unknown flag", map[string]string{"prod.yaml": prod}, []string{"--nope"}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			out, stderr, code := run(t, append(append([]string{"review"}, tt.args...), dir)...)
			if code != tt.code || !strings.Contains(out+stderr, tt.want) {
				t.Fatalf("exit %d (want %d), want %q in output:\n%s%s", code, tt.code, tt.want, out, stderr)
			}
		})
	}
}

var fileLineCol = regexp.MustCompile(`[^\s:]+\.ya?ml:\d+:\d+: ERROR `)

func TestReviewBadInput(t *testing.T) {
	head := "apiVersion: secprov.dev/v1alpha1\nkind: Blueprint\nmetadata:\n  name: bad\n"
	tests := map[string]string{
		"unknown-field.yaml":      head + "spec:\n  environment: dev\n  encryptionAtRest:\n    provder: none\n",
		"wrong-type.yaml":         head + "spec:\n  environment: dev\n  audit:\n    maxAgeDays: thirty\n",
		"duplicate-key.yaml":      head + "spec:\n  environment: dev\n  environment: prod\n",
		"bad-yaml.yaml":           head + "spec:\n  environment: [dev\n",
		"tab.yaml":                head + "spec:\n\tenvironment: dev\n",
		"unknown-apiversion.yaml": "apiVersion: secprov.dev/v9\nkind: Blueprint\nmetadata: {name: bad}\nspec: {environment: dev}\n",
		"unknown-kind.yaml":       "apiVersion: secprov.dev/v1alpha1\nkind: Cluster\nmetadata: {name: bad}\nspec: {environment: dev}\n",
		"invalid-value.yaml":      head + "spec:\n  environment: dev\n  network: {cni: flannel}\n",
		"not-a-mapping.yaml":      "- just\n- a list\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{name: content})
			for _, format := range []string{"text", "json", "markdown", "sarif"} {
				out, stderr, code := run(t, "review", "-o", format, filepath.Join(dir, name))
				if code != 2 {
					t.Fatalf("-o %s: exit %d, want 2:\n%s%s", format, code, out, stderr)
				}
				switch format {
				case "text":
					if !fileLineCol.MatchString(out) {
						t.Errorf("no file:line:col in:\n%s", out)
					}
				case "json":
					var rep struct {
						Errors []struct {
							File         string
							Line, Column int
							Message      string
						}
					}
					if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Errors) == 0 || rep.Errors[0].Line < 1 || rep.Errors[0].Column < 1 || !strings.HasSuffix(rep.Errors[0].File, name) {
						t.Errorf("json errors %+v (%v):\n%s", rep.Errors, err, out)
					}
				default:
					if !strings.Contains(out, name) {
						t.Errorf("-o %s does not name the file:\n%s", format, out)
					}
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.yaml")
		out, stderr, code := run(t, "review", missing)
		if code != 2 || !fileLineCol.MatchString(out) || !strings.Contains(out, "no such file") {
			t.Fatalf("exit %d:\n%s%s", code, out, stderr)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		out, _, code := run(t, "review", t.TempDir())
		if code != 2 || !strings.Contains(out, "no *.yaml or *.yml") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}

func TestReviewListRules(t *testing.T) {
	out, _, code := run(t, "review", "--list-rules", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rules) < 20 {
		t.Fatalf("%d rules", len(got.Rules))
	}
	for _, r := range got.Rules {
		if len(r) != 4 || r["id"] == "" || r["title"] == "" || r["severity"] == "" || r["refs"] == nil {
			t.Errorf("rule %v: want id, title, severity, refs", r)
		}
		if r["id"] == "SP-API-001" && !strings.Contains(strings.Join(toStrings(r["refs"]), ","), "CIS 5.4.2") {
			t.Errorf("SP-API-001 refs %v", r["refs"])
		}
	}
	out, _, code = run(t, "review", "--list-rules")
	if code != 0 || !strings.HasPrefix(out, "ID ") || !regexp.MustCompile(`\nSP-RBAC-001 +critical +Cluster admins`).MatchString(out) {
		t.Errorf("text table (exit %d):\n%s", code, out)
	}
	if _, _, code := run(t, "review", "--list-rules", "-o", "sarif"); code != 2 {
		t.Errorf("--list-rules -o sarif: exit %d, want 2", code)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// git runs git in dir for the --base tests.
func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestReviewBase(t *testing.T) {
	if testing.Short() {
		t.Skipf("skipping: runs git as a subprocess (-short)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("skipping: git is not installed: %v", err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	prod, test := readExample(t, "prod.yaml"), readExample(t, "test.yaml")
	dir := writeFiles(t, map[string]string{"prod.yaml": prod, "test.yaml": test})
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "root")
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
	git(t, dir, "checkout", "-q", "-b", "change")
	weak := replace(t, prod, "provider: vault-kms", "provider: none")
	weak = replace(t, weak, "exceptions: []", `exceptions: [{control: SP-ENC-001, justification: "migration window, approved by security", expires: "2099-01-01"}]`)
	if err := os.WriteFile(filepath.Join(dir, "prod.yaml"), []byte(weak), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "weaken")
	t.Chdir(dir)

	// Excepted weakening is info, but adding the exception is a critical change.
	out, stderr, code := run(t, "review", "--base", "main", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d:\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		`"message": "SP-ENC-001: spec.encryptionAtRest.provider weakened from \"vault-kms\" to \"none\" (base main) [excepted until 2099-01-01: migration window, approved by security]"`,
		`"message": "SP-ENC-001: new exception for SP-ENC-001 until 2099-01-01 added (base main)"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	if out, _, code := run(t, "review", "--base", "HEAD~1", "-o", "sarif"); code != 1 || !strings.Contains(out, `"uri": "prod.yaml"`) || !strings.Contains(out, `"ruleId": "SP-CHG-001"`) {
		t.Errorf("sarif against HEAD~1: exit %d:\n%s", code, out)
	}
	if out, _, code := run(t, "review", "--base", "HEAD"); code != 0 || strings.Contains(out, "SP-CHG-001") {
		t.Errorf("against HEAD: exit %d, want 0 and no changes:\n%s", code, out)
	}
	out, stderr, code = run(t, "review", "--base", "no-such-branch")
	if code != 2 || !strings.Contains(stderr, "bad revision 'no-such-branch^{commit}'") {
		t.Errorf("bad revision: exit %d:\n%s%s", code, out, stderr)
	}
	if out != "" {
		t.Errorf("a usage error printed a report:\n%s", out)
	}
}

// TestReviewEscapesHostileFileNames: a file name from a pull request
// cannot forge report lines or markup. The names are made at run time;
// git cannot hold them.
func TestReviewEscapesHostileFileNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"evil\nforged.yaml:1:1: ERROR injected.yaml", "esc\x1b[2J.yaml", "md|<b>[x](y)`.yaml"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("apiVersion: [\n"), 0o644); err != nil {
			t.Skipf("the file system refuses the name %q: %v", n, err)
		}
	}
	out, _, code := run(t, "review", "-o", "text", dir)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d (load errors):\n%s", code, ExitUsage, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(names)+1 {
		t.Errorf("%d lines for %d load errors and a summary:\n%s", len(lines), len(names), out)
	}
	if strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "\nforged") {
		t.Errorf("a raw name reached the text report:\n%q", out)
	}
	mustHave(t, out, `evil\nforged.yaml:1:1: ERROR injected.yaml:`, `esc\x1b[2J.yaml:`)

	md, _, _ := run(t, "review", "-o", "markdown", dir)
	if strings.Contains(md, "\x1b") || strings.Count(md, "\n- ") != len(names) {
		t.Errorf("markdown carries a raw name:\n%s", md)
	}
	// The name with a backtick is fenced by two, so its <b> and [x](y)
	// stay literal code.
	if !regexp.MustCompile("\n- ``[^`]*md\\|<b>\\[x\\]\\(y\\)`\\.yaml:2:1``: ").MatchString(md) {
		t.Errorf("the name with markup is not one code span:\n%s", md)
	}
}
