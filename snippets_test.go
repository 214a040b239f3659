package opskit_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/doc/comment"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocSnippetsCompile type-checks every Go snippet of README.md (its
// ```go blocks) and of every package's doc.go (the indented code blocks of
// the package comment) against this checkout, as a user who pastes them
// would compile them, so a snippet cannot rot: a renamed field, a changed
// signature or a literal "..." fails here.
//
// A snippet is a function body: it may "return err" and use the free
// variables a reader supplies (ctx, hosts, logger, ...), declared for it
// from snippetVars; its own unused variables are allowed. A snippet that
// starts with "func" is a list of declarations, and a doc.go's declaration
// snippets form one file. Imports are added for the packages it names.
// Blocks that are not Go (shell commands, an HTTP route table) are listed in
// notGo; any other block that does not parse fails the test.
func TestDocSnippetsCompile(t *testing.T) {
	var snippets []snippet
	for _, s := range readmeSnippets(t, "README.md") {
		if !nestedSections[s.where] {
			snippets = append(snippets, s)
		}
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() && path != "." {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module checks its own snippets (nestedSections)
			}
		}
		if d.Name() == "doc.go" {
			snippets = append(snippets, docSnippets(t, path)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	imp := newSnippetImporter(t)
	if testing.Verbose() {
		t.Logf("packages snippets may name: %v", slices.Sorted(maps.Keys(imp.names)))
	}
	n := 0
	for _, s := range snippets {
		t.Run(s.pos(), func(t *testing.T) {
			errs := typeCheckSnippet(s, imp)
			sum := sha256.Sum256([]byte(s.code))
			key := [2]string{s.where, hex.EncodeToString(sum[:])[:12]}
			if reason, ok := skipSnippets[key]; ok {
				if len(errs) == 0 {
					t.Errorf("%s compiles now: remove %q from skipSnippets (%s)", s.pos(), key, reason)
				}
				t.Skipf("%s: not compiled: %s", s.pos(), reason)
			}
			for _, e := range errs {
				t.Error(e)
			}
		})
		n++
	}
	if n < 15 {
		t.Errorf("checked %d snippets; want every snippet of README.md and the doc.go files", n)
	}
}

// snippetVars are the free variables snippets may use: name, type, and the
// import paths that type needs.
var snippetVars = map[string]struct {
	typ     string
	imports []string
}{
	"ctx":        {"context.Context", []string{"context"}},
	"logger":     {"*slog.Logger", []string{"log/slog"}},
	"secret":     {"release.Secret", []string{"github.com/opskit/opskit/release"}},
	"current":    {"release.Secret", []string{"github.com/opskit/opskit/release"}},
	"previous":   {"release.Secret", []string{"github.com/opskit/opskit/release"}},
	"md":         {"release.Metadata", []string{"github.com/opskit/opskit/release"}},
	"token":      {"string", nil},
	"apiKey":     {"freshdesk.Secret", []string{"github.com/opskit/opskit/freshdesk"}},
	"hookSecret": {"string", nil},
	"hookToken":  {"string", nil},
	"botID":      {"int64", nil},
	"client":     {"*gitlab.Client", []string{"gitlab.com/gitlab-org/api/client-go"}},
	"pid":        {"int64", nil},
	"hosts":      {"[]string", nil},
	"keys":       {"[]string", nil},
	"kh":         {"string", nil},
	"exec":       {"workflow.Executor", []string{"github.com/opskit/opskit/workflow"}},
	"ex":         {"*fleet.SSH", []string{"github.com/opskit/opskit/fleet"}},
	"t":          {"*testing.T", []string{"testing"}},
	"tokenFile":  {"*string", nil},
	"logs":       {"[]string", nil},
	"host":       {"string", nil},
	"today":      {"string", nil},
	"url":        {"string", nil},
	"r":          {"workflow.Runner", []string{"github.com/opskit/opskit/workflow"}},
	"targets":    {"[]workflow.Target", []string{"github.com/opskit/opskit/workflow"}},
	"dir":        {"string", nil},
	"args":       {"[]string", nil},
	"fs":         {"*flag.FlagSet", []string{"flag"}},
	"stdout":     {"io.Writer", []string{"io"}},
	"stderr":     {"io.Writer", []string{"io"}},
	// Used only once the module requires them (go list -e skips them before).
	"reg": {"*prometheus.Registry", []string{"github.com/prometheus/client_golang/prometheus"}},
	"tp":  {"trace.TracerProvider", []string{"go.opentelemetry.io/otel/trace"}},
}

// snippetImports are the packages outside this module that a snippet may
// name, by name. Every package of this module is named by its package name
// too (opskit, release, fleettest, ...).
var snippetImports = map[string]string{
	"opskit":        "github.com/opskit/opskit",
	"release":       "github.com/opskit/opskit/release",
	"releasetest":   "github.com/opskit/opskit/release/releasetest",
	"gitlabx":       "github.com/opskit/opskit/gitlabx",
	"gitlabtest":    "github.com/opskit/opskit/gitlabx/gitlabtest",
	"freshdesk":     "github.com/opskit/opskit/freshdesk",
	"freshdesktest": "github.com/opskit/opskit/freshdesk/freshdesktest",
	"racelog":       "github.com/opskit/opskit/racelog",
	"semtag":        "github.com/opskit/opskit/semtag",
	"semtagtest":    "github.com/opskit/opskit/semtag/semtagtest",
	"fleet":         "github.com/opskit/opskit/fleet",
	"fleettest":     "github.com/opskit/opskit/fleet/fleettest",
	"agent":         "github.com/opskit/opskit/fleet/agent",
	"agenttest":     "github.com/opskit/opskit/fleet/agent/agenttest",
	"workflow":      "github.com/opskit/opskit/workflow",
	"workflowtest":  "github.com/opskit/opskit/workflow/workflowtest",
	"cli":           "github.com/opskit/opskit/examples/internal/cli",
	"gitlab":        "gitlab.com/gitlab-org/api/client-go",
	"promhttp":      "github.com/prometheus/client_golang/prometheus/promhttp",
	"prometheus":    "github.com/prometheus/client_golang/prometheus",
	"flag":          "flag",
	"context":       "context",
	"errors":        "errors",
	"fmt":           "fmt",
	"http":          "net/http",
	"io":            "io",
	"log":           "log",
	"os":            "os",
	"slog":          "log/slog",
	"strings":       "strings",
	"time":          "time",
	"testing":       "testing",
}

// nestedSections are README sections whose snippets use a nested module
// (workflow/temporal, which the core module must not import): that
// module's TestReadmeSnippet compiles them.
var nestedSections = map[string]bool{
	"README.md#workflow/temporal (a module of its own)": true,
}

// notGo lists code blocks of doc.go files that are not Go, by their first
// line's start.
var notGo = []string{
	"go run ",    // doc.go: a shell command
	"curl ",      // release: the legacy client's command
	"GET  /v1",   // fleet/agent: the HTTP API's routes
	"opskit_",    // a table of metric names
	"behaviour ", // gitlabtest: the table of GitLab behaviours
}

// skipSnippets lists snippets not compiled here, by where they are and the
// SHA-256 of their code (so that an edited snippet is compiled again), with
// the reason. A listed snippet that compiles fails the test, so that its
// entry is removed.
var skipSnippets = map[[2]string]string{}

type snippet struct {
	file  string // README.md or a doc.go, relative to the module root
	where string // file, or file#section for README.md
	line  int    // the first line of the code in file
	code  string
	decls bool // a list of declarations, not statements
}

func (s snippet) pos() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// readmeSnippets returns the ```go blocks of a Markdown file, each with the
// ### section it is in.
func readmeSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var cur *snippet
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			section = strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &snippet{file: path, where: path + "#" + section, line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.decls = startsWithDecl(cur.code)
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// docSnippets returns the code blocks of the package comment of a doc.go
// that are Go; declaration blocks are joined into one snippet.
func docSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		return nil
	}
	path = filepath.ToSlash(path)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var p comment.Parser
	doc := p.Parse(f.Doc.Text())
	var out []snippet
	var decls *snippet
	for _, b := range doc.Content {
		code, ok := b.(*comment.Code)
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(code.Text, "\n")
		if slices.ContainsFunc(notGo, func(p string) bool { return strings.HasPrefix(first, p) }) {
			continue
		}
		s := snippet{file: path, where: path, line: findLine(lines, first), code: code.Text}
		if !startsWithDecl(code.Text) {
			out = append(out, s)
			continue
		}
		if decls == nil {
			s.decls = true
			decls = &s
			continue
		}
		decls.code += "\n" + code.Text
	}
	if decls != nil {
		out = append(out, *decls)
	}
	return out
}

// findLine returns the 1-based line of the comment line "//\t"+text.
func findLine(lines []string, text string) int {
	for i, l := range lines {
		if strings.TrimPrefix(l, "//\t") == text {
			return i + 1
		}
	}
	return 0
}

func startsWithDecl(code string) bool {
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "func ") || strings.HasPrefix(l, "type ")
	}
	return false
}

