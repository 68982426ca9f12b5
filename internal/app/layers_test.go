package app_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"steward/internal/app"
)

// httpTier are the packages (under internal/) that may import net/http: the front ends,
// what they share, the composition root, the S3 client of the blob store, the metrics
// (served to Prometheus, counted per route), the tools that call a running steward
// from outside (crash cycles, soak), and the processors' notices (a webhook client). Every other package is a capability or below it,
// and speaks no HTTP.
var httpTier = []string{"api", "web", "server", "app", "app/apptest", "blob", "metrics", "tools/stress", "notices"}

// frontEnds are the packages a capability must never import: the arrows point from
// them down to the capabilities, never back up.
var frontEnds = []string{"app", "api", "web", "server", "cli"}

// TestLayers reads the imports of every package under internal/ (test files left out)
// and checks the arrows of STYLE.md: the pages and the API share services, not each
// other; no capability imports net/http or a front end; River is known to jobs alone.
func TestLayers(t *testing.T) {
	imports := packageImports(t, "..")
	// The reading itself: packages known to exist and an edge known to be there, so
	// the rules below cannot pass on an empty map.
	for _, p := range []string{"web", "api", "account", "consent", "newsletter", "rights", "files"} {
		if _, ok := imports[p]; !ok {
			t.Fatalf("package %s not found under internal/; read %d packages", p, len(imports))
		}
	}
	if !imports["web"]["steward/internal/server"] {
		t.Fatal("web does not import server: the import reading is broken")
	}

	forbidden := []struct{ from, to string }{
		{"web", "steward/internal/api"},
		{"api", "steward/internal/web"},
	}
	for _, f := range forbidden {
		if imports[f.from][f.to] {
			t.Errorf("%s imports %s: pages and the API share services (internal/server), not each other", f.from, f.to)
		}
	}
	for pkg, imps := range imports {
		for imp := range imps {
			if strings.HasPrefix(imp, "github.com/riverqueue/") && pkg != "jobs" {
				t.Errorf("%s imports %s: River's types stay in jobs (jobs.Args, jobs.RunAgain)", pkg, imp)
			}
		}
		if slices.Contains(httpTier, pkg) {
			continue
		}
		if imps["net/http"] {
			t.Errorf("%s imports net/http: only %v may", pkg, httpTier)
		}
		if pkg == "cli" || strings.HasPrefix(pkg, "cli/") {
			continue // the command line is a front end: it may build the app
		}
		for _, fe := range frontEnds {
			if imps["steward/internal/"+fe] {
				t.Errorf("%s imports steward/internal/%s: a capability never imports a front end", pkg, fe)
			}
		}
	}
}

// TestAnalyticsImports keeps the analytics store unjoinable by construction too:
// internal/analytics imports nothing of Steward's but the store layer and the error
// kinds, so no code of it can reach a member's account, files, rights, requests,
// consent, mail or keys.
func TestAnalyticsImports(t *testing.T) {
	imports := packageImports(t, "..")
	imps, ok := imports["analytics"]
	if !ok || !imps["steward/internal/store"] {
		t.Fatalf("internal/analytics not read (or it no longer uses the store): %v", imps)
	}
	allowed := []string{"steward/internal/store", "steward/internal/apperr"}
	for imp := range imps {
		if strings.HasPrefix(imp, "steward/") && !slices.Contains(allowed, imp) {
			t.Errorf("analytics imports %s: it may import only %v of Steward's packages", imp, allowed)
		}
	}
}

// packageImports maps each package folder under root (relative, with slashes) to the
// set of paths its non-test files import.
func packageImports(t *testing.T, root string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if out[pkg] == nil {
			out[pkg] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			out[pkg][p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "app", "app.go")); err != nil {
		t.Fatalf("root %s is not internal/: %v", root, err)
	}
	return out
}

// TestAppExportsNoServices checks that the app's services are reached through its
// accessors only: nothing outside New can replace one after the app is built.
func TestAppExportsNoServices(t *testing.T) {
	typ := reflect.TypeOf(app.App{})
	if typ.NumField() < 10 {
		t.Fatalf("app.App has %d fields: the reading is broken", typ.NumField())
	}
	for i := range typ.NumField() {
		if f := typ.Field(i); f.IsExported() {
			t.Errorf("app.App exports field %s: give it an accessor instead", f.Name)
		}
	}
}
