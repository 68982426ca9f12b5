package datamap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"steward/internal/store"
)

// Term is one identifier of a subject to look for, with what kind it is (id, email,
// name, phone, address). Reports name the kind, never the value.
type Term struct {
	Kind  string
	Value string
}

// Finding is one place where a term was found.
type Finding struct {
	Where string // "table.column" or a file name
	Kind  string
	Count int
	// Table is the table the match lies in, when the scan can tell (a live row, a page
	// or relation file of the table): a legal hold may account for it (ScanKept).
	Table string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %d match(es) of the subject's %s", f.Where, f.Count, f.Kind)
}

// minTermLen keeps a very short value (a two-letter name) from matching everywhere.
const minTermLen = 4

// Scan looks for every term in every text column of every table of the live schema,
// case-insensitively, and, on SQLite, in the raw bytes of the database file and its
// write-ahead log, where a deleted row could linger. skip names tables to leave out
// (those a legal hold keeps). On PostgreSQL it reads live rows only: ScanRaw also reads
// the server's files.
func Scan(ctx context.Context, db *store.DB, terms []Term, skip ...string) ([]Finding, error) {
	out, err := scanRows(ctx, db, usable(terms), skip)
	if err != nil {
		return nil, err
	}
	if db.Dialect == store.SQLite {
		found, err := scanSQLiteFiles(db, usable(terms))
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// scanRows looks for the terms in the text columns of live rows.
func scanRows(ctx context.Context, db *store.DB, terms []Term, skip []string) ([]Finding, error) {
	cols, err := db.Columns(ctx)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, c := range cols {
		if !c.Text || slices.Contains(skip, c.Table) {
			continue
		}
		expr := "lower(CAST(" + store.QuoteIdent(c.Name) + " AS TEXT))"
		q := fmt.Sprintf("SELECT count(*) FROM %s WHERE instr(%s, $1) > 0", store.QuoteIdent(c.Table), expr)
		if db.Dialect == store.Postgres {
			q = fmt.Sprintf("SELECT count(*) FROM %s WHERE strpos(%s, $1) > 0", store.QuoteIdent(c.Table), expr)
		}
		for _, t := range terms {
			var n int
			if err := db.QueryRowContext(ctx, q, t.Value).Scan(&n); err != nil {
				return nil, fmt.Errorf("datamap: scan %s.%s: %w", c.Table, c.Name, err)
			}
			if n > 0 {
				out = append(out, Finding{Where: c.Table + "." + c.Name, Kind: t.Kind, Count: n, Table: c.Table})
			}
		}
	}
	return out, nil
}

// scanSQLiteFiles looks for the terms in the SQLite database file and its write-ahead
// log, chunk by chunk.
func scanSQLiteFiles(db *store.DB, terms []Term) ([]Finding, error) {
	if db.Path() == "" {
		return nil, nil
	}
	var out []Finding
	for _, suffix := range []string{"", "-wal"} {
		name := db.Path() + suffix
		found, err := scanFile(name, "file "+baseName(name), terms)
		if err != nil {
			return nil, fmt.Errorf("datamap: scan %s: %w", name, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// usable returns the terms long enough to search for, trimmed and in lower case.
func usable(terms []Term) []Term {
	var out []Term
	for _, t := range terms {
		if len(strings.TrimSpace(t.Value)) >= minTermLen {
			out = append(out, Term{Kind: t.Kind, Value: strings.ToLower(strings.TrimSpace(t.Value))})
		}
	}
	return out
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