// source wraps s in a file of package snippet: imports for every package it
// names and, for statements, a function whose parameters are vars. It
// returns the source and the number of lines before s.code.
func (s snippet) source(vars []string, names map[string]string) (string, int, error) {
	body := s.code
	if !s.decls {
		body = "func _() error {\n" + s.code + "\nreturn nil\n}\n"
	}
	// Parse without imports to learn which packages the code names.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", "package snippet\n"+body, parser.SkipObjectResolution)
	if err != nil {
		return "", 0, err
	}
	paths := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && names[id.Name] != "" {
				paths[names[id.Name]] = true
			}
		}
		return true
	})
	var params []string
	for _, v := range vars {
		sv := snippetVars[v]
		params = append(params, v+" "+sv.typ)
		for _, p := range sv.imports {
			paths[p] = true
		}
	}
	var b strings.Builder
	b.WriteString("package snippet\n\n")
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range paths {
			if !yield(p) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "import %q\n", p)
	}
	if s.decls {
		head := strings.Count(b.String(), "\n")
		return b.String() + s.code, head, nil
	}
	fmt.Fprintf(&b, "func _(%s) error {\n", strings.Join(params, ", "))
	head := strings.Count(b.String(), "\n")
	b.WriteString(s.code + "\nreturn nil\n}\n")
	return b.String(), head, nil
}

