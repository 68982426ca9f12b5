// Package scan finds the SQL statements that Steward's non-test code passes to the
// database, for the boot check of package sqlcheck. It type-checks each package of the
// module (its imports from the build's export data, as `go list -export` leaves them)
// and follows every call to a database method whose statement argument is known when
// the code compiles: a constant, or a local variable only ever given constants. A
// function that passes one of its string parameters on as a statement is a statement
// method too (store.DB.ExecContext, store.Strings and their like), found to a fixed
// point. A call whose statement is built at run time is reported as dynamic.
package scan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Engines a statement runs on.
const (
	SQLite   = 1 << iota // store.SQLite
	Postgres             // store.Postgres
	Both     = SQLite | Postgres
)

// Statement is one statement known at compile time.
type Statement struct {
	File    string // relative to the module root, slash-separated
	Line    int
	Engines int
	SQL     string
}

// Dynamic is a call whose statement is built at run time.
type Dynamic struct {
	File string
	Line int
	Func string // the enclosing function: "name" or "(*T).name"
	Call string // the callee
}

// Result is what a scan finds.
type Result struct {
	Statements []Statement
	Dynamic    []Dynamic
}

// listed is a package as `go list -json` reports it.
type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Standard   bool
	Module     *struct{ Path string }
}

// Module scans the module at root (the folder of go.mod): the packages under cmd and
// internal, except test helpers (packages named *test).
func Module(root string) (*Result, error) {
	cmd := exec.Command("go", "list", "-e", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export,Standard,Module", "./cmd/...", "./internal/...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scan: go list: %v: %s", err, stderr.Bytes())
	}
	var pkgs []listed
	exports := map[string]string{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("scan: go list: %w", err)
		}
		exports[p.ImportPath] = p.Export
		if p.Standard || p.Module == nil || p.Dir == "" {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil || strings.HasPrefix(rel, "..") || strings.HasSuffix(filepath.Base(p.Dir), "test") {
			continue
		}
		// The check itself (its list and this scanner) holds no statement of its own.
		if rel := filepath.ToSlash(rel); !strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "internal/") ||
			strings.HasPrefix(rel, "internal/store/sqlcheck") {
			continue
		}
		pkgs = append(pkgs, p)
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f := exports[path]
		if f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	s := &scanner{root: root, fset: fset, sinks: map[string]int{}, funcs: map[string]funcDecl{},
		vars: map[string]types.Object{}, owner: map[types.Object]*pkg{}, fnEng: map[string]int{}}
	for _, p := range pkgs {
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ParseComments)
			if err != nil {
				return nil, fmt.Errorf("scan: %w", err)
			}
			files = append(files, f)
		}
		info := &types.Info{
			Types: map[ast.Expr]types.TypeAndValue{},
			Defs:  map[*ast.Ident]types.Object{},
			Uses:  map[*ast.Ident]types.Object{},
		}
		conf := types.Config{Importer: imp.(types.ImporterFrom)}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			return nil, fmt.Errorf("scan: %s: %w", p.ImportPath, err)
		}
		pk := &pkg{files: files, info: info, assigns: assignments(files, info)}
		s.pkgs = append(s.pkgs, pk)
		for _, f := range files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if fn, ok := info.Defs[d.Name].(*types.Func); ok {
						s.funcs[fn.FullName()] = funcDecl{pk, d}
					}
				case *ast.GenDecl:
					for _, sp := range d.Specs {
						if vs, ok := sp.(*ast.ValueSpec); ok {
							for _, n := range vs.Names {
								if o, ok := info.Defs[n].(*types.Var); ok {
									s.vars[p.ImportPath+"."+n.Name] = o
									s.owner[o] = pk
								}
							}
						}
					}
				}
			}
		}
	}
	s.callers()
	// Statement methods: find those that forward a parameter to a known one, until no
	// more are found.
	for changed := true; changed; {
		changed = false
		s.eachCall(func(c *call) {
			if c.fn == nil {
				return
			}
			idx, ok := s.sink(c)
			if !ok || idx >= len(c.expr.Args) {
				return
			}
			if p := c.param(unwrap(c.expr.Args[idx])); p >= 0 {
				name := c.fn.FullName()
				if _, seen := s.sinks[name]; !seen {
					s.sinks[name] = p
					changed = true
				}
			}
		})
	}
	res := &Result{}
	seen := map[Statement]bool{}
	add := func(st Statement) {
		if st.Engines != 0 && !seen[st] {
			seen[st] = true
			res.Statements = append(res.Statements, st)
		}
	}
	s.eachCall(func(c *call) {
		if sts, ok := s.builder(c); ok {
			for _, st := range sts {
				add(st)
			}
			return
		}
		idx, ok := s.sink(c)
		if !ok || idx >= len(c.expr.Args) {
			return
		}
		arg := unwrap(c.expr.Args[idx])
		if c.param(arg) >= 0 {
			return // a statement method: its callers are scanned
		}
		sts, ok := s.values(c, arg)
		if !ok {
			res.Dynamic = append(res.Dynamic, s.dynamic(c))
			return
		}
		for _, st := range sts {
			add(st)
		}
	})
	sort.Slice(res.Statements, func(i, j int) bool {
		a, b := res.Statements[i], res.Statements[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Engines != b.Engines {
			return a.Engines < b.Engines
		}
		return a.SQL < b.SQL
	})
	sort.Slice(res.Dynamic, func(i, j int) bool {
		a, b := res.Dynamic[i], res.Dynamic[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return res, nil
}

type pkg struct {
	files   []*ast.File
	info    *types.Info
	assigns map[types.Object][]assign
}

// assign is a value given to a variable: nil for one not known (a call's result, +=,
// its address taken).
type assign struct {
	value ast.Expr
	path  []ast.Node // from the file down to the assignment
}

type scanner struct {
	root  string
	fset  *token.FileSet
	pkgs  []*pkg
	sinks map[string]int // statement methods found: full name to the statement's argument
	funcs map[string]funcDecl
	// fnEng is the engines each function of the module runs on: those a
	// //sqlcheck:sqlite or //sqlcheck:postgres line in its doc comment names, or those
	// of the places that call it (see callers).
	fnEng map[string]int
	vars  map[string]types.Object // package-level variables by "path.name"
	owner map[types.Object]*pkg
}

type funcDecl struct {
	pkg  *pkg
	decl *ast.FuncDecl
}

// call is a call expression with where it stands.
type call struct {
	pkg    *pkg
	expr   *ast.CallExpr
	path   []ast.Node    // from the file down to the call
	decl   *ast.FuncDecl // the enclosing function declaration, if any
	fn     *types.Func   // its object
	callee *types.Func   // what is called, if a function or method
	recv   types.Type    // the callee's receiver type, if a method
}

// param is the index of the enclosing function's parameter that e names, or -1.
func (c *call) param(e ast.Expr) int {
	id, ok := e.(*ast.Ident)
	if !ok || c.fn == nil {
		return -1
	}
	obj := c.pkg.info.Uses[id]
	sig := c.fn.Type().(*types.Signature)
	for i := range sig.Params().Len() {
		if sig.Params().At(i) == obj {
			return i
		}
	}
	return -1
}

func (s *scanner) eachCall(fn func(*call)) {
	for _, p := range s.pkgs {
		for _, f := range p.files {
			var path []ast.Node
			ast.Inspect(f, func(n ast.Node) bool {
				if n == nil {
					path = path[:len(path)-1]
					return true
				}
				path = append(path, n)
				var decl *ast.FuncDecl
				if len(path) > 1 {
					decl, _ = path[1].(*ast.FuncDecl)
				}
				ce, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				c := &call{pkg: p, expr: ce, path: append([]ast.Node(nil), path...), decl: decl}
				if decl != nil {
					c.fn, _ = p.info.Defs[decl.Name].(*types.Func)
				}
				var id *ast.Ident
				switch f := ce.Fun.(type) {
				case *ast.Ident:
					id = f
				case *ast.SelectorExpr:
					id = f.Sel
				}
				if id != nil {
					if fn, ok := p.info.Uses[id].(*types.Func); ok {
						c.callee = fn
						if r := fn.Type().(*types.Signature).Recv(); r != nil {
							c.recv = r.Type()
						}
					}
				}
				fn(c)
				return true
			})
		}
	}
}

// sink reports whether the call's callee takes a statement, and at which argument.
func (s *scanner) sink(c *call) (int, bool) {
	if c.callee == nil {
		return 0, false
	}
	if i, ok := s.sinks[c.callee.FullName()]; ok {
		return i, true
	}
	name := c.callee.Name()
	if c.recv == nil {
		return 0, false
	}
	// database/sql: the connection, pool and transaction methods.
	if named := typeName(c.recv); named != nil && named.Obj().Pkg() != nil && named.Obj().Pkg().Path() == "database/sql" {
		switch named.Obj().Name() {
		case "DB", "Tx", "Conn":
			switch name {
			case "ExecContext", "QueryContext", "QueryRowContext", "PrepareContext":
				return 1, true
			case "Exec", "Query", "QueryRow", "Prepare":
				return 0, true
			}
		}
		return 0, false
	}
	// An interface of the module with the database's methods (store.Querier).
	if types.IsInterface(c.recv) {
		switch name {
		case "ExecContext", "QueryContext", "QueryRowContext":
			sig := c.callee.Type().(*types.Signature)
			if sig.Params().Len() > 1 && types.Identical(sig.Params().At(1).Type(), types.Typ[types.String]) {
				return 1, true
			}
		}
	}
	return 0, false
}

func typeName(t types.Type) *types.Named {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, _ := t.(*types.Named)
	return n
}

// unwrap strips calls of a Rebind method: the statement is its argument.
func unwrap(e ast.Expr) ast.Expr {
	for {
		e = ast.Unparen(e)
		c, ok := e.(*ast.CallExpr)
		if !ok || len(c.Args) != 1 {
			return e
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Rebind" {
			return e
		}
		e = c.Args[0]
	}
}

// builder reads the statements of store's multi-row inserts: Tx.Bulk, Tx.BulkSelect
// and Tx.InsertRows, written as a one-row statement.
func (s *scanner) builder(c *call) ([]Statement, bool) {
	if c.recv == nil {
		return nil, false
	}
	n := typeName(c.recv)
	if n == nil || n.Obj().Pkg() == nil || !strings.HasSuffix(n.Obj().Pkg().Path(), "internal/store") || n.Obj().Name() != "Tx" {
		return nil, false
	}
	args := c.expr.Args
	var sql string
	var ok bool
	switch c.callee.Name() {
	case "Bulk": // (table, cols []string, per, suffix)
		table, ok1 := c.str(args[0])
		cols, ok2 := c.strs(args[1])
		suffix, ok3 := c.str(args[3])
		ok = ok1 && ok2 && ok3
		sql = "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + tuple(1, len(cols)) + suffix
	case "BulkSelect": // (head, fixed []any, cols, per, suffix)
		head, ok1 := c.str(args[0])
		fixed, ok2 := ast.Unparen(args[1]).(*ast.CompositeLit)
		cols, ok3 := c.int(args[2])
		suffix, ok4 := c.str(args[4])
		ok = ok1 && ok2 && ok3 && ok4
		if ok {
			sql = head + tuple(len(fixed.Elts)+1, cols) + suffix
		}
	case "InsertRows": // (ctx, head, cols, args, suffix)
		head, ok1 := c.str(args[1])
		cols, ok2 := c.int(args[2])
		suffix, ok3 := c.str(args[4])
		ok = ok1 && ok2 && ok3
		sql = head + tuple(1, cols) + suffix
	default:
		return nil, false
	}
	if !ok {
		return nil, false // a dynamic call site of the store's internals
	}
	file, line := s.pos(c.expr.Pos())
	return []Statement{{File: file, Line: line, Engines: s.engines(c.pkg, c.path), SQL: sql}}, true
}

func tuple(from, n int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	b.WriteByte(')')
	return b.String()
}

// str is the constant string value of e.
func (c *call) str(e ast.Expr) (string, bool) {
	tv := c.pkg.info.Types[e]
	if tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

func (c *call) int(e ast.Expr) (int, bool) {
	tv := c.pkg.info.Types[e]
	if tv.Value == nil || tv.Value.Kind() != constant.Int {
		return 0, false
	}
	n, ok := constant.Int64Val(tv.Value)
	return int(n), ok
}

// strs is a []string literal of constants.
func (c *call) strs(e ast.Expr) ([]string, bool) {
	lit, ok := ast.Unparen(e).(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	var out []string
	for _, el := range lit.Elts {
		v, ok := c.str(el)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// values is the statements that e can be: a string known at compile time, or a local
// variable only ever given such strings (each on the engines of the branch that gives
// it).
func (s *scanner) values(c *call, e ast.Expr) ([]Statement, bool) {
	at := s.engines(c.pkg, c.path)
	if v, ok := s.eval(c.pkg, e, nil, 0); ok {
		file, line := s.pos(e.Pos())
		return []Statement{{File: file, Line: line, Engines: at, SQL: v}}, true
	}
	id, ok := e.(*ast.Ident)
	if !ok {
		return nil, false
	}
	v, ok := c.pkg.info.Uses[id].(*types.Var)
	if !ok {
		return nil, false
	}
	as := c.pkg.assigns[v]
	if len(as) == 0 {
		return nil, false
	}
	// A value given under a condition on the engine holds on that engine; one given
	// unconditionally holds on the engines no conditional one names (the default that
	// a branch overrides).
	var out []Statement
	named := 0
	engines := make([]int, len(as))
	vals := make([]string, len(as))
	for i, a := range as {
		if a.value == nil {
			return nil, false
		}
		if vals[i], ok = s.eval(c.pkg, a.value, nil, 0); !ok {
			return nil, false
		}
		engines[i] = s.engines(c.pkg, a.path)
		if engines[i] != Both {
			named |= engines[i]
		}
	}
	for i, a := range as {
		en := engines[i]
		if en == Both {
			en = Both &^ named
		}
		file, line := s.pos(a.value.Pos())
		out = append(out, Statement{File: file, Line: line, Engines: en & at, SQL: vals[i]})
	}
	return out, true
}

// eval is the string value of e if the code fixes it at compile time: a constant, a
// concatenation, a variable given one such value only, or a call of a function of the
// module that returns such an expression of its parameters (vault.KeyColumns("k")).
func (s *scanner) eval(p *pkg, e ast.Expr, env map[types.Object]string, depth int) (string, bool) {
	if depth > 8 {
		return "", false
	}
	e = ast.Unparen(e)
	if tv := p.info.Types[e]; tv.Value != nil {
		if tv.Value.Kind() != constant.String {
			return "", false
		}
		return constant.StringVal(tv.Value), true
	}
	switch e := e.(type) {
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := s.eval(p, e.X, env, depth)
		if !ok {
			return "", false
		}
		y, ok := s.eval(p, e.Y, env, depth)
		return x + y, ok
	case *ast.Ident:
		o := p.info.Uses[e]
		if v, ok := env[o]; ok {
			return v, true
		}
		if o == nil || o.Pkg() == nil {
			return "", false
		}
		// A package-level variable (of this package or another) given one value.
		if pv, ok := s.vars[o.Pkg().Path()+"."+o.Name()]; ok && o.Parent() == o.Pkg().Scope() {
			op := s.owner[pv]
			as := op.assigns[pv]
			if len(as) != 1 || as[0].value == nil {
				return "", false
			}
			return s.eval(op, as[0].value, nil, depth+1)
		}
		return "", false
	case *ast.SelectorExpr:
		// pkg.Var
		if o, ok := p.info.Uses[e.Sel].(*types.Var); ok && o.Pkg() != nil && o.Parent() == o.Pkg().Scope() {
			if pv, ok := s.vars[o.Pkg().Path()+"."+o.Name()]; ok {
				op := s.owner[pv]
				if as := op.assigns[pv]; len(as) == 1 && as[0].value != nil {
					return s.eval(op, as[0].value, nil, depth+1)
				}
			}
		}
		return "", false
	case *ast.CallExpr:
		var id *ast.Ident
		switch f := e.Fun.(type) {
		case *ast.Ident:
			id = f
		case *ast.SelectorExpr:
			id = f.Sel
		}
		if id == nil {
			return "", false
		}
		fn, ok := p.info.Uses[id].(*types.Func)
		if !ok {
			return "", false
		}
		d, ok := s.funcs[fn.FullName()]
		if !ok || d.decl.Recv != nil || d.decl.Body == nil || len(d.decl.Body.List) != 1 {
			return "", false
		}
		ret, ok := d.decl.Body.List[0].(*ast.ReturnStmt)
		if !ok || len(ret.Results) != 1 {
			return "", false
		}
		inner := map[types.Object]string{}
		i := 0
		for _, field := range d.decl.Type.Params.List {
			for _, name := range field.Names {
				if i >= len(e.Args) {
					return "", false
				}
				v, ok := s.eval(p, e.Args[i], env, depth)
				if !ok {
					return "", false
				}
				inner[d.pkg.info.Defs[name]] = v
				i++
			}
		}
		if i != len(e.Args) {
			return "", false
		}
		return s.eval(d.pkg, ret.Results[0], inner, depth+1)
	}
	return "", false
}

func (s *scanner) pos(p token.Pos) (string, int) {
	pos := s.fset.Position(p)
	rel, err := filepath.Rel(s.root, pos.Filename)
	if err != nil {
		rel = pos.Filename
	}
	return filepath.ToSlash(rel), pos.Line
}

func (s *scanner) dynamic(c *call) Dynamic {
	file, line := s.pos(c.expr.Pos())
	d := Dynamic{File: file, Line: line, Func: "(func literal)", Call: c.callee.Name()}
	if c.decl != nil {
		d.Func = funcName(c.decl)
	}
	if c.recv != nil {
		if n := typeName(c.recv); n != nil {
			d.Call = n.Obj().Name() + "." + d.Call
		}
	}
	return d
}

// funcName is "name" or "(T).name" / "(*T).name".
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	star := ""
	if st, ok := t.(*ast.StarExpr); ok {
		star, t = "*", st.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return "(" + star + id.Name + ")." + d.Name.Name
	}
	return d.Name.Name
}

// assignments collects what each variable of the files is given.
func assignments(files []*ast.File, info *types.Info) map[types.Object][]assign {
	out := map[types.Object][]assign{}
	obj := func(e ast.Expr) types.Object {
		id, ok := ast.Unparen(e).(*ast.Ident)
		if !ok {
			return nil
		}
		if o := info.Defs[id]; o != nil {
			return o
		}
		return info.Uses[id]
	}
	for _, f := range files {
		var path []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				path = path[:len(path)-1]
				return true
			}
			path = append(path, n)
			here := append([]ast.Node(nil), path...)
			switch n := n.(type) {
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					o := obj(l)
					if o == nil {
						continue
					}
					a := assign{path: here}
					if (n.Tok == token.ASSIGN || n.Tok == token.DEFINE) && len(n.Lhs) == len(n.Rhs) {
						a.value = n.Rhs[i]
					}
					out[o] = append(out[o], a)
				}
			case *ast.ValueSpec:
				for i, name := range n.Names {
					o := info.Defs[name]
					if o == nil {
						continue
					}
					a := assign{path: here}
					if len(n.Values) == len(n.Names) {
						a.value = n.Values[i]
					}
					out[o] = append(out[o], a)
				}
			case *ast.UnaryExpr:
				if n.Op == token.AND {
					if o := obj(n.X); o != nil {
						out[o] = append(out[o], assign{path: here})
					}
				}
			case *ast.RangeStmt:
				if o := obj(n.Key); o != nil {
					out[o] = append(out[o], assign{path: here})
				}
				if o := obj(n.Value); o != nil {
					// "for _, q := range []string{...}": each element in turn.
					lit, ok := ast.Unparen(n.X).(*ast.CompositeLit)
					if !ok || len(lit.Elts) == 0 {
						out[o] = append(out[o], assign{path: here})
						break
					}
					for _, el := range lit.Elts {
						out[o] = append(out[o], assign{value: el, path: here})
					}
				}
			}
			return true
		})
	}
	return out
}

// engines is the set of engines on which the code at the end of path runs, as far as
// conditions on the engine tell: an if or switch on a Dialect (store.DB.Dialect,
// store.Tx.Dialect()) around it, or an if before it in its block that returns when
// the engine is (or is not) one.
func (s *scanner) engines(p *pkg, path []ast.Node) int {
	en := Both
	if len(path) > 1 {
		if d, ok := path[1].(*ast.FuncDecl); ok {
			if fn, ok := p.info.Defs[d.Name].(*types.Func); ok {
				if e, ok := s.fnEng[fn.FullName()]; ok {
					en = e
				}
			}
		}
	}
	for i := 0; i+1 < len(path); i++ {
		child := path[i+1]
		switch n := path[i].(type) {
		case *ast.IfStmt:
			d, eq, ok := s.dialectCond(p, n.Cond)
			if !ok {
				// "a && engine is X": the body runs on X only.
				if b, isBin := ast.Unparen(n.Cond).(*ast.BinaryExpr); isBin && b.Op == token.LAND && child == n.Body {
					for _, part := range conjuncts(b) {
						if d, eq, ok := s.dialectCond(p, part); ok {
							en &= pick(d, eq)
						}
					}
				}
				continue
			}
			switch child {
			case n.Body:
				en &= pick(d, eq)
			case n.Else:
				en &= pick(d, !eq)
			}
		case *ast.CaseClause:
			sw, ok := path[i-1].(*ast.BlockStmt)
			if !ok || i < 2 {
				continue
			}
			st, ok := path[i-2].(*ast.SwitchStmt)
			if !ok || st.Body != sw || st.Tag == nil || !s.isDialect(p, st.Tag) {
				continue
			}
			set := 0
			for _, e := range n.List {
				if d := s.dialectConst(p, e); d != 0 {
					set |= d
				}
			}
			if n.List == nil { // default: the engines no case names
				set = Both
				for _, cl := range sw.List {
					for _, e := range cl.(*ast.CaseClause).List {
						set &^= s.dialectConst(p, e)
					}
				}
			}
			en &= set
		case *ast.BlockStmt:
			for _, st := range n.List {
				if st == child {
					break
				}
				ifs, ok := st.(*ast.IfStmt)
				if !ok || ifs.Else != nil || len(ifs.Body.List) == 0 {
					continue
				}
				if _, ret := ifs.Body.List[len(ifs.Body.List)-1].(*ast.ReturnStmt); !ret {
					continue
				}
				// After "if A || engine is X { return }" the engine is not X.
				for _, part := range disjuncts(ifs.Cond) {
					if d, eq, ok := s.dialectCond(p, part); ok {
						en &= pick(d, !eq)
					}
				}
			}
		}
	}
	return en
}

func pick(d int, eq bool) int {
	if eq {
		return d
	}
	return Both &^ d
}

func disjuncts(e ast.Expr) []ast.Expr {
	if b, ok := ast.Unparen(e).(*ast.BinaryExpr); ok && b.Op == token.LOR {
		return append(disjuncts(b.X), disjuncts(b.Y)...)
	}
	return []ast.Expr{e}
}

func conjuncts(e ast.Expr) []ast.Expr {
	if b, ok := ast.Unparen(e).(*ast.BinaryExpr); ok && b.Op == token.LAND {
		return append(conjuncts(b.X), conjuncts(b.Y)...)
	}
	return []ast.Expr{e}
}

// dialectCond reads "x.Dialect == store.Postgres" (or !=, or the constant first).
func (s *scanner) dialectCond(p *pkg, e ast.Expr) (d int, eq bool, ok bool) {
	b, isBin := ast.Unparen(e).(*ast.BinaryExpr)
	if !isBin || (b.Op != token.EQL && b.Op != token.NEQ) {
		return 0, false, false
	}
	x, y := b.X, b.Y
	if s.dialectConst(p, x) != 0 {
		x, y = y, x
	}
	if !s.isDialect(p, x) {
		return 0, false, false
	}
	d = s.dialectConst(p, y)
	return d, b.Op == token.EQL, d != 0
}

// isDialect reports whether e is of type store.Dialect and not a constant.
func (s *scanner) isDialect(p *pkg, e ast.Expr) bool {
	tv := p.info.Types[e]
	if tv.Value != nil || tv.Type == nil {
		return false
	}
	n := typeName(tv.Type)
	return n != nil && n.Obj().Name() == "Dialect" && n.Obj().Pkg() != nil && strings.HasSuffix(n.Obj().Pkg().Path(), "internal/store")
}

// dialectConst is the engine a constant of type store.Dialect names, or 0.
func (s *scanner) dialectConst(p *pkg, e ast.Expr) int {
	tv := p.info.Types[e]
	if tv.Value == nil || tv.Value.Kind() != constant.String || tv.Type == nil {
		return 0
	}
	if n := typeName(tv.Type); n == nil || n.Obj().Name() != "Dialect" {
		return 0
	}
	switch constant.StringVal(tv.Value) {
	case "sqlite":
		return SQLite
	case "postgres":
		return Postgres
	}
	return 0
}

// callers works out the engines of each function: a //sqlcheck:sqlite or
// //sqlcheck:postgres directive in its doc comment says; otherwise a function, or an
// unexported method, that is only ever called directly runs on the engines of the
// places that call it (storeImportArrays, called in an "if s.db.Dialect ==
// store.Postgres" branch, runs on PostgreSQL). An exported method may be called through
// an interface, and a function used as a value from anywhere: both run on every engine
// unless a directive says otherwise.
func (s *scanner) callers() {
	type site struct {
		pkg  *pkg
		path []ast.Node
	}
	sites := map[string][]site{}
	escapes := map[string]bool{}
	for _, p := range s.pkgs {
		for _, f := range p.files {
			var path []ast.Node
			ast.Inspect(f, func(n ast.Node) bool {
				if n == nil {
					path = path[:len(path)-1]
					return true
				}
				path = append(path, n)
				id, ok := n.(*ast.Ident)
				if !ok {
					return true
				}
				fn, ok := p.info.Uses[id].(*types.Func)
				if !ok {
					return true
				}
				name := fn.FullName()
				if _, ours := s.funcs[name]; !ours {
					return true
				}
				// Called if the ident (or the selector ending in it) is what a call calls.
				i := len(path) - 2
				var fun ast.Node = id
				if i >= 0 {
					if sel, ok := path[i].(*ast.SelectorExpr); ok && sel.Sel == id {
						fun, i = sel, i-1
					}
				}
				if i >= 0 {
					if c, ok := path[i].(*ast.CallExpr); ok && c.Fun == fun {
						sites[name] = append(sites[name], site{p, append([]ast.Node(nil), path[:i+1]...)})
						return true
					}
				}
				escapes[name] = true
				return true
			})
		}
	}
	follow := map[string]bool{}
	for name, d := range s.funcs {
		s.fnEng[name] = Both
		if d.decl.Doc != nil {
			for _, c := range d.decl.Doc.List {
				switch strings.TrimSpace(c.Text) {
				case "//sqlcheck:sqlite":
					s.fnEng[name] = SQLite
				case "//sqlcheck:postgres":
					s.fnEng[name] = Postgres
				}
			}
		}
		if s.fnEng[name] == Both && !escapes[name] && len(sites[name]) > 0 &&
			(d.decl.Recv == nil || !ast.IsExported(d.decl.Name.Name)) {
			follow[name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for name := range follow {
			en := 0
			for _, st := range sites[name] {
				en |= s.engines(st.pkg, st.path)
			}
			if en != s.fnEng[name] {
				s.fnEng[name], changed = en, true
			}
		}
	}
}
