package providers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "secprov.dev/secprov"

// providerTrees are the packages of each cluster provider (with their
// subpackages). Only this package may import them; everything else goes
// through cluster.Provider.
var providerTrees = []string{module + "/provision/local", module + "/provision/kind"}

// sharedPackages sit in a provider's tree but are not the provider: the
// kind image set, which `secprov images` builds and lists.
var sharedPackages = []string{module + "/provision/kind/images"}

// TestProviderPackagesAreNamedOnce fails the build when a package other
// than the registration imports a provider package, or when hardening
// imports provision (it is told its topology, it does not look it up).
// Tests are exempt: integration tests reach into a provider on purpose.
func TestProviderPackagesAreNamedOnce(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := module + "/" + filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			for _, tree := range providerTrees {
				inTree := func(p string) bool { return p == tree || strings.HasPrefix(p, tree+"/") }
				if inTree(ip) && !inTree(pkg) && pkg != module+"/provision/providers" && !slices.Contains(sharedPackages, ip) {
					t.Errorf("%s imports the provider package %s; only %s/provision/providers (the registration) may: use cluster.Provider", path, ip, module)
				}
			}
			if strings.HasPrefix(pkg, module+"/hardening") && strings.HasPrefix(ip, module+"/provision") {
				t.Errorf("%s: hardening imports %s; hardening is told addresses, ports and capabilities by the provider", path, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files; is the module root right?", checked)
	}
}