var undefinedRE = regexp.MustCompile(`^undefined: ([A-Za-z_][A-Za-z0-9_]*)$`)

// typeCheckSnippet returns what is wrong with s, as file:line messages.
func typeCheckSnippet(s snippet, imp *snippetImporter) []string {
	var vars []string
	for {
		src, head, err := s.source(vars, imp.names)
		if err != nil {
			return []string{fmt.Sprintf("%s: does not parse as Go (%v); fix it, or list it in notGo if it is not Go", s.pos(), err)}
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "snippet.go", src, parser.SkipObjectResolution)
		if err != nil {
			return []string{fmt.Sprintf("%s: does not parse as Go (%v); fix it, or list it in notGo if it is not Go", s.pos(), err)}
		}
		var errs []types.Error
		conf := types.Config{Importer: imp, Error: func(err error) { errs = append(errs, err.(types.Error)) }}
		conf.Check("snippet", fset, []*ast.File{f}, nil)
		var out []string
		var missing []string
		for _, e := range errs {
			if strings.Contains(e.Msg, "declared and not used") {
				continue // a snippet shows a result without using it
			}
			line := s.line + fset.Position(e.Pos).Line - head - 1
			if m := undefinedRE.FindStringSubmatch(e.Msg); m != nil && !s.decls {
				if sv, ok := snippetVars[m[1]]; ok && !slices.Contains(vars, m[1]) && imp.available(sv.imports) {
					missing = append(missing, m[1])
					continue
				}
				out = append(out, fmt.Sprintf("%s:%d: %s (a free variable? give its type in snippetVars)", s.file, line, e.Msg))
				continue
			}
			out = append(out, fmt.Sprintf("%s:%d: %s", s.file, line, e.Msg))
		}
		if len(missing) == 0 || len(out) > 0 {
			return out
		}
		vars = append(vars, missing...)
		slices.Sort(vars)
		vars = slices.Compact(vars)
	}
}

// snippetImporter imports packages from the compiler's export data.
type snippetImporter struct {
	types.Importer
	exports map[string]string // import path: export data file
	names   map[string]string // package name a snippet may use: import path
}

func (imp *snippetImporter) available(paths []string) bool {
	for _, p := range paths {
		if imp.exports[p] == "" {
			return false
		}
	}
	return true
}

// newSnippetImporter reads the compiler's export data (go list -export) of
// every package of the module and every package the snippets may import.
func newSnippetImporter(t *testing.T) *snippetImporter {
	t.Helper()
	paths := []string{"./..."}
	for _, p := range snippetImports {
		paths = append(paths, p)
	}
	for _, v := range snippetVars {
		paths = append(paths, v.imports...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	cmd := exec.Command("go", append([]string{"list", "-e", "-deps", "-export", "-json=ImportPath,Name,Export,Module,Error"}, paths...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -export: %v\n%s", err, stderr)
	}
	imp := &snippetImporter{exports: map[string]string{}, names: map[string]string{}}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath, Name, Export string
			Module                   *struct{ Path string }
			Error                    *struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			continue // a package this module does not require (yet)
		}
		imp.exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Path == "github.com/opskit/opskit" && p.Name != "main" &&
			!strings.HasPrefix(p.ImportPath, "github.com/opskit/opskit/internal/") {
			if prev, dup := imp.names[p.Name]; dup && prev != p.ImportPath {
				t.Logf("package name %s is ambiguous (%s, %s); snippets get %s", p.Name, prev, p.ImportPath, min(prev, p.ImportPath))
				p.ImportPath = min(prev, p.ImportPath)
			}
			imp.names[p.Name] = p.ImportPath
		}
	}
	for name, path := range snippetImports {
		if _, ok := imp.names[name]; !ok {
			imp.names[name] = path
		}
	}
	imp.Importer = importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := imp.exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	return imp
}
