package opskit_test

import (
	"encoding/json"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPublicAPIHasNoInternalTypes fails when an exported identifier of a
// public package (a field, a parameter, a result, an alias, a variable, an
// embedded type, a method) has a type from an internal/ package: a user can
// neither name nor build such a value ("cannot use tok (variable of type
// string) as secret.String value").
//
// It type-checks the packages from the compiler's export data (go list
// -export), which is what a user's build sees.
func TestPublicAPIHasNoInternalTypes(t *testing.T) {
	pkgs, exports := listPackages(t)
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	var problems []string
	for _, path := range pkgs {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("importing %s: %v", path, err)
		}
		w := apiWalker{seen: map[types.Type]bool{}}
		scope := pkg.Scope()
		for _, name := range scope.Names() {
			obj := scope.Lookup(name)
			if !obj.Exported() {
				continue
			}
			where := path + "." + name
			switch obj := obj.(type) {
			case *types.TypeName:
				if a, ok := obj.Type().(*types.Alias); ok {
					w.check(where, a.Rhs())
					continue
				}
				named, ok := obj.Type().(*types.Named)
				if !ok {
					continue
				}
				w.checkUnderlying(where, named.Underlying())
				for m := range named.Methods() {
					if m.Exported() {
						w.check(where+"."+m.Name(), m.Type())
					}
				}
			default:
				w.check(where, obj.Type())
			}
		}
		problems = append(problems, w.problems...)
	}
	slices.Sort(problems)
	for _, p := range slices.Compact(problems) {
		t.Errorf("exported API uses an internal type: %s", p)
	}
	if len(pkgs) < 10 {
		t.Errorf("checked %d packages (%q); want every public package", len(pkgs), pkgs)
	}
}

// listPackages returns the public packages of the module and the export
// data file of every package they depend on.
func listPackages(t *testing.T) (public []string, exports map[string]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-export", "-json=ImportPath,Export,Name,Module,Standard", "./...")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -export: %v\n%s", err, stderr)
	}
	exports = map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath, Export, Name string
			Standard                 bool
			Module                   *struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Path == "github.com/opskit/opskit" && p.Name != "main" && !internalPath(p.ImportPath) &&
			!strings.Contains(p.ImportPath, "/examples/") && !strings.Contains(p.ImportPath, "/scripts/") {
			public = append(public, p.ImportPath)
		}
	}
	return public, exports
}

func internalPath(path string) bool {
	return strings.HasSuffix(path, "/internal") || strings.Contains(path, "/internal/") || strings.HasPrefix(path, "internal/")
}

type apiWalker struct {
	seen     map[types.Type]bool
	problems []string
}

// check reports t when it is, or is built from, a named type or an alias
// declared in an internal package. Named types of other packages are not
// entered: public ones are walked on their own.
func (w *apiWalker) check(where string, t types.Type) {
	switch t := t.(type) {
	case *types.Alias:
		if obj := t.Obj(); obj.Pkg() != nil && internalPath(obj.Pkg().Path()) {
			w.problems = append(w.problems, fmt.Sprintf("%s: %s.%s", where, obj.Pkg().Path(), obj.Name()))
			return
		}
		w.check(where, t.Rhs())
	case *types.Named:
		if obj := t.Obj(); obj.Pkg() != nil && internalPath(obj.Pkg().Path()) {
			w.problems = append(w.problems, fmt.Sprintf("%s: %s.%s", where, obj.Pkg().Path(), obj.Name()))
			return
		}
		for a := range t.TypeArgs().Types() {
			w.check(where, a)
		}
	case *types.Pointer:
		w.check(where, t.Elem())
	case *types.Slice:
		w.check(where, t.Elem())
	case *types.Array:
		w.check(where, t.Elem())
	case *types.Chan:
		w.check(where, t.Elem())
	case *types.Map:
		w.check(where, t.Key())
		w.check(where, t.Elem())
	case *types.Signature:
		for v := range t.Params().Variables() {
			w.check(where, v.Type())
		}
		for v := range t.Results().Variables() {
			w.check(where, v.Type())
		}
	case *types.Struct, *types.Interface:
		if w.seen[t] {
			return
		}
		w.seen[t] = true
		w.checkUnderlying(where, t)
	}
}

// checkUnderlying checks what a user reaches in a struct or an interface:
// exported and embedded fields, exported methods.
func (w *apiWalker) checkUnderlying(where string, t types.Type) {
	switch t := t.(type) {
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() || f.Embedded() {
				w.check(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for i := range t.NumEmbeddeds() {
			w.check(where, t.EmbeddedType(i))
		}
		for m := range t.ExplicitMethods() {
			if m.Exported() {
				w.check(where+"."+m.Name(), m.Type())
			}
		}
	default:
		w.check(where, t)
	}
}
