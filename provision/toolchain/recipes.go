package toolchain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The recipes below are the ones measured to work against the Go module
// proxy (see ENVIRONMENT.md). Each runs in its own wrapper module, so the
// tools' dependency graphs never meet secprov's.

const wrapperGoDirective = "go 1.26.0"

func kubernetesRecipe(version string, bins []string) *Recipe {
	major, minor := kubeMajorMinor(version)
	var pkgs, pkgsAt []string
	for _, b := range bins {
		p := "k8s.io/kubernetes/cmd/" + b
		pkgs = append(pkgs, p)
		pkgsAt = append(pkgsAt, p+"@"+version)
	}
	// Without these the binaries report v0.0.0-master, which fails the
	// version check.
	ld := "-s -w"
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld += fmt.Sprintf(" -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
			p, version, p, major, p, minor, p)
	}
	return &Recipe{
		Files: map[string]string{
			"go.mod": "module secprov-toolchain/kubernetes\n\n" + wrapperGoDirective + "\n\nrequire k8s.io/kubernetes " + version + "\n",
		},
		Steps: []Step{
			{Desc: "replace ./staging modules with published ones", Func: func(ctx context.Context, b *Builder) error {
				return addKubernetesStagingReplaces(ctx, b, version)
			}},
			{Desc: "go get -tool", Go: append([]string{"get", "-tool"}, pkgsAt...)},
			{Desc: "go mod tidy", Go: []string{"mod", "tidy"}},
			{
				Desc: fmt.Sprintf("go build (%d commands)", len(pkgs)),
				Go:   append([]string{"build", "-trimpath", "-ldflags", ld, "-o", "{out}/"}, pkgs...),
				Env:  []string{"CGO_ENABLED=0"},
			},
		},
	}
}

// kubeMajorMinor splits "v1.37.2" into "1" and "37".
func kubeMajorMinor(version string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// skipStagingModule reports staging modules the proxy does not serve; no
// command secprov builds needs them.
func skipStagingModule(mod string) bool {
	return mod == "k8s.io/sample-cli-plugin" || mod == "k8s.io/sample-controller"
}

// addKubernetesStagingReplaces reads k8s.io/kubernetes' own go.mod, which
// points its k8s.io/* dependencies at ./staging (absent from the module zip),
// and makes the wrapper use the published v0.X.Y modules instead.
func addKubernetesStagingReplaces(ctx context.Context, b *Builder, version string) error {
	out, err := b.Go(ctx, nil, "mod", "download", "-json", "k8s.io/kubernetes@"+version)
	var info struct {
		GoMod string
		Error string
	}
	if jerr := json.Unmarshal(out, &info); jerr != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("reading 'go mod download -json' output: %w", jerr)
	}
	if info.Error != "" {
		return fmt.Errorf("downloading k8s.io/kubernetes@%s: %s", version, info.Error)
	}
	if err != nil {
		return err
	}
	gomod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return fmt.Errorf("reading k8s.io/kubernetes' go.mod: %w", err)
	}
	staging, err := stagingVersion(version)
	if err != nil {
		return err
	}
	lines, err := stagingReplaces(gomod, staging)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(b.Dir, "go.mod"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fmt.Fprintf(b.Log, "added %d replace directives to go.mod\n", len(lines))
	return err
}

// stagingVersion maps a Kubernetes release to the version of its published
// staging modules: v1.37.2 → v0.37.2.
func stagingVersion(version string) (string, error) {
	rest, ok := strings.CutPrefix(version, "v1.")
	if !ok {
		return "", fmt.Errorf("kubernetes version %q: staging module versions are only known for v1.x", version)
	}
	return "v0." + rest, nil
}

var replaceBlockStart = regexp.MustCompile(`^replace\s*\($`)

