package telemetry_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The measurement point knows the errors it measures by their methods
// (PanicStack, ErrorType), never by the packages that make them: it imports
// neither the root nor middleware, which build on it.
func TestImportsNeitherRootNorMiddleware(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "libx.net/eventstream" || path == "libx.net/eventstream/middleware" {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
