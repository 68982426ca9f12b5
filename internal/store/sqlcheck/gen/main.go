// Command gen rewrites internal/store/sqlcheck/statements.go: the SQL statements that
// the module's code passes to the database, found by package scan. It fails, after
// writing, if a call builds its statement at run time without an entry in
// internal/store/sqlcheck/dynamic.txt. Run it from anywhere in the module:
//
//	go run ./internal/store/sqlcheck/gen
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"steward/internal/store/sqlcheck/scan"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	res, err := scan.Module(root)
	if err != nil {
		return err
	}
	src, err := scan.Render(res)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "internal", "store", "sqlcheck")
	if err := os.WriteFile(filepath.Join(dir, "statements.go"), src, 0o644); err != nil {
		return err
	}
	fmt.Printf("sqlcheck: %d statements, %d built at run time\n", len(res.Statements), len(res.Dynamic))
	list, err := os.ReadFile(filepath.Join(dir, "dynamic.txt"))
	if err != nil {
		return err
	}
	return scan.CheckDynamic(res, string(list))
}