// stagingReplaces returns, sorted, one "replace M => M VERSION" line for every
// module that gomod replaces with a ./staging directory.
func stagingReplaces(gomod []byte, version string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		var spec string
		switch {
		case replaceBlockStart.MatchString(line):
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case inBlock:
			spec = line
		case strings.HasPrefix(line, "replace "):
			spec = strings.TrimPrefix(line, "replace ")
		default:
			continue
		}
		f := strings.Fields(spec)
		arrow := -1
		for i, w := range f {
			if w == "=>" {
				arrow = i
				break
			}
		}
		if arrow < 1 || arrow+1 >= len(f) {
			continue
		}
		mod, target := f[0], f[arrow+1]
		if !strings.HasPrefix(target, "./staging/") || skipStagingModule(mod) || seen[mod] {
			continue
		}
		seen[mod] = true
		out = append(out, fmt.Sprintf("replace %s => %s %s", mod, mod, version))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("k8s.io/kubernetes' go.mod has no ./staging replaces: the build recipe does not fit this version")
	}
	sort.Strings(out)
	return out, nil
}

func etcdRecipe(version string) *Recipe {
	return &Recipe{
		Files: map[string]string{
			"go.mod": "module secprov-toolchain/etcd\n\n" + wrapperGoDirective + "\n",
			"cmd/etcd/main.go": `// Command etcd is the etcd server, built from its published module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`,
			"cmd/etcdctl/main.go": `// Command etcdctl is the etcd client CLI, built from its published module.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
`,
		},
		Steps: []Step{
			{Desc: "go get", Go: []string{"get", "go.etcd.io/etcd/server/v3@" + version, "go.etcd.io/etcd/etcdctl/v3@" + version}},
			{Desc: "go mod tidy", Go: []string{"mod", "tidy"}},
			{
				Desc: "go build (2 commands)",
				Go:   []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", "{out}/", "./cmd/etcd", "./cmd/etcdctl"},
				Env:  []string{"CGO_ENABLED=0"},
			},
		},
	}
}

func pulumiRecipe(version string) *Recipe {
	return &Recipe{
		Files: map[string]string{
			// The clipboard replace is copied from pulumi/pkg's own go.mod;
			// without it the module graph does not resolve.
			"go.mod": "module secprov-toolchain/pulumi\n\n" + wrapperGoDirective + "\n\n" +
				"require (\n" +
				"\tgithub.com/pulumi/pulumi/pkg/v3 " + version + "\n" +
				"\tgithub.com/pulumi/pulumi/sdk/v3 " + version + "\n" +
				")\n\n" +
				"replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n",
			"tools.go": "//go:build tools\n\n// Package tools pins the pulumi command for go mod tidy.\npackage tools\n\nimport _ \"github.com/pulumi/pulumi/pkg/v3/cmd/pulumi\"\n",
		},
		Steps: []Step{
			{Desc: "go mod tidy", Go: []string{"mod", "tidy"}},
			{
				Desc: "go build",
				Go: []string{"build", "-trimpath",
					"-ldflags", "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=" + version,
					"-o", "{out}/bin/pulumi", "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"},
			},
		},
	}
}

func vaultRecipe(version string) *Recipe {
	return &Recipe{
		Files: map[string]string{
			// api and sdk at exactly what vault's go.mod asks for; the two
			// replaces are copied from it. Never run go mod tidy here: tidy
			// pulls newer grpc/otel for dependencies' tests and the build
			// then fails.
			"go.mod": "module secprov-toolchain/vault\n\n" + wrapperGoDirective + "\n\n" +
				"require (\n" +
				"\tgithub.com/hashicorp/vault " + version + "\n" +
				"\tgithub.com/hashicorp/vault/api v1.14.0\n" +
				"\tgithub.com/hashicorp/vault/sdk v0.13.0\n" +
				")\n\n" +
				"tool github.com/hashicorp/vault\n\n" +
				"replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1\n\n" +
				"replace github.com/pires/go-proxyproto v1.0.0 => github.com/peteski22/go-proxyproto v1.0.0\n",
		},
		Steps: []Step{{
			Desc: "go build",
			Go:   []string{"build", "-trimpath", "-ldflags=-s -w", "-o", "{out}/vault", "github.com/hashicorp/vault"},
			Env:  []string{"GOFLAGS=-mod=mod", "GOTOOLCHAIN=local"},
		}},
	}
}
