// Package readme checks that every Go snippet of the project's README
// compiles against the library as it is: the snippets are what a new user
// copies first.
package readme

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// preamble declares what the snippets take for granted: a context, an
// order, a secret, a mux, a config, the README's Tenant middleware type.
const preamble = `package readmesnippets

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

// Every import is used somewhere, whichever snippets exist.
var (
	_ = context.Background
	_ = tls.Config{}
	_ = fmt.Sprint
	_ = log.Print
	_ = slog.New
	_ = http.NewServeMux
	_ = os.Stderr
	_ = attribute.String
	_ = baggage.FromContext
	_ = otlptracehttp.New
	_ = metric.WithAttributes
	_ = resource.NewSchemaless
	_ = sdktrace.NewTracerProvider
	_ = semconv.ServiceName
	_ = trace.SpanFromContext
	_ = telemetry.NewLogHandler
	_ = time.Second
	_ = middleware.Timeout
)

// Placeholders.
var (
	ctx    = context.Background()
	order  = map[string]any{"id": 42}
	secret = "s3cret"
	mux    = http.NewServeMux()
	cfg    = eventstream.DefaultConfig()
	bus    eventstream.EventBus
	tenant = &Tenant{}
	charge = func(context.Context, *eventstream.Event) error { return nil }
)

type loggerKey struct{}

type Tenant struct {
	logger  *slog.Logger
	handled metric.Int64Counter
}

// The README shows the EventBus interface in the package's own terms.
type (
	EventHandler    = eventstream.EventHandler
	SubscribeOption = eventstream.SubscribeOption
	Subscription    = eventstream.Subscription
	EmitOption      = eventstream.EmitOption
)
`

var fence = regexp.MustCompile("(?s)```go\n(.*?)```")

func TestREADMESnippetsCompile(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fence.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d Go snippets in the README; the pattern is broken", len(blocks))
	}
	var src bytes.Buffer
	src.WriteString(preamble)
	for i, b := range blocks {
		code := b[1]
		switch {
		case strings.HasPrefix(code, "type EventBus interface"):
			// The README's interface must be the library's, method for method.
			src.WriteString("\n" + code + "\nvar _ EventBus = eventstream.EventBus(nil)\nvar _ eventstream.EventBus = EventBus(nil)\n")
		case strings.HasPrefix(code, "func "):
			decl, rest := splitTopLevel(code)
			src.WriteString("\n" + decl + "\n")
			if strings.TrimSpace(rest) != "" {
				src.WriteString(wrap(t, i, rest))
			}
		default:
			src.WriteString(wrap(t, i, code))
		}
	}
	// Build inside this module so the snippets resolve the same dependencies.
	pkgDir, err := os.MkdirTemp(".", "snippets-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(pkgDir)
	if err := os.WriteFile(filepath.Join(pkgDir, "snippets.go"), src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "./"+filepath.Base(pkgDir))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README snippets do not compile:\n%s\n--- generated source ---\n%s", out, numbered(src.String()))
	}
}

// splitTopLevel separates a leading function declaration from statements
// that follow it in the same snippet.
func splitTopLevel(code string) (decl, rest string) {
	depth := 0
	for i, r := range code {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return code[:i+1], code[i+1:]
			}
		}
	}
	return code, ""
}

// wrap puts statements in a function of their own and marks every variable
// they declare at their top level as used.
func wrap(t *testing.T, i int, stmts string) string {
	body := "{\n" + stmts + "\n}"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", "package p\nfunc f() "+body, 0)
	if err != nil {
		t.Fatalf("README snippet %d does not parse: %v\n%s", i+1, err, stmts)
	}
	var uses []string
	for _, s := range f.Decls[0].(*ast.FuncDecl).Body.List {
		if as, ok := s.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			for _, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok && id.Name != "_" {
					uses = append(uses, "_ = "+id.Name)
				}
			}
		}
	}
	return fmt.Sprintf("\nfunc snippet%d() {\n%s\n%s\n}\n", i+1, stmts, strings.Join(uses, "\n"))
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}
