package datamap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"steward/internal/store"
)

// Kept is a table whose rows of a subject a legal hold keeps despite an erasure: the
// holder that declares the table, and the hold.
type Kept struct {
	Table  string
	Holder string
	HoldID string
	Until  time.Time // zero: until released
}

// Held is a finding a legal hold accounts for: the subject's data found where a hold
// keeps it.
type Held struct {
	Finding
	Holder string
	HoldID string
	Until  time.Time
}

func (h Held) String() string {
	until := "until released"
	if !h.Until.IsZero() {
		until = "until " + h.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s (kept by legal hold %s on holder %s, %s)", h.Finding, h.HoldID, h.Holder, until)
}

// ScanKept is ScanAll, or with raw ScanAllRaw, accounting for what legal holds keep:
// a finding in a kept table (its live rows; on SQLite the pages of its b-trees, in the
// database file and in the write-ahead log; on PostgreSQL its table, TOAST and index
// files) is held, not residue. Raw bytes that cannot be told to belong to a kept table
// (PostgreSQL's WAL, a page of another table) stay residue. CheckResidue's objects and
// keys are told apart by CheckResidueKept.
func (r *Registry) ScanKept(ctx context.Context, db *store.DB, terms []Term, kept []Kept, raw bool) (residue []Finding, held []Held, unread []string, err error) {
	terms = usable(terms)
	found, err := scanRows(ctx, db, terms, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if db.Dialect == store.SQLite {
		f, err := scanSQLiteFilesByTable(ctx, db, terms, keptTables(kept))
		if err != nil {
			return nil, nil, nil, err
		}
		found = append(found, f...)
	}
	if raw && db.Dialect == store.Postgres {
		f, u, err := scanServerFiles(ctx, db, terms)
		if err != nil {
			return nil, nil, nil, err
		}
		found, unread = append(found, f...), u
	}
	more, err := r.scanHolders(ctx, terms)
	if err != nil {
		return nil, nil, nil, err
	}
	found = append(found, more...)
	for _, f := range found {
		if i := slices.IndexFunc(kept, func(k Kept) bool { return f.Table != "" && k.Table == f.Table }); i >= 0 {
			held = append(held, Held{Finding: f, Holder: kept[i].Holder, HoldID: kept[i].HoldID, Until: kept[i].Until})
			continue
		}
		residue = append(residue, f)
	}
	return residue, held, unread, nil
}

// CheckResidueKept is CheckResidue, the holders that legal holds keep apart: what they
// still have is held (with the hold), not residue.
func (r *Registry) CheckResidueKept(ctx context.Context, subjectID string, kept []Kept) (residue, held []string, err error) {
	for _, h := range r.holders {
		rc, ok := h.(ResidueChecker)
		if !ok {
			continue
		}
		name := h.Declaration().Name
		found, err := rc.Residue(ctx, subjectID)
		if err != nil {
			return nil, nil, fmt.Errorf("datamap: residue of %s: %w", name, err)
		}
		for _, f := range found {
			// A finding says whose it is when another holder's ("vault: the
			// subject's data key still exists").
			owner := name
			if p, _, ok := strings.Cut(f, ":"); ok {
				if _, known := r.Holder(p); known {
					owner = p
				}
			}
			i := slices.IndexFunc(kept, func(k Kept) bool { return k.Holder == owner })
			if i < 0 {
				residue = append(residue, f)
				continue
			}
			held = append(held, fmt.Sprintf("%s (kept by legal hold %s on holder %s)", f, kept[i].HoldID, owner))
		}
	}
	return residue, held, nil
}

func keptTables(kept []Kept) []string {
	var out []string
	for _, k := range kept {
		if !slices.Contains(out, k.Table) {
			out = append(out, k.Table)
		}
	}
	return out
}

// scanSQLiteFilesByTable is scanSQLiteFiles that tells, page by page, which findings
// lie in a page of one of tables (a b-tree of the table or of one of its indexes, or an
// overflow page of one): those carry the table's name. The owner of a page is read
// from the dbstat table as the database is now; a page of the write-ahead log is
// credited to the page's owner now, as a checkpoint would write it there.
func scanSQLiteFilesByTable(ctx context.Context, db *store.DB, terms []Term, tables []string) ([]Finding, error) {
	if db.Path() == "" {
		return nil, nil
	}
	if len(tables) == 0 {
		return scanSQLiteFiles(db, terms)
	}
	var pageSize int
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return nil, fmt.Errorf("datamap: page size: %w", err)
	}
	owners, err := pageOwners(ctx, db, tables)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, suffix := range []string{"", "-wal"} {
		name := db.Path() + suffix
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("datamap: scan %s: %w", name, err)
		}
		pages := filePages
		if suffix == "-wal" {
			pages = walPages
		}
		found, err := scanPages(f, "file "+baseName(name), terms, pageSize, owners, pages)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("datamap: scan %s: %w", name, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// pageOwners maps every page of the tables' b-trees (and their indexes') to its table.
//
//sqlcheck:sqlite
func pageOwners(ctx context.Context, db *store.DB, tables []string) (map[int64]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT s.tbl_name, d.pageno FROM dbstat d JOIN sqlite_schema s ON s.name = d.name`)
	if err != nil {
		return nil, fmt.Errorf("datamap: page owners: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var table string
		var page int64
		if err := rows.Scan(&table, &page); err != nil {
			return nil, fmt.Errorf("datamap: page owners: %w", err)
		}
		if slices.Contains(tables, table) {
			out[page] = table
		}
	}
	return out, rows.Err()
}

// A pager reads the header of the nth unit of a file (from 1) and says how long the
// unit is and which database page it holds (0: none, a header).
type pager func(r io.Reader, pageSize int, n int64) (page int64, size int, err error)

// filePages reads a database file a page at a time: the nth unit is page n.
func filePages(_ io.Reader, pageSize int, n int64) (int64, int, error) { return n, pageSize, nil }

// walPages reads the write-ahead log: its 32-byte header, then frames of a 24-byte
// header (the page number first, big-endian) and a page.
func walPages(r io.Reader, pageSize int, n int64) (int64, int, error) {
	if n == 1 {
		return 0, 32, nil
	}
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	return int64(binary.BigEndian.Uint32(hdr[:4])), pageSize, nil
}

// scanPages scans a file unit by unit and credits each match to the table owning the
// page it ends in, if any.
func scanPages(r io.Reader, where string, terms []Term, pageSize int, owners map[int64]string, next pager) ([]Finding, error) {
	m := newMatcher(terms)
	counts := map[string][]int{} // table ("" for none) -> counts per term
	add := func(table string, before []int) {
		c := counts[table]
		if c == nil {
			c = make([]int, len(terms))
			counts[table] = c
		}
		for i := range terms {
			c[i] += m.counts[i] - before[i]
		}
	}
	buf := make([]byte, pageSize)
	for n := int64(1); ; n++ {
		page, size, err := next(r, pageSize, n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return nil, err
		}
		k, err := io.ReadFull(r, buf[:size])
		before := slices.Clone(m.counts)
		m.write(buf[:k])
		add(owners[page], before)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	var out []Finding
	names := make([]string, 0, len(counts))
	for t := range counts {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		for i, term := range terms {
			if c := counts[t][i]; c > 0 {
				w := where
				if t != "" {
					w += " (pages of " + t + ")"
				}
				out = append(out, Finding{Where: w, Kind: term.Kind, Count: c, Table: t})
			}
		}
	}
	return out, nil
}
